"""The Store: an engine, a session factory and a cache of immutable views; one unit of work per operation.

ORM rows are made and read only here; callers get Pydantic views. No connection is held while a model or
a tool runs: a turn reads what it needs (cache first), releases the connection, runs the pure core, then
opens one session that inserts the new messages and the new agent and commits, all or nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Self
from uuid import UUID

from sqlalchemy import delete, func, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from immagent import _advance as core
from immagent import _validation as check
from immagent._advance import Turn, TurnComplete, TurnEvent, TurnOptions, TurnResult
from immagent._engine import engine_options, prepare_engine
from immagent._errors import AgentNotFoundError, MessageNotFoundError, SchemaError, ValidationError
from immagent._ids import as_uuid, content_id, uuid7
from immagent._messages import Message, utcnow
from immagent._migrations import (
    HEAD_REVISION,
    current_revision_sync,
    downgrade_sync,
    is_known_revision,
    upgrade_sync,
)
from immagent._orm import AGENTS, MESSAGES, TEXTS, AgentRow, TextRow
from immagent._sql import insert_ignore
from immagent._urls import database_url
from immagent._views import PersistentAgent, SystemPrompt

__all__ = ["Store"]

logger = logging.getLogger("immagent")

_TEXT_CACHE_SIZE = 1024


class _History:
    """A cached history (a tuple cannot be weakly referenced, this holder can)."""

    __slots__ = ("__weakref__", "messages")

    def __init__(self, messages: tuple[Message, ...]) -> None:
        self.messages = messages


def _agent_view(row: Any) -> PersistentAgent:
    """The one mapping from an agent row (ORM object or result row) to its view."""
    return PersistentAgent.model_validate(row, from_attributes=True)


def _message_view(row: Any) -> Message:
    """The one mapping from a message row to its view."""
    return Message.model_validate(row, from_attributes=True)


def _message_values(message: Message, root_id: UUID) -> dict[str, Any]:
    """The one mapping from a message value to the column values of the row that stores it."""
    return {
        "id": message.id,
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
    }


class Store:
    """Persistent agents on a SQLAlchemy async engine (PostgreSQL through asyncpg, SQLite through aiosqlite).

    Create one per process with ``await Store.connect(url)`` (or ``engine=`` to share an app's engine);
    run ``await store.migrate()`` (or ``immagent db upgrade``) once per database before first use.
    """

    def __init__(self, engine: AsyncEngine, *, owns_engine: bool) -> None:
        self._engine = engine
        self._owns_engine = owns_engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self._schema_checked = False
        self._schema_lock = asyncio.Lock()
        # SQLite has one writer at a time; queueing our own writers here is fairer and faster than
        # letting them poll the file lock (its busy handler sleeps in growing steps).
        self._write_lock: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )
        self._agents: weakref.WeakValueDictionary[UUID, PersistentAgent] = weakref.WeakValueDictionary()
        self._histories: weakref.WeakValueDictionary[UUID, _History] = weakref.WeakValueDictionary()
        self._texts: OrderedDict[UUID, str] = OrderedDict()

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def connect(
        cls,
        url: str | None = None,
        *,
        engine: AsyncEngine | None = None,
        min_size: int = 2,
        max_size: int = 10,
        max_inactive_connection_lifetime: float = 300.0,
    ) -> Store:
        """Open a store. ``url`` defaults to $IMMAGENT_DATABASE_URL, else ``sqlite+aiosqlite:///immagent.db``;
        ``engine=`` shares an existing engine (never disposed by the store). Never fails on the schema."""
        if engine is not None:
            if url is not None:
                raise ValidationError("engine", "pass either url or engine, not both")
            if not isinstance(engine, AsyncEngine):
                raise ValidationError("engine", f"must be an AsyncEngine, not {type(engine).__name__}")
            return cls(engine, owns_engine=False)
        check.positive_int("max_size", max_size)
        check.positive_int("min_size", min_size, minimum=0)
        if min_size > max_size:
            raise ValidationError("min_size", f"must be <= max_size ({max_size}), got {min_size}")
        check.seconds("max_inactive_connection_lifetime", max_inactive_connection_lifetime)
        resolved = database_url(url)
        own = create_async_engine(
            resolved,
            **engine_options(resolved, max_size=max_size, recycle=max_inactive_connection_lifetime),
        )
        prepare_engine(own)
        store = cls(own, owns_engine=True)
        try:
            await store._warm(min(min_size, max_size))
        except BaseException:
            await own.dispose()
            raise
        return store

    async def _warm(self, count: int) -> None:
        """Open ``count`` pooled connections up front (and fail fast on a bad URL or server)."""

        async def one() -> None:
            async with self._engine.connect() as conn:
                await conn.execute(select(literal(1)))

        await asyncio.gather(*(one() for _ in range(max(count, 1))))

    @property
    def engine(self) -> AsyncEngine:
        """The engine this store uses (its own, or the one it was given)."""
        return self._engine

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Release the pool (only when the store created the engine) and forget cached views."""
        self.clear_cache()
        if self._owns_engine:
            await self._engine.dispose()

    async def ping(self) -> bool:
        """True when the database answers; raises the driver's error when it does not."""
        async with self._engine.connect() as conn:
            await conn.execute(select(literal(1)))
        return True

    def clear_cache(self) -> None:
        """Forget cached views; the next reads go to the database."""
        self._agents.clear()
        self._histories.clear()
        self._texts.clear()

    # ------------------------------------------------------------------ schema

    async def migrate(self, revision: str = "head") -> None:
        """Upgrade immagent's tables to ``revision`` (default: this library's head) with Alembic.
        A database that a newer immagent already migrated is refused with SchemaError, untouched."""
        async with self._engine.begin() as conn:
            found = await conn.run_sync(current_revision_sync)
            if found is not None and not is_known_revision(found):
                raise _schema_error(found)
            await conn.run_sync(upgrade_sync, revision)
        self._schema_checked = False

    async def _downgrade(self, revision: str) -> None:
        """Downgrade immagent's tables (tests and ``immagent db downgrade``)."""
        async with self._engine.begin() as conn:
            await conn.run_sync(downgrade_sync, revision)
        self._schema_checked = False

    async def schema_revision(self) -> str | None:
        """The database's immagent revision (None for a database immagent never migrated)."""
        async with self._engine.connect() as conn:
            return await conn.run_sync(current_revision_sync)

    async def _require_schema(self) -> None:
        """Check once per store that the database is at this library's head; SchemaError otherwise."""
        if self._schema_checked:
            return
        async with self._schema_lock:
            if self._schema_checked:
                return
            found = await self.schema_revision()
            if found != HEAD_REVISION:
                raise _schema_error(found)
            self._schema_checked = True

    # ------------------------------------------------------------------ units of work

    @asynccontextmanager
    async def _write(self, session: AsyncSession | None) -> AsyncIterator[AsyncSession]:
        """One transaction of our own, committed at the end; or the caller's session, flushed but not
        committed, so the caller's transaction decides."""
        _check_session(session)
        await self._require_schema()
        try:
            if session is not None:
                yield session
                await session.flush()
                return
            async with self._write_lock, self._sessions() as own, own.begin():
                yield own
        except IntegrityError as exc:
            raise _integrity_error(exc) from exc

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncSession]:
        """A short read session; its connection goes back to the pool on exit."""
        await self._require_schema()
        async with self._sessions() as session:
            yield session

    # ------------------------------------------------------------------ agents

    async def create_agent(
        self,
        *,
        name: str,
        system_prompt: str,
        model: str,
        metadata: Mapping[str, Any] | None = None,
        model_settings: Mapping[str, Any] | None = None,
        session: AsyncSession | None = None,
    ) -> PersistentAgent:
        """A new root state with an empty history; the system prompt is stored once per distinct text."""
        check.text("name", name, max_length=255)
        check.text("system_prompt", system_prompt)
        check.text("model", model, max_length=255)
        meta = check.json_object("metadata", metadata)
        settings = check.model_settings(model_settings)
        prompt_id = content_id(system_prompt)
        agent_id = uuid7()
        now = utcnow()
        row = {
            "id": agent_id,
            "root_id": agent_id,
            "parent_id": None,
            "name": name,
            "system_prompt_id": prompt_id,
            "head_id": None,
            "model": model,
            "metadata_": meta,
            "model_settings": settings,
            "created_at": now,
        }
        async with self._write(session) as s:
            await s.execute(
                insert_ignore(s, TEXTS),
                [{"id": prompt_id, "content": system_prompt, "created_at": now}],
            )
            await s.execute(insert(AgentRow), [row])
        self._remember_text(prompt_id, system_prompt)
        return self._bind(_agent_view(row), (), cache=session is None)

    async def load_agent(self, agent_id: UUID | str) -> PersistentAgent:
        """The state with this id (from the cache when it is there); AgentNotFoundError when absent."""
        key = as_uuid(agent_id, "agent_id")
        cached = self._agents.get(key)
        if cached is not None:
            return cached
        async with self._read() as s:
            row = (await s.execute(select(AgentRow).where(AgentRow.id == key))).scalar_one_or_none()
        if row is None:
            raise AgentNotFoundError(key)
        return self._bind(_agent_view(row))

    async def load_agents(self, agent_ids: Iterable[UUID | str]) -> tuple[PersistentAgent, ...]:
        """Several states in one query, in the order asked; AgentNotFoundError names the first missing."""
        if isinstance(agent_ids, str | bytes) or not isinstance(agent_ids, Iterable):
            raise ValidationError("agent_ids", f"must be an iterable of ids, not {type(agent_ids).__name__}")
        keys = [as_uuid(i, "agent_ids") for i in agent_ids]
        missing = [k for k in dict.fromkeys(keys) if k not in self._agents]
        found: dict[UUID, PersistentAgent] = {k: v for k in keys if (v := self._agents.get(k)) is not None}
        if missing:
            async with self._read() as s:
                rows = (await s.execute(select(AgentRow).where(AgentRow.id.in_(missing)))).scalars()
                for row in rows:
                    found[row.id] = self._bind(_agent_view(row))
        for key in keys:
            if key not in found:
                raise AgentNotFoundError(key)
        return tuple(found[k] for k in keys)

    async def list_agents(
        self, limit: int = 100, offset: int = 0, name: str | None = None
    ) -> tuple[PersistentAgent, ...]:
        """States newest first; ``name`` filters by case-insensitive substring (``%`` and ``_`` literal)."""
        check.positive_int("limit", limit, minimum=0)
        check.positive_int("offset", offset, minimum=0)
        stmt = select(AgentRow).order_by(AgentRow.created_at.desc(), AgentRow.id.desc())
        if name is not None:
            check.text("name", name, allow_empty=True)
            stmt = stmt.where(AgentRow.name.icontains(name, autoescape=True))
        async with self._read() as s:
            rows = (await s.execute(stmt.limit(limit).offset(offset))).scalars().all()
        return tuple(self._bind(_agent_view(r)) for r in rows)

    async def count_agents(self, name: str | None = None) -> int:
        """How many states exist (matching ``name`` as ``list_agents`` does)."""
        stmt = select(func.count()).select_from(AgentRow)
        if name is not None:
            check.text("name", name, allow_empty=True)
            stmt = stmt.where(AgentRow.name.icontains(name, autoescape=True))
        async with self._read() as s:
            return int((await s.execute(stmt)).scalar_one())

    async def find_by_name(self, name: str) -> tuple[PersistentAgent, ...]:
        """States whose name is exactly ``name`` (case-sensitive), newest first."""
        check.text("name", name, allow_empty=True)
        stmt = (
            select(AgentRow)
            .where(AgentRow.name == name)
            .order_by(AgentRow.created_at.desc(), AgentRow.id.desc())
        )
        async with self._read() as s:
            rows = (await s.execute(stmt)).scalars().all()
        return tuple(self._bind(_agent_view(r)) for r in rows)

    async def delete(self, agent: PersistentAgent | UUID | str) -> None:
        """Remove one state. Its descendants stay whole (their histories keep the shared messages) and
        no other row is rewritten; messages no state reaches any more are removed later by ``gc()``."""
        key = agent.id if isinstance(agent, PersistentAgent) else as_uuid(agent, "agent")
        async with self._write(None) as s:
            result = await s.execute(delete(AgentRow).where(AgentRow.id == key))
        if getattr(result, "rowcount", 1) == 0:
            raise AgentNotFoundError(key)
        self._agents.pop(key, None)

    async def gc(self) -> dict[str, int]:
        """Remove messages that no remaining state's history contains, and texts no state uses.
        Never removes anything a remaining agent can reach. Returns counts per kind."""
        messages, agents, texts = MESSAGES, AGENTS, TEXTS
        reach = (
            select(agents.c.head_id.label("id"))
            .where(agents.c.head_id.is_not(None))
            .cte("immagent_reach", recursive=True)
        )
        reach = reach.union(
            select(messages.c.parent_id)
            .join(reach, messages.c.id == reach.c.id)
            .where(messages.c.parent_id.is_not(None))
        )
        async with self._write(None) as s:
            gone_messages = await _deleted(
                s, delete(messages).where(messages.c.id.not_in(select(reach.c.id))), messages.c.id
            )
            gone_texts = await _deleted(
                s, delete(texts).where(texts.c.id.not_in(select(agents.c.system_prompt_id))), texts.c.id
            )
        self._texts.clear()
        return {"messages": gone_messages, "texts": gone_texts}

    # ------------------------------------------------------------------ what views call

    def _bind(
        self, view: PersistentAgent, history: tuple[Message, ...] | None = None, *, cache: bool = True
    ) -> PersistentAgent:
        """Attach this store (and, when known, the history) to a view and cache it. A state written in
        a caller's session (``cache=False``) is not cached: that transaction may still roll back."""
        existing = self._agents.get(view.id)
        if existing is not None:
            view = existing
        else:
            view._store = self
            if cache:
                self._agents[view.id] = view
        if history is not None and view._history is None:
            view._history = self._share_history(view.head_id, history)
        return view

    def _share_history(self, head_id: UUID | None, messages: tuple[Message, ...]) -> _History:
        holder = self._histories.get(head_id) if head_id is not None else None
        if holder is None:
            holder = _History(messages)
            if head_id is not None:
                self._histories[head_id] = holder
        return holder

    async def _history(self, agent: PersistentAgent) -> tuple[Message, ...]:
        """The history of a state: cached, or one recursive query from its head to the root."""
        if agent._history is not None:
            return agent._history.messages  # type: ignore[no-any-return]
        if agent.head_id is None:
            messages: tuple[Message, ...] = ()
        elif (holder := self._histories.get(agent.head_id)) is not None:
            messages = holder.messages
        else:
            messages = await self._read_history(agent.head_id)
        agent._history = self._share_history(agent.head_id, messages)
        return messages

    async def _read_history(self, head_id: UUID) -> tuple[Message, ...]:
        table = MESSAGES
        walk = select(table).where(table.c.id == head_id).cte("immagent_history", recursive=True)
        parent = table.alias("parent")
        walk = walk.union_all(select(parent).join(walk, parent.c.id == walk.c.parent_id))
        async with self._read() as s:
            rows = (await s.execute(select(walk).order_by(walk.c.depth))).all()
        if not rows:
            raise MessageNotFoundError(head_id, f"history head {head_id} not found (removed by gc?)")
        return tuple(_message_view(r) for r in rows)

    async def _lineage(self, agent: PersistentAgent) -> tuple[PersistentAgent, ...]:
        """Root first, in one recursive query; stops at a deleted ancestor."""
        table = AGENTS
        walk = (
            select(table, literal(0).label("generation"))
            .where(table.c.id == agent.id)
            .cte("immagent_lineage", recursive=True)
        )
        parent = table.alias("parent")
        walk = walk.union_all(
            select(parent, (walk.c.generation + 1).label("generation")).join(
                walk, parent.c.id == walk.c.parent_id
            )
        )
        async with self._read() as s:
            rows = (await s.execute(select(walk).order_by(walk.c.generation.desc()))).all()
        if not rows:
            raise AgentNotFoundError(agent.id)
        return tuple(self._bind(_agent_view(r)) for r in rows)

    async def _children(self, agent: PersistentAgent) -> tuple[PersistentAgent, ...]:
        stmt = (
            select(AgentRow).where(AgentRow.parent_id == agent.id).order_by(AgentRow.created_at, AgentRow.id)
        )
        async with self._read() as s:
            rows = (await s.execute(stmt)).scalars().all()
        return tuple(self._bind(_agent_view(r)) for r in rows)

    def _remember_text(self, text_id: UUID, content: str) -> None:
        self._texts[text_id] = content
        self._texts.move_to_end(text_id)
        while len(self._texts) > _TEXT_CACHE_SIZE:
            self._texts.popitem(last=False)

    async def _text(self, text_id: UUID) -> str:
        """A stored text by id (content-addressed, so a cached copy is always right)."""
        cached = self._texts.get(text_id)
        if cached is not None:
            return cached
        async with self._read() as s:
            content = (
                await s.execute(select(TextRow.content).where(TextRow.id == text_id))
            ).scalar_one_or_none()
        if content is None:
            raise MessageNotFoundError(text_id, f"system prompt {text_id} not found")
        self._remember_text(text_id, content)
        return content

    async def _derive(
        self,
        agent: PersistentAgent,
        *,
        parent_id: UUID | None,
        metadata: Mapping[str, Any] | None = None,
        session: AsyncSession | None = None,
    ) -> PersistentAgent:
        """A new state with the same history (no message written): a clone or a metadata change."""
        meta = agent.metadata if metadata is None else check.json_object("metadata", metadata)
        row = self._agent_row(agent, parent_id=parent_id, head_id=agent.head_id, metadata=meta)
        async with self._write(session) as s:
            await s.execute(insert(AgentRow), [row])
        history = agent._history.messages if agent._history is not None else None
        return self._bind(_agent_view(row), history, cache=session is None)

    def _agent_row(
        self,
        agent: PersistentAgent,
        *,
        parent_id: UUID | None,
        head_id: UUID | None,
        metadata: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Column values of a new state derived from ``agent`` (same name, prompt, model, settings)."""
        return {
            "id": uuid7(),
            "root_id": agent.root_id,
            "parent_id": parent_id,
            "name": agent.name,
            "system_prompt_id": agent.system_prompt_id,
            "head_id": head_id,
            "model": agent.model,
            "metadata_": dict(metadata),
            "model_settings": dict(agent.model_settings),
            "created_at": utcnow(),
        }

    async def _prepare_turn(
        self,
        agent: PersistentAgent,
        text: str,
        options: TurnOptions,
        session: AsyncSession | None = None,
    ) -> Turn:
        """Check the inputs, then read what the turn needs (cache first); no connection is kept."""
        extra = check.turn_request(text, options)
        _check_session(session)
        history = await self._history(agent)
        prompt = await self._text(agent.system_prompt_id)
        return Turn(history, prompt, text, agent.model, {**agent.model_settings, **extra}, options)

    async def _commit_turn(
        self,
        agent: PersistentAgent,
        history: tuple[Message, ...],
        new: Sequence[Message],
        session: AsyncSession | None,
    ) -> PersistentAgent:
        """Insert a turn's messages and the new state in one transaction (or the caller's)."""
        row = self._agent_row(agent, parent_id=agent.id, head_id=new[-1].id, metadata=agent.metadata)
        async with self._write(session) as s:
            # One multi-row INSERT for the messages, then the agent that points at them.
            await s.execute(insert(MESSAGES), [_message_values(m, agent.root_id) for m in new])
            await s.execute(insert(AgentRow), [row])
        return self._bind(_agent_view(row), history + tuple(new), cache=session is None)

    async def _advance(
        self,
        agent: PersistentAgent,
        text: str,
        options: TurnOptions,
        session: AsyncSession | None,
    ) -> PersistentAgent:
        turn = await self._prepare_turn(agent, text, options, session)
        new = await core.advance(turn)
        return await self._commit_turn(agent, turn.history, new, session)

    async def _advance_stream(
        self, agent: PersistentAgent, text: str, options: TurnOptions
    ) -> AsyncIterator[TurnEvent]:
        turn = await self._prepare_turn(agent, text, options)
        async for event in core.run_turn(turn, stream=True):
            if isinstance(event, TurnResult):
                new_agent = await self._commit_turn(agent, turn.history, event.messages, None)
                yield TurnComplete(new_agent, event.messages)
            else:
                yield event

    # ------------------------------------------------------------------ sizes, export and import

    async def stats(self) -> dict[str, int]:
        """How many rows immagent's tables hold: ``{"agents": n, "messages": n, "texts": n}`` (one query)."""
        counts = [select(func.count()).select_from(t).scalar_subquery() for t in (AGENTS, MESSAGES, TEXTS)]
        async with self._read() as s:
            agents, messages, texts = (await s.execute(select(*counts))).one()
        return {"agents": int(agents), "messages": int(messages), "texts": int(texts)}

    async def import_states(
        self,
        agents: Sequence[PersistentAgent],
        messages: Sequence[Message],
        system_prompts: Sequence[SystemPrompt],
    ) -> tuple[PersistentAgent, ...]:
        """Recreate states exported from a store (``immagent export``), ids kept, in one transaction.

        ``messages`` must hold every message of the states' histories and ``system_prompts`` their prompts
        (checked before anything is written). A row whose id exists already is left as it is (stored rows
        are immutable), so importing the same states twice changes nothing. Returns the states, bound."""
        by_id = {m.id: m for m in messages}
        root_of: dict[UUID, UUID] = {}  # message id -> root_id of the lineage whose history holds it
        for agent in agents:
            check.text("name", agent.name, max_length=255)
            check.text("model", agent.model, max_length=255)
            check.json_object("metadata", agent.metadata)
            check.model_settings(agent.model_settings)
            cursor = agent.head_id
            while cursor is not None and cursor not in root_of:
                message = by_id.get(cursor)
                if message is None:
                    raise ValidationError("messages", f"message {cursor} of state {agent.id} is missing")
                parent = by_id.get(message.parent_id) if message.parent_id is not None else None
                known = parent is not None or message.parent_id is None  # else: reported as missing next
                if known and message.depth != (parent.depth + 1 if parent is not None else 0):
                    raise ValidationError("messages", f"message {message.id} has an inconsistent depth")
                root_of[cursor] = agent.root_id
                cursor = message.parent_id
        if extra := [str(i) for i in by_id if i not in root_of]:
            raise ValidationError("messages", f"no state's history holds {', '.join(extra[:3])}")
        prompts = {p.id: p.content for p in system_prompts}
        for prompt_id, content in prompts.items():
            if content_id(content) != prompt_id:
                raise ValidationError("system_prompts", f"{prompt_id} is not the id of its content")
        if missing := [str(a.id) for a in agents if a.system_prompt_id not in prompts]:
            raise ValidationError("system_prompts", f"the system prompt of state {missing[0]} is missing")
        rows = []
        for agent in agents:
            row = self._agent_row(
                agent, parent_id=agent.parent_id, head_id=agent.head_id, metadata=agent.metadata
            )
            row.update(id=agent.id, created_at=agent.created_at, root_id=agent.root_id)
            row["metadata"] = row.pop("metadata_")  # the Core table's column key
            rows.append(row)
        now = utcnow()
        async with self._write(None) as s:
            if prompts:
                texts = [{"id": i, "content": c, "created_at": now} for i, c in prompts.items()]
                await s.execute(insert_ignore(s, TEXTS), texts)
            if by_id:  # parents first: a message's parent_id is a foreign key
                ordered = sorted(by_id.values(), key=lambda m: m.depth)
                await s.execute(
                    insert_ignore(s, MESSAGES), [_message_values(m, root_of[m.id]) for m in ordered]
                )
            if rows:
                await s.execute(insert_ignore(s, AGENTS), rows)
        return await self.load_agents(a.id for a in agents)


def _check_session(session: object) -> None:
    """``session=`` must be None or the caller's AsyncSession (checked before the model is called)."""
    if session is not None and not isinstance(session, AsyncSession):
        raise ValidationError("session", f"must be an AsyncSession, not {type(session).__name__}")


async def _deleted(session: AsyncSession, statement: Any, key: Any) -> int:
    """Run a DELETE and count its rows (RETURNING where the dialect has it: SQLite's rowcount is -1
    for a DELETE driven by a recursive CTE)."""
    if session.get_bind().dialect.delete_returning:
        return len((await session.execute(statement.returning(key))).all())
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0))


def _schema_error(found: str | None) -> SchemaError:
    """The database is not at this library's head: say where it is, what is needed, and the fix."""
    fix = "run `immagent db upgrade` (or `await store.migrate()`, or `alembic upgrade head`)"
    if found is None:
        message = (
            "the database has no immagent schema (revision: none; never migrated, or downgraded to base); "
            f"this library needs revision {HEAD_REVISION}: {fix}"
        )
    elif is_known_revision(found):
        message = (
            f"the database is at immagent revision {found}, behind this library's head {HEAD_REVISION}: {fix}"
        )
    else:
        message = (
            f"the database is at immagent revision {found}, newer than this library's head {HEAD_REVISION} "
            "(a newer immagent migrated it): upgrade immagent here (pip install -U immagent); "
            "this version will not use it"
        )
    return SchemaError(message, database_revision=found, library_revision=HEAD_REVISION)


def _integrity_error(exc: IntegrityError) -> Exception:
    """A foreign-key failure while writing means something we point at was removed meanwhile."""
    text = str(exc.orig).lower()
    if "foreign key" in text:
        return MessageNotFoundError(
            "?", "a message or system prompt this state needs was removed (by gc) while writing; reload it"
        )
    return exc
