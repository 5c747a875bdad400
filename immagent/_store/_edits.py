"""New states from messages the caller already has (``extend``) or from an earlier point of the history
(``rewind``): no model call, one transaction, nothing rewritten.

``extend`` is how another agent framework's messages become immagent states: the caller gives what each
message says (role, content, tool calls, tokens, native form); the store gives it its place (id, parent,
depth, tree, time) and writes the messages and the new state as ``_turns.commit`` writes a turn.
``rewind`` points a new state at an earlier message of the same history: undo, without deleting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert
from sqlalchemy.ext.asyncio import AsyncSession

from immagent import _validation as check
from immagent._errors import ValidationError
from immagent._ids import uuid7
from immagent._messages import Message, NativeForm, utcnow
from immagent._orm import AGENTS
from immagent._store import _agents, _turns
from immagent._store._database import check_session
from immagent._store._rows import agent_from_values, derived_agent
from immagent._store._turns import AlsoWrite
from immagent._views import PersistentAgent

if TYPE_CHECKING:
    from immagent._store._store import Store

_INSERT_AGENT = insert(AGENTS)


def checked(messages: object) -> list[Message]:
    """The caller's messages, each checked as the database will need it (before anything is written):
    ValidationError names the first bad one, e.g. ``messages[2].native.data``. Native forms come back
    as fresh copies of their JSON, so the caller's objects never become part of a stored view."""
    if isinstance(messages, str | bytes | Mapping | Message) or not isinstance(messages, Iterable):
        raise ValidationError("messages", f"must be a sequence of Messages, not {type(messages).__name__}")
    given = list(messages)
    if not given:
        raise ValidationError("messages", "must hold at least one message")
    return [_checked(f"messages[{i}]", message) for i, message in enumerate(given)]


def _checked(field: str, message: object) -> Message:
    if not isinstance(message, Message):
        raise ValidationError(field, f"must be an immagent Message, not {type(message).__name__}")
    if message.role not in ("user", "assistant", "tool"):  # a model_construct()ed message is unchecked
        raise ValidationError(f"{field}.role", f"must be user, assistant or tool, not {message.role!r}")
    if message.content is not None:
        check.text(f"{field}.content", message.content, allow_empty=True)
    if message.tool_call_id is not None:
        check.text(f"{field}.tool_call_id", message.tool_call_id, allow_empty=True, max_length=255)
    for n, call in enumerate(message.tool_calls or ()):
        for part in ("id", "name", "arguments"):
            check.text(f"{field}.tool_calls[{n}].{part}", getattr(call, part), allow_empty=True)
    for tokens in ("input_tokens", "output_tokens"):
        if getattr(message, tokens) is not None:
            check.positive_int(f"{field}.{tokens}", getattr(message, tokens), minimum=0)
    native = message.native
    if native is not None:
        if not isinstance(native, NativeForm):
            raise ValidationError(f"{field}.native", f"must be a NativeForm, not {type(native).__name__}")
        form = check.identifier(f"{field}.native.format", native.format, max_length=255)
        data = check.json_value(f"{field}.native.data", native.data)
        native = NativeForm.model_construct(format=form, data=data)
    return message.model_copy(update={"native": native})


def placed(messages: list[Message], agent: PersistentAgent, depth: int) -> list[Message]:
    """``messages`` as the next messages of ``agent``'s history, whose length is ``depth``: new ids,
    each one's parent the one before (the first's, the head), depths from ``depth``, one time."""
    now = utcnow()
    parent = agent.head_id
    out = []
    for offset, message in enumerate(messages):
        values: dict[str, Any] = {
            "id": uuid7(),
            "parent_id": parent,
            "depth": depth + offset,
            "created_at": now,
        }
        out.append(message.model_copy(update=values))
        parent = values["id"]
    return out


async def extend(
    store: Store,
    agent: PersistentAgent,
    messages: object,
    session: AsyncSession | None,
    also: AlsoWrite | None = None,
) -> PersistentAgent:
    """The new state whose history is ``agent``'s plus ``messages``, written in one transaction."""
    given = checked(messages)
    check_session(session)
    history = store._cache.history_of(agent)
    depth = len(history) if history is not None else await _agents.length(store, agent)
    new = placed(given, agent, depth)
    return await _turns.commit(store, agent, history, new, session, also)


async def rewind(
    store: Store,
    agent: PersistentAgent,
    count: object,
    session: AsyncSession | None,
    also: AlsoWrite | None = None,
) -> PersistentAgent:
    """The new state (a child of ``agent``) whose history is ``agent``'s without its last ``count``
    messages; reads at most ``count + 1`` messages, writes one state row."""
    steps = check.positive_int("count", count, minimum=0)
    check_session(session)
    history = store._cache.history_of(agent)
    if history is not None:
        size = len(history)
        _within(steps, size)
        head = history[size - steps - 1].id if steps < size else None
        kept: tuple[Message, ...] | None = history[: size - steps]
    else:
        newest = await _agents.recent(store, agent, steps + 1)
        size = newest[-1].depth + 1
        _within(steps, size)
        head = newest[0].id if steps < size else None
        kept = () if head is None else None
    row = derived_agent(agent, parent_id=agent.id, head_id=head, metadata=agent.metadata)

    def insert_state(conn: Connection) -> None:
        conn.execute(_INSERT_AGENT, row)
        if also is not None:
            also(conn, row["id"])

    await store._db.write_many(insert_state, session)
    return _agents.bind(store, agent_from_values(row), kept, cache=session is None)


def _within(count: int, size: int) -> None:
    if count > size:
        raise ValidationError("count", f"must be at most the history's length ({size}), got {count}")
