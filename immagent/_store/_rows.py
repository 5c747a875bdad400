"""The one mapping between rows and views, each way: every part of the store builds views and row values
here and nowhere else.

Reading: the store selects exactly the columns named here (Core, no ORM entities) and builds each view
from a row without validating it again. Every row in immagent's tables was validated when it was written
(through these same views), so validating it once more on every read only cost time: 20-50 microseconds
per row, the whole of a cold load beyond the query. The views are built with what validation would have
added, and nothing else: UTC-aware ``created_at`` (SQLite returns naive datetimes), ``tool_calls`` as a
tuple of ``ToolCall`` (None when empty), ``metadata`` from its column, every field marked as set, and
private attributes at their defaults. ``tests/test_rows.py`` checks every field of such views against
validated ones on SQLite and PostgreSQL, odd values included.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from sqlalchemy import ColumnElement
from sqlalchemy.sql import ColumnCollection

from immagent._ids import uuid7
from immagent._messages import Message, NativeForm, ToolCall, utcnow
from immagent._views import PersistentAgent, Thread, ThreadMove

if TYPE_CHECKING:
    from immagent._store._store import Store

__all__ = [
    "AGENT_COLUMNS",
    "MESSAGE_COLUMNS",
    "agent_from_values",
    "agent_views",
    "columns",
    "derived_agent",
    "message_values",
    "message_views",
    "move_view",
    "no_collection",
    "thread_view",
]

#: The columns a view is built from, in the order the builders below unpack them.
AGENT_COLUMNS = (
    "id",
    "tenant",
    "root_id",
    "parent_id",
    "name",
    "system_prompt_id",
    "head_id",
    "model",
    "metadata",
    "model_settings",
    "created_at",
)
MESSAGE_COLUMNS = (
    "id",
    "parent_id",
    "depth",
    "role",
    "content",
    "tool_calls",
    "tool_call_id",
    "input_tokens",
    "output_tokens",
    "created_at",
    "native",
)

_V = TypeVar("_V", Message, PersistentAgent, NativeForm)
_new = object.__new__
_set = object.__setattr__
_MESSAGE_FIELDS = frozenset(Message.model_fields)
_NATIVE_FIELDS = frozenset(NativeForm.model_fields)
_AGENT_FIELDS = frozenset(PersistentAgent.model_fields)
_AGENT_PRIVATE = {name: attr.default for name, attr in PersistentAgent.__private_attributes__.items()}
assert set(MESSAGE_COLUMNS) == _MESSAGE_FIELDS, "Message fields and MESSAGE_COLUMNS differ"
assert set(AGENT_COLUMNS) == _AGENT_FIELDS, "PersistentAgent fields and AGENT_COLUMNS differ"


def columns(source: ColumnCollection[str, Any], names: tuple[str, ...]) -> list[ColumnElement[Any]]:
    """The named columns of a table, alias or CTE (``source.c``), in the order given."""
    return [source[name] for name in names]


def _utc(value: datetime) -> datetime:
    """``as_utc`` inlined for the hot path: PostgreSQL's values are UTC already, SQLite's are naive."""
    tz = value.tzinfo
    if tz is UTC:
        return value
    return value.replace(tzinfo=UTC) if tz is None else value.astimezone(UTC)


@contextmanager
def no_collection() -> Iterator[None]:
    """Hold the cyclic garbage collector while views are built in one synchronous burst (no await
    inside). Thousands of new objects would otherwise set off collections that scan every object of the
    process (hundreds of thousands once SQLAlchemy, Pydantic and LiteLLM are loaded), which cost more
    than the views themselves. Nothing built here forms a cycle; the collector's state is restored."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _tool_calls(stored: list[dict[str, Any]]) -> tuple[ToolCall, ...]:
    return tuple(ToolCall.model_validate(call) for call in stored)


def _native(stored: dict[str, Any]) -> NativeForm:
    """The native form of a stored ``{"format": ..., "data": ...}`` (validated when it was written)."""
    return _view(NativeForm, {"format": stored["format"], "data": stored["data"]}, set(_NATIVE_FIELDS), None)


def message_views(rows: Iterable[tuple[Any, ...]]) -> list[Message]:
    """Message views from rows of ``MESSAGE_COLUMNS``, in order."""
    out: list[Message] = []
    append = out.append
    with no_collection():
        for id_, parent_id, depth, role, content, calls, call_id, tin, tout, created_at, native in rows:
            values = {
                "id": id_,
                "role": role,
                "content": content,
                "tool_calls": _tool_calls(calls) if calls else None,
                "tool_call_id": call_id,
                "input_tokens": tin,
                "output_tokens": tout,
                "parent_id": parent_id,
                "depth": depth,
                "created_at": created_at if created_at.tzinfo is UTC else _utc(created_at),
                "native": None if native is None else _native(native),
            }
            append(_view(Message, values, set(_MESSAGE_FIELDS), None))
    return out


def agent_views(rows: Iterable[tuple[Any, ...]], store: Store | None = None) -> list[PersistentAgent]:
    """Agent views from rows of ``AGENT_COLUMNS``, in order, holding ``store`` (not cached there yet)."""
    private = {**_AGENT_PRIVATE, "_store": store}
    out: list[PersistentAgent] = []
    append = out.append
    with no_collection():
        for id_, tenant, root_id, parent_id, name, prompt_id, head_id, model, meta, settings, at in rows:
            values = {
                "id": id_,
                "tenant": tenant,
                "root_id": root_id,
                "parent_id": parent_id,
                "name": name,
                "system_prompt_id": prompt_id,
                "head_id": head_id,
                "model": model,
                "metadata": meta,
                "model_settings": settings,
                "created_at": at if at.tzinfo is UTC else _utc(at),
            }
            append(_view(PersistentAgent, values, set(_AGENT_FIELDS), {**private}))
    return out


def _view(cls: type[_V], values: dict[str, Any], fields: set[str], private: dict[str, Any] | None) -> _V:
    """An instance of a frozen view with these field values, as ``model_construct`` makes one (every
    field set, no extra), without its per-call bookkeeping."""
    view = _new(cls)
    _set(view, "__dict__", values)
    _set(view, "__pydantic_fields_set__", fields)
    _set(view, "__pydantic_extra__", None)
    _set(view, "__pydantic_private__", private)
    return view


def agent_from_values(values: Mapping[str, Any]) -> PersistentAgent:
    """The view of an agent row the store is writing (``derived_agent`` or a new root's values); its
    dicts are copies, so the caller's objects never become part of an immutable view."""
    row = tuple(values[name] for name in AGENT_COLUMNS)
    return agent_views([(*row[:8], dict(row[8]), dict(row[9]), row[10])])[0]


def thread_view(row: Any) -> Thread:
    """A thread row joined with its newest move (``agent_id``, ``position``, ``moved_at``) as its view."""
    return Thread.model_validate(row, from_attributes=True)


def move_view(row: Any) -> ThreadMove:
    """A thread-log row as its view."""
    return ThreadMove.model_validate(row, from_attributes=True)


def message_values(message: Message, root_id: UUID, tenant: str) -> dict[str, Any]:
    """The column values of the row that stores ``message`` in the tree ``root_id`` of ``tenant``."""
    return {
        "id": message.id,
        "tenant": tenant,
        "root_id": root_id,
        "parent_id": message.parent_id,
        "depth": message.depth,
        "role": message.role,
        "content": message.content,
        "tool_calls": [c.model_dump() for c in message.tool_calls] if message.tool_calls else None,
        "tool_call_id": message.tool_call_id,
        "input_tokens": message.input_tokens,
        "output_tokens": message.output_tokens,
        "created_at": message.created_at,
        "native": None if message.native is None else message.native.model_dump(),
    }


def derived_agent(
    agent: PersistentAgent,
    *,
    parent_id: UUID | None,
    head_id: UUID | None,
    metadata: Mapping[str, Any],
) -> dict[str, Any]:
    """Column values (keyed like ``AGENT_COLUMNS``) of a new state derived from ``agent`` (same tenant,
    tree, name, prompt, model and settings)."""
    return {
        "id": uuid7(),
        "tenant": agent.tenant,
        "root_id": agent.root_id,
        "parent_id": parent_id,
        "name": agent.name,
        "system_prompt_id": agent.system_prompt_id,
        "head_id": head_id,
        "model": agent.model,
        "metadata": dict(metadata),
        "model_settings": dict(agent.model_settings),
        "created_at": utcnow(),
    }
