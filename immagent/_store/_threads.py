"""Threads: a key, unique in its tenant, that points at one state and moves by appending to its log.

Nothing is rewritten: a move INSERTs the next position of the thread's log, and the head is the newest
entry. Moves are optimistic: each names the position it read; the primary key (tenant, key, position)
lets exactly one writer insert the next position, and the others get ConflictError with nothing written.
A thread's advance writes the turn's messages, the new state and the move in one transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import Connection, Select, and_, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from immagent import _validation as check
from immagent._advance import TurnComplete, TurnEvent, TurnOptions
from immagent._errors import (
    AgentNotFoundError,
    ConflictError,
    ThreadExistsError,
    ThreadNotFoundError,
)
from immagent._ids import as_uuid
from immagent._messages import utcnow
from immagent._orm import THREAD_MOVES, THREADS
from immagent._sql import violation
from immagent._store import _agents, _citus, _edits, _turns
from immagent._store._paging import Page, after_cursor, decode_cursor, encode_cursor, page_of
from immagent._store._rows import move_view, thread_view
from immagent._views import PersistentAgent, Thread, ThreadMove

if TYPE_CHECKING:
    from immagent._store._store import Store

_CURSOR = "threads"
_INSERT_MOVE = insert(THREAD_MOVES)


def _bind(
    store: Store, view: Thread, head: PersistentAgent | None = None, root_id: UUID | None = None
) -> Thread:
    """Attach the store, and the head's view when we hold it (so the next turn reads nothing), else
    its tree (so loading it reads one shard)."""
    view._store = store
    view._head = head
    view._root_id = head.root_id if head is not None else root_id
    return view


def _bind_row(store: Store, row: Any) -> Thread:
    return _bind(store, thread_view(row), root_id=row.root_id)


def _heads() -> Select[Any]:
    """Threads joined with their newest move: the columns of a Thread view."""
    later = THREAD_MOVES.alias("later")
    newest = (
        select(func.max(later.c.position))
        .where(later.c.tenant == THREADS.c.tenant, later.c.key == THREADS.c.key)
        .scalar_subquery()
    )
    return (
        select(
            THREADS.c.tenant,
            THREADS.c.key,
            THREADS.c.metadata,
            THREADS.c.created_at,
            THREAD_MOVES.c.agent_id,
            THREAD_MOVES.c.root_id,
            THREAD_MOVES.c.position,
            THREAD_MOVES.c.created_at.label("moved_at"),
        )
        .join(
            THREAD_MOVES,
            and_(THREAD_MOVES.c.tenant == THREADS.c.tenant, THREAD_MOVES.c.key == THREADS.c.key),
        )
        .where(THREAD_MOVES.c.position == newest)
    )


async def _agent_in_tenant(store: Store, agent: PersistentAgent | UUID | str) -> PersistentAgent:
    """The state a thread may point at: one this store's tenant can see (else AgentNotFoundError)."""
    if isinstance(agent, PersistentAgent):
        if agent.tenant != store.tenant_name:
            raise AgentNotFoundError(agent.id)
        return agent
    return await _agents.load(store, as_uuid(agent, "agent"))


def _move(tenant: str, key: str, position: int, agent: tuple[UUID, UUID], kind: str) -> dict[str, Any]:
    """The log row of a move to ``agent`` (its id and its tree)."""
    return {
        "tenant": tenant,
        "key": key,
        "position": position,
        "agent_id": agent[0],
        "root_id": agent[1],
        "kind": kind,
        "created_at": utcnow(),
    }


def _append(conn: Connection, thread: Thread, agent: tuple[UUID, UUID], kind: str, check: bool) -> Thread:
    """Insert the thread's next position (on the unit of work's connection, in its greenlet: see
    ``Database.write_many``); the primary key refuses it if another writer got there first. ``check``:
    no foreign key guards the state (Citus), so it is locked here first, as the key would. Returns the
    moved thread's view (unbound: the caller binds it once the transaction committed)."""
    agent_id = agent[0]
    values = _move(thread.tenant, thread.key, thread.position + 1, agent, kind)
    moved = {**thread.__dict__, "agent_id": agent_id, "position": values["position"]}
    if check and not _citus.state_exists(conn, agent):
        raise _Missing(thread.key, agent_id)
    try:
        conn.execute(_INSERT_MOVE, values)
    except IntegrityError as exc:
        kind_of = violation(exc)
        if kind_of == "unique":
            raise ConflictError(thread.key, "", expected=thread.position) from exc
        if kind_of == "foreign_key":
            raise _Missing(thread.key, agent_id) from exc
        raise
    return Thread.model_validate({**moved, "moved_at": values["created_at"]})


class _Missing(Exception):
    """A move's foreign key failed: the thread or the state was removed meanwhile (told apart later)."""

    def __init__(self, key: str, agent_id: UUID) -> None:
        self.key, self.agent_id = key, agent_id


async def _conflict(store: Store, error: ConflictError) -> ConflictError:
    """The conflict with where the thread is now (read after the failed transaction ended)."""
    try:
        current: Thread | None = await load(store, error.key)
    except ThreadNotFoundError:
        current = None
    where = f"position {current.position} (state {current.agent_id})" if current else "deleted"
    message = (
        f"thread {error.key!r} was moved by another writer: expected position {error.expected}, "
        f"it is now at {where}; nothing was written. Reload it (store.load_thread) and retry from there"
    )
    return type(error)(error.key, message, expected=error.expected, current=current)


async def _missing(store: Store, error: _Missing) -> Exception:
    try:
        await load(store, error.key)
    except ThreadNotFoundError as gone:
        return gone
    return AgentNotFoundError(error.agent_id, f"agent {error.agent_id} not found (deleted meanwhile)")


# ---------------------------------------------------------------------- create, read, list, delete


async def create(
    store: Store,
    key: str,
    agent: PersistentAgent | UUID | str,
    *,
    metadata: Mapping[str, Any] | None,
    session: AsyncSession | None,
) -> Thread:
    check.thread_key(key)
    meta = check.json_object("metadata", metadata)
    head = await _agent_in_tenant(store, agent)
    now = utcnow()
    values = {"tenant": store.tenant_name, "key": key, "metadata": meta, "created_at": now}
    first = _move(store.tenant_name, key, 0, (head.id, head.root_id), "create")
    first["created_at"] = now
    try:
        async with store._db.write(session) as s:
            try:
                await s.execute(insert(THREADS), [values])
            except IntegrityError as exc:
                if violation(exc) == "unique":
                    raise ThreadExistsError(key, "", expected=None) from exc
                raise
            if store._db.distributed:  # no foreign key guards the state there: lock it as one would
                locked = await s.execute(_citus.LOCK_STATE, _citus.state_params((head.id, head.root_id)))
                if locked.first() is None:
                    raise _Missing(key, head.id)
            try:
                await s.execute(insert(THREAD_MOVES), [first])
            except IntegrityError as exc:
                if violation(exc) == "foreign_key":
                    raise _Missing(key, head.id) from exc
                raise
    except ThreadExistsError as exc:
        current = await load(store, key)
        raise ThreadExistsError(
            key, f"thread {key!r} already exists (at position {current.position})", current=current
        ) from exc.__cause__
    except _Missing as exc:
        raise AgentNotFoundError(head.id, f"agent {head.id} not found (deleted meanwhile)") from exc.__cause__
    row = {**values, "agent_id": head.id, "position": 0, "moved_at": now}
    return _bind(store, thread_view(row), head)


async def load(store: Store, key: str) -> Thread:
    check.thread_key(key)
    stmt = _heads().where(THREADS.c.tenant == store.tenant_name, THREADS.c.key == key)
    async with store._db.read() as s:
        row = (await s.execute(stmt)).one_or_none()
    if row is None:
        raise ThreadNotFoundError(key)
    return _bind_row(store, row)


async def listing(store: Store, *, limit: int, after: str | None, key: str | None) -> Page[Thread]:
    check.page_limit(limit)
    stmt = _heads().where(THREADS.c.tenant == store.tenant_name)
    if key is not None:
        check.text("key", key, allow_empty=True)
        stmt = stmt.where(THREADS.c.key.icontains(key, autoescape=True))
    if after is not None:
        at, last = decode_cursor(_CURSOR, after)
        stmt = stmt.where(after_cursor(THREADS.c.created_at, THREADS.c.key, at, last))
    stmt = stmt.order_by(THREADS.c.created_at.desc(), THREADS.c.key.desc()).limit(limit + 1)
    async with store._db.read() as s:
        rows = (await s.execute(stmt)).all()
    views = [_bind_row(store, r) for r in rows]
    return page_of(views, limit, lambda t: encode_cursor(_CURSOR, t.created_at, t.key))


async def log(store: Store, thread: Thread) -> tuple[ThreadMove, ...]:
    stmt = (
        select(THREAD_MOVES)
        .where(THREAD_MOVES.c.tenant == thread.tenant, THREAD_MOVES.c.key == thread.key)
        .order_by(THREAD_MOVES.c.position)
    )
    async with store._db.read() as s:
        rows = (await s.execute(stmt)).all()
    if not rows:
        raise ThreadNotFoundError(thread.key)
    return tuple(move_view(r) for r in rows)


async def pointing_at(store: Store, agent_ids: Iterable[UUID | str]) -> dict[UUID, tuple[Thread, ...]]:
    """The threads whose head is each of ``agent_ids`` (those no thread points at are left out)."""
    keys = list(dict.fromkeys(as_uuid(i, "agent_ids") for i in agent_ids))
    if not keys:
        return {}
    stmt = (
        _heads()
        .where(THREADS.c.tenant == store.tenant_name, THREAD_MOVES.c.agent_id.in_(keys))
        .order_by(THREADS.c.key)
    )
    async with store._db.read() as s:
        rows = (await s.execute(stmt)).all()
    found: dict[UUID, list[Thread]] = {}
    for row in rows:
        found.setdefault(row.agent_id, []).append(_bind_row(store, row))
    return {agent_id: tuple(threads) for agent_id, threads in found.items()}


async def delete_thread(store: Store, key: str) -> int:
    """Remove a thread and its whole log; the states it pointed at stay. Returns the moves removed."""
    check.thread_key(key)
    where = (store.tenant_name, key)
    async with store._db.write() as s:
        moves = await s.execute(
            delete(THREAD_MOVES).where(THREAD_MOVES.c.tenant == where[0], THREAD_MOVES.c.key == where[1])
        )
        gone = await s.execute(delete(THREADS).where(THREADS.c.tenant == where[0], THREADS.c.key == where[1]))
        if getattr(gone, "rowcount", 1) == 0:
            raise ThreadNotFoundError(key)
    return int(getattr(moves, "rowcount", 0))


# ---------------------------------------------------------------------- moves


async def head(store: Store, thread: Thread) -> PersistentAgent:
    if thread._head is not None:
        return thread._head  # type: ignore[no-any-return]
    thread._head = await _agents.load(store, thread.agent_id, thread._root_id)
    return thread._head  # type: ignore[no-any-return]


async def move(
    store: Store, thread: Thread, agent: PersistentAgent | UUID | str, session: AsyncSession | None
) -> Thread:
    target = await _agent_in_tenant(store, agent)
    try:
        check = store._db.distributed
        moved = await store._db.write_many(
            lambda conn: _append(conn, thread, (target.id, target.root_id), "move", check), session
        )
    except ConflictError as exc:
        raise await _conflict(store, exc) from exc.__cause__
    except _Missing as exc:
        raise await _missing(store, exc) from exc.__cause__
    return _bind(store, moved, target)


class _Moves:
    """The move a turn's transaction appended, kept for the view returned once it committed."""

    def __init__(self, thread: Thread, root_id: UUID, kind: str = "advance") -> None:
        self.thread = thread
        self.root_id = root_id  # the head's tree, so the new state's too
        self.kind = kind
        self.moved: Thread | None = None

    def __call__(self, conn: Connection, new_id: UUID) -> None:
        # The new state was inserted by this transaction: no check of it is needed.
        self.moved = _append(conn, self.thread, (new_id, self.root_id), self.kind, check=False)

    def result(self, store: Store, head: PersistentAgent) -> Thread:
        assert self.moved is not None, "the turn committed without its move"
        return _bind(store, self.moved, head)


#: Writes a new state from the head, with a thread's move in the same transaction.
_Write = Callable[[PersistentAgent, _Moves], Awaitable[PersistentAgent]]


async def _moving(store: Store, thread: Thread, kind: str, write: _Write) -> Thread:
    """Run ``write`` from the thread's head with the move in its transaction; the moved thread's view."""
    agent = await head(store, thread)
    moves = _Moves(thread, agent.root_id, kind)
    try:
        new = await write(agent, moves)
    except ConflictError as exc:
        raise await _conflict(store, exc) from exc.__cause__
    except _Missing as exc:
        raise await _missing(store, exc) from exc.__cause__
    return moves.result(store, new)


async def advance(
    store: Store, thread: Thread, text: str, options: TurnOptions, session: AsyncSession | None
) -> Thread:
    return await _moving(
        store,
        thread,
        "advance",
        lambda agent, moves: _turns.advance(store, agent, text, options, session, moves),
    )


async def extend(store: Store, thread: Thread, messages: object, session: AsyncSession | None) -> Thread:
    """The head plus ``messages`` as a new state, and the thread moved to it, in one transaction."""
    return await _moving(
        store, thread, "advance", lambda agent, moves: _edits.extend(store, agent, messages, session, moves)
    )


async def rewind(store: Store, thread: Thread, count: object, session: AsyncSession | None) -> Thread:
    """A new state ``count`` messages back from the head, and the thread moved to it, in one transaction."""
    check.positive_int("count", count, minimum=0)
    return await _moving(
        store, thread, "move", lambda agent, moves: _edits.rewind(store, agent, count, session, moves)
    )


async def advance_stream(
    store: Store, thread: Thread, text: str, options: TurnOptions
) -> AsyncIterator[TurnEvent]:
    agent = await head(store, thread)
    moves = _Moves(thread, agent.root_id)
    try:
        async for event in _turns.advance_stream(store, agent, text, options, moves):
            if isinstance(event, TurnComplete):
                yield TurnComplete(event.agent, event.messages, moves.result(store, event.agent))
            else:
                yield event
    except ConflictError as exc:
        raise await _conflict(store, exc) from exc.__cause__
    except _Missing as exc:
        raise await _missing(store, exc) from exc.__cause__
