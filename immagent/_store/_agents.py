"""Agent states: create, load, list, and what a bound view reads (history, lineage, children, prompt)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import CTE, Integer, Select, Table, bindparam, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from immagent import _validation as check
from immagent import limits
from immagent._errors import AgentNotFoundError, MessageNotFoundError, ValidationError
from immagent._ids import as_uuid, content_id, uuid7
from immagent._messages import Message, utcnow
from immagent._orm import AGENTS, MESSAGES, TEXTS
from immagent._sql import insert_ignore
from immagent._store._paging import Page, after_cursor, decode_cursor, encode_cursor, page_of
from immagent._store._rows import (
    AGENT_COLUMNS,
    MESSAGE_COLUMNS,
    agent_from_values,
    agent_views,
    columns,
    derived_agent,
    message_views,
    no_collection,
)
from immagent._views import PersistentAgent

if TYPE_CHECKING:
    from immagent._store._store import Store

_CURSOR = "agents"


# ---------------------------------------------------------------------- the reads, built once
# A statement object keeps its cache key, so each read goes straight to its compiled form; building the
# recursive walks anew cost more than running them on a short history.
#
# Every read of one conversation names its tree (``root_id``, the distribution column): on Citus that
# makes it a router query, run whole on the one shard that holds the tree; a recursive walk must name it
# in both its parts. On one database the (id, root_id) keys serve the same lookups: each step of a walk
# joins on both key columns, so the planner sees a unique-key lookup (with the constant filter alone, it
# can take a tree's ~1,000 rows for a few and scan them on every step).


def _history_statement() -> Select[Any]:
    """The history ending at :head_id in tree :root_id, root first: one recursive walk up the
    ``parent_id`` links."""
    table, root = MESSAGES, bindparam("root_id", type_=MESSAGES.c.root_id.type)
    walk = (
        select(table)
        .where(table.c.id == bindparam("head_id"), table.c.root_id == root)
        .cte("immagent_history", recursive=True)
    )
    parent = table.alias("parent")
    walk = walk.union_all(
        select(parent)
        .join(walk, (parent.c.id == walk.c.parent_id) & (parent.c.root_id == walk.c.root_id))
        .where(parent.c.root_id == root)
    )
    return select(*columns(walk.c, MESSAGE_COLUMNS)).order_by(walk.c.depth)


def _walk_up(table: Table, start: str, name: str, bound: str | None = None) -> CTE:
    """A recursive walk up the ``parent_id`` links from the row whose id is :start in tree :root_id, each
    row with its distance from it (``step``, 0 for the start); with ``bound``, it stops after :bound rows.
    The tree is named in both parts and each step joins on both key columns (see above)."""
    root = bindparam("root_id", type_=table.c.root_id.type)
    walk = (
        select(table, literal(0).label("step"))
        .where(table.c.id == bindparam(start), table.c.root_id == root)
        .cte(name, recursive=True)
    )
    parent = table.alias("parent")
    up = (
        select(parent, (walk.c.step + 1).label("step"))
        .join(walk, (parent.c.id == walk.c.parent_id) & (parent.c.root_id == walk.c.root_id))
        .where(parent.c.root_id == root)
    )
    if bound is not None:
        up = up.where(walk.c.step + 1 < bindparam(bound, type_=Integer))
    return walk.union_all(up)


def _recent_statement() -> Select[Any]:
    """The newest :last messages of the history ending at :head_id in tree :root_id, oldest first: the
    history's walk, stopped after :last rows, so a long history is never read to give its end."""
    walk = _walk_up(MESSAGES, "head_id", "immagent_recent", bound="last")
    return select(*columns(walk.c, MESSAGE_COLUMNS)).order_by(walk.c.depth)


def _lineage_statement() -> Select[Any]:
    """The states that led to :agent_id in tree :root_id, root first: one recursive walk up the
    ``parent_id`` links."""
    walk = _walk_up(AGENTS, "agent_id", "immagent_lineage")
    return select(*columns(walk.c, AGENT_COLUMNS)).order_by(walk.c.step.desc())


_AGENT_ROWS = select(*columns(AGENTS.c, AGENT_COLUMNS))  # the columns views are built from
_NEWEST_FIRST = (AGENTS.c.created_at.desc(), AGENTS.c.id.desc())
HISTORY = _history_statement()
RECENT = _recent_statement()
HEAD_DEPTH = select(MESSAGES.c.depth).where(
    MESSAGES.c.id == bindparam("head_id"), MESSAGES.c.root_id == bindparam("root_id")
)
LINEAGE = _lineage_statement()
_OF_TENANT = AGENTS.c.tenant == bindparam("tenant")
#: By id alone: every shard is asked on Citus (the id does not say which tree); by id in a known tree
#: (a thread's head): one shard.
LOAD = _AGENT_ROWS.where(AGENTS.c.id == bindparam("id"), _OF_TENANT)
LOAD_IN_TREE = LOAD.where(AGENTS.c.root_id == bindparam("root_id"))
LOAD_MANY = _AGENT_ROWS.where(AGENTS.c.id.in_(bindparam("ids", expanding=True)), _OF_TENANT)
LISTING = (  # newest first, one row more than the page, for its next cursor
    _AGENT_ROWS.where(_OF_TENANT)
    .order_by(*_NEWEST_FIRST)
    .limit(bindparam("limit", type_=Integer))
    .offset(bindparam("offset", type_=Integer))
)
FIND_BY_NAME = _AGENT_ROWS.where(AGENTS.c.name == bindparam("name"), _OF_TENANT).order_by(*_NEWEST_FIRST)
CHILDREN = _AGENT_ROWS.where(  # a state's children are in its tree
    AGENTS.c.parent_id == bindparam("parent_id"), AGENTS.c.root_id == bindparam("root_id"), _OF_TENANT
).order_by(AGENTS.c.created_at, AGENTS.c.id)
TEXT = select(TEXTS.c.content).where(TEXTS.c.id == bindparam("id"))


def cached(store: Store, key: UUID) -> PersistentAgent | None:
    """A cached state of this store's tenant (the cache is shared by every tenant's store)."""
    view = store._cache.agents.get(key)
    return view if view is not None and view.tenant == store.tenant_name else None


def bind(
    store: Store,
    view: PersistentAgent,
    history: tuple[Message, ...] | None = None,
    *,
    cache: bool = True,
    wire: list[dict[str, Any]] | None = None,
) -> PersistentAgent:
    """Attach ``store`` (and, when known, the history and its wire form) to a view and cache it. A state
    written in a caller's session (``cache=False``) is not cached: that transaction may still roll back."""
    existing = store._cache.agents.get(view.id)
    if existing is not None:
        view = existing
    else:
        view._store = store
        if cache:
            store._cache.agents[view.id] = view
    if history is not None:
        store._cache.share_history(view, history, wire)
    return view


async def create(
    store: Store,
    *,
    name: str,
    system_prompt: str,
    model: str,
    metadata: Mapping[str, Any] | None,
    model_settings: Mapping[str, Any] | None,
    session: AsyncSession | None,
) -> PersistentAgent:
    check.text("name", name, max_length=limits.NAME_MAX_LENGTH)
    check.text("system_prompt", system_prompt)
    check.text("model", model, max_length=limits.MODEL_MAX_LENGTH)
    meta = check.json_object("metadata", metadata)
    settings = check.model_settings(model_settings)
    prompt_id = content_id(system_prompt)
    agent_id = uuid7()
    now = utcnow()
    row = {
        "id": agent_id,
        "tenant": store.tenant_name,
        "root_id": agent_id,
        "parent_id": None,
        "name": name,
        "system_prompt_id": prompt_id,
        "head_id": None,
        "model": model,
        "metadata": meta,
        "model_settings": settings,
        "created_at": now,
    }
    async with store._db.write(session) as s:
        await insert_ignore(s, TEXTS, [{"id": prompt_id, "content": system_prompt, "created_at": now}])
        await s.execute(insert(AGENTS), [row])
    store._cache.remember_text(prompt_id, system_prompt)
    return bind(store, agent_from_values(row), (), cache=session is None)


async def load(store: Store, agent_id: UUID | str, root_id: UUID | None = None) -> PersistentAgent:
    """A state by id; ``root_id``, when the caller knows the tree, keeps the read on its one shard."""
    key = as_uuid(agent_id, "agent_id")
    known = cached(store, key)
    if known is not None:
        return known
    params = {"id": key, "tenant": store.tenant_name}
    stmt = LOAD if root_id is None else LOAD_IN_TREE
    if root_id is not None:
        params["root_id"] = root_id
    async with store._db.read() as s:
        found = _bound(store, await s.execute(stmt, params))
    if not found:
        raise AgentNotFoundError(key)
    return found[0]


async def load_many(store: Store, agent_ids: Iterable[UUID | str]) -> tuple[PersistentAgent, ...]:
    if isinstance(agent_ids, str | bytes) or not isinstance(agent_ids, Iterable):
        raise ValidationError("agent_ids", f"must be an iterable of ids, not {type(agent_ids).__name__}")
    keys = [as_uuid(i, "agent_ids") for i in agent_ids]
    found: dict[UUID, PersistentAgent] = {k: v for k in keys if (v := cached(store, k)) is not None}
    missing = [k for k in dict.fromkeys(keys) if k not in found]
    if missing:
        async with store._db.read() as s:
            params = {"ids": missing, "tenant": store.tenant_name}
            views = _bound(store, await s.execute(LOAD_MANY, params))
        found.update((view.id, view) for view in views)
    for key in keys:
        if key not in found:
            raise AgentNotFoundError(key)
    return tuple(found[k] for k in keys)


def _named(store: Store, stmt: Select[Any], name: str | None) -> Select[Any]:
    """``stmt`` limited to this store's tenant and, when given, names holding ``name`` (any case)."""
    stmt = stmt.where(AGENTS.c.tenant == store.tenant_name)
    if name is not None:
        check.text("name", name, allow_empty=True)
        stmt = stmt.where(AGENTS.c.name.icontains(name, autoescape=True))
    return stmt


async def listing(
    store: Store, *, limit: int, offset: int, name: str | None, after: str | None
) -> Page[PersistentAgent]:
    check.page_limit(limit)
    check.positive_int("offset", offset, minimum=0)
    params: dict[str, Any] = {"limit": limit + 1, "offset": offset, "tenant": store.tenant_name}
    stmt = LISTING  # the common case, built once; a name or a cursor adds its condition
    if name is not None:
        stmt = _named(store, stmt, name)
    if after is not None:
        if offset:
            raise ValidationError("offset", "pass either after= (keyset) or offset=, not both")
        at, last = decode_cursor(_CURSOR, after)
        stmt = stmt.where(after_cursor(AGENTS.c.created_at, AGENTS.c.id, at, as_uuid(last, "after")))
    async with store._db.read() as s:
        views = list(_bound(store, await s.execute(stmt, params)))
    return page_of(views, limit, lambda v: encode_cursor(_CURSOR, v.created_at, str(v.id)))


async def count(store: Store, *, name: str | None) -> int:
    stmt = _named(store, select(func.count()).select_from(AGENTS), name)
    async with store._db.read() as s:
        return int((await s.execute(stmt)).scalar_one())


async def find_by_name(store: Store, name: str) -> tuple[PersistentAgent, ...]:
    check.text("name", name, allow_empty=True)
    async with store._db.read() as s:
        return _bound(store, await s.execute(FIND_BY_NAME, {"name": name, "tenant": store.tenant_name}))


def _bound(store: Store, rows: Iterable[Any]) -> tuple[PersistentAgent, ...]:
    """Views of agent rows (a result is consumed row by row, never held as a list of rows), bound to
    ``store`` and cached (the cached view when there is one already)."""
    cached = store._cache.agents
    out: list[PersistentAgent] = []
    views = agent_views(rows, store)
    with no_collection():  # one weak reference per new view: the same burst as building them
        for view in views:
            existing = cached.get(view.id)
            if existing is None:
                cached[view.id] = existing = view
            out.append(existing)
    return tuple(out)


# ---------------------------------------------------------------------- what a bound view reads


async def history(store: Store, agent: PersistentAgent) -> tuple[Message, ...]:
    """The history of a state: cached, or one recursive query from its head to the root."""
    known = store._cache.history_of(agent)
    if known is None:
        assert agent.head_id is not None  # an empty history is always known
        known = await _read_history(store, agent.head_id, agent.root_id)
    store._cache.share_history(agent, known)
    return known


async def _read_history(store: Store, head_id: UUID, root_id: UUID) -> tuple[Message, ...]:
    async with store._db.read() as s:
        views = message_views(await s.execute(HISTORY, {"head_id": head_id, "root_id": root_id}))
    if not views:
        raise MessageNotFoundError(head_id, f"history head {head_id} not found (removed by gc?)")
    return tuple(views)


async def recent(store: Store, agent: PersistentAgent, last: int) -> tuple[Message, ...]:
    """The newest ``last`` messages of a state's history, oldest first: a slice of the cached history,
    or one recursive query that walks ``last`` steps from the head (never the whole history)."""
    check.positive_int("last", last, minimum=0)
    known = store._cache.history_of(agent)
    if known is not None:
        return known[max(len(known) - last, 0) :]
    if last == 0:
        return ()
    assert agent.head_id is not None  # an empty history is always known
    async with store._db.read() as s:
        params = {"head_id": agent.head_id, "root_id": agent.root_id, "last": last}
        views = message_views(await s.execute(RECENT, params))
    if not views:
        raise MessageNotFoundError(agent.head_id, f"history head {agent.head_id} not found (removed by gc?)")
    return tuple(views)


async def length(store: Store, agent: PersistentAgent) -> int:
    """How many messages a state's history holds: from the cache, else the head's depth (one row)."""
    known = store._cache.history_of(agent)
    if known is not None:
        return len(known)
    assert agent.head_id is not None
    async with store._db.read() as s:
        params = {"head_id": agent.head_id, "root_id": agent.root_id}
        depth = (await s.execute(HEAD_DEPTH, params)).scalar_one_or_none()
    if depth is None:
        raise MessageNotFoundError(agent.head_id, f"history head {agent.head_id} not found (removed by gc?)")
    return int(depth) + 1


async def lineage(store: Store, agent: PersistentAgent) -> tuple[PersistentAgent, ...]:
    """Root first, in one recursive query; stops at a deleted ancestor."""
    async with store._db.read() as s:
        views = _bound(store, await s.execute(LINEAGE, {"agent_id": agent.id, "root_id": agent.root_id}))
    if not views:
        raise AgentNotFoundError(agent.id)
    return views


async def children(store: Store, agent: PersistentAgent) -> tuple[PersistentAgent, ...]:
    async with store._db.read() as s:
        params = {"parent_id": agent.id, "root_id": agent.root_id, "tenant": agent.tenant}
        return _bound(store, await s.execute(CHILDREN, params))


async def text(store: Store, text_id: UUID) -> str:
    """A stored text by id (content-addressed, so a cached copy is always right)."""
    cached = store._cache.text(text_id)
    if cached is not None:
        return cached
    async with store._db.read() as s:
        stored = await s.execute(TEXT, {"id": text_id})
        content: str | None = stored.scalar_one_or_none()
    if content is None:
        raise MessageNotFoundError(text_id, f"system prompt {text_id} not found")
    store._cache.remember_text(text_id, content)
    return content


async def derive(
    store: Store,
    agent: PersistentAgent,
    *,
    parent_id: UUID | None,
    metadata: Mapping[str, Any] | None = None,
    session: AsyncSession | None = None,
) -> PersistentAgent:
    """A new state with the same history (no message written): a clone or a metadata change."""
    meta = agent.metadata if metadata is None else check.json_object("metadata", metadata)
    row = derived_agent(agent, parent_id=parent_id, head_id=agent.head_id, metadata=meta)
    async with store._db.write(session) as s:
        await s.execute(insert(AGENTS), [row])
    return bind(store, agent_from_values(row), store._cache.history_of(agent), cache=session is None)
