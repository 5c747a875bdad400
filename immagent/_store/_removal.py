"""The only paths that remove rows: ``delete`` (one state), ``gc`` (what no remaining state reaches),
and erasure (``erase_tenant``, ``erase_tree``: every row of that scope, for a person who asks to be
forgotten). Thread deletion lives with the threads. Nothing here ever rewrites a row that stays."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import ColumnElement, and_, exists, select
from sqlalchemy import delete as delete_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from immagent import _validation as check
from immagent._errors import AgentNotFoundError, ValidationError
from immagent._ids import as_uuid
from immagent._orm import AGENTS, MESSAGES, TEXTS, THREAD_MOVES, THREADS
from immagent._sql import MYSQL_FAMILY, children_first, violation
from immagent._store import _citus
from immagent._views import PersistentAgent

if TYPE_CHECKING:
    from immagent._store._store import Store

#: The kinds erasure counts, in the order it removes them (what points at a row goes first).
ERASED_KINDS = ("thread_moves", "threads", "agents", "messages", "texts")


async def delete(store: Store, agent: PersistentAgent | UUID | str) -> None:
    key = agent.id if isinstance(agent, PersistentAgent) else as_uuid(agent, "agent")
    try:
        async with store._db.write() as s:
            try:
                result = await s.execute(delete_(AGENTS).where(*_the_state(store, agent, key)))
            except IntegrityError as exc:
                if violation(exc) == "foreign_key":  # only a thread's log refers to a state
                    raise _InUse from exc
                raise
            if store._db.distributed and await _pointed_at(s, store, key):
                raise _InUse  # no foreign key on Citus: looked for after the DELETE (see _citus)
    except _InUse as exc:
        used_by = await _rows(
            store, select(THREAD_MOVES.c.key).where(THREAD_MOVES.c.agent_id == key).limit(1)
        )
        thread = repr(used_by[0][0]) if used_by else "a thread"
        raise ValidationError(
            "agent", f"thread {thread} points at this state (now or in its log): delete_thread() first"
        ) from exc.__cause__
    if getattr(result, "rowcount", 1) == 0:
        raise AgentNotFoundError(key)
    store._cache.agents.pop(key, None)


def _the_state(store: Store, agent: PersistentAgent | UUID | str, key: UUID) -> list[ColumnElement[bool]]:
    """The row of the state to delete; with its tree when known (one shard on Citus, else every one)."""
    where = [AGENTS.c.id == key, AGENTS.c.tenant == store.tenant_name]
    if isinstance(agent, PersistentAgent):
        where.append(AGENTS.c.root_id == agent.root_id)
    return where


async def _pointed_at(session: AsyncSession, store: Store, key: UUID) -> bool:
    """Whether a thread's log (of this tenant: threads point only at their tenant's states) holds ``key``."""
    found = await session.execute(
        select(THREAD_MOVES.c.key)
        .where(THREAD_MOVES.c.tenant == store.tenant_name, THREAD_MOVES.c.agent_id == key)
        .limit(1)
    )
    return found.first() is not None


class _InUse(Exception):
    """The state to delete is in a thread's log (the foreign key refused the DELETE)."""


async def gc(store: Store) -> dict[str, int]:
    """Messages no remaining state reaches (of this store's tenant when it is scoped), and texts no
    state uses. One statement on one database; on Citus one per tree (see ``_gc_per_tree``)."""
    if store._db.distributed:
        return await _gc_per_tree(store)
    dialect = store._db.dialect
    reach = (
        select(AGENTS.c.head_id.label("id"))
        .where(AGENTS.c.head_id.is_not(None))
        # MySQL and MariaDB take no WITH before DELETE: there the CTE goes inside the subquery.
        .cte("immagent_reach", recursive=True, nesting=dialect in MYSQL_FAMILY)
    )
    reach = reach.union(
        select(MESSAGES.c.parent_id)
        .join(reach, MESSAGES.c.id == reach.c.id)
        .where(MESSAGES.c.parent_id.is_not(None))
    )
    unreached: ColumnElement[bool] = MESSAGES.c.id.not_in(select(reach.c.id))
    if store.scoped:
        unreached = and_(MESSAGES.c.tenant == store.tenant_name, unreached)
    async with store._db.write() as s:
        unreachable = children_first(delete_(MESSAGES).where(unreached), MESSAGES.c.depth, dialect)
        gone_messages = await deleted(s, unreachable, MESSAGES.c.id)
        gone_texts = await _unused_texts(s, None)
    store._cache.forget_texts()
    return {"messages": gone_messages, "texts": gone_texts}


async def _gc_per_tree(store: Store) -> dict[str, int]:
    """gc on Citus: the walk from the heads to the root runs tree by tree, each a statement on the one
    shard that holds the tree (a recursive query must name its tree there), each in its own transaction.
    A turn inserts its messages and its state together, so a walk never sees one without the other.
    Cost: one round trip per tree that has messages; a maintenance job, not a request's work."""
    trees = _citus.TREES
    if store.scoped:
        trees = trees.where(MESSAGES.c.tenant == store.tenant_name)
    async with store._db.read() as s:
        roots = list((await s.execute(trees)).scalars())
    gone_messages = 0
    for root_id in roots:
        heads = select(AGENTS.c.head_id.label("id")).where(
            AGENTS.c.head_id.is_not(None), AGENTS.c.root_id == root_id
        )
        reach = heads.cte("immagent_reach", recursive=True)
        reach = reach.union(
            select(MESSAGES.c.parent_id)
            .join(reach, MESSAGES.c.id == reach.c.id)
            .where(MESSAGES.c.parent_id.is_not(None), MESSAGES.c.root_id == root_id)
        )
        unreached = and_(MESSAGES.c.root_id == root_id, MESSAGES.c.id.not_in(select(reach.c.id)))
        async with store._db.write() as s:
            gone_messages += await deleted(s, delete_(MESSAGES).where(unreached), MESSAGES.c.id)
    async with store._db.write() as s:
        await s.execute(_citus.SEQUENTIAL)  # the reference table is written after a fan-out read
        gone_texts = await _unused_texts(s, None, distributed=True)
    store._cache.forget_texts()
    return {"messages": gone_messages, "texts": gone_texts}


async def erase_tenant(store: Store, tenant: str) -> dict[str, int]:
    check.tenant(tenant)
    if store.scoped and tenant != store.tenant_name:
        raise ValidationError("tenant", f"a store scoped to {store.tenant_name!r} can erase only that tenant")
    return await _erase(store, AGENTS.c.tenant == tenant, MESSAGES.c.tenant == tenant, tenant=tenant)


async def erase_tree(store: Store, root: PersistentAgent | UUID | str) -> dict[str, int]:
    root_id = root.root_id if isinstance(root, PersistentAgent) else as_uuid(root, "root_id")
    tenant = store.tenant_name
    agents = and_(AGENTS.c.root_id == root_id, AGENTS.c.tenant == tenant)
    messages = and_(MESSAGES.c.tenant == tenant, MESSAGES.c.root_id == root_id)
    return await _erase(store, agents, messages, tenant=None, root_id=root_id)


async def _erase(
    store: Store,
    agents: ColumnElement[bool],
    messages: ColumnElement[bool],
    *,
    tenant: str | None,
    root_id: UUID | None = None,
) -> dict[str, int]:
    """Remove, in one transaction, the agents and messages matched, every thread of ``tenant`` (or, for
    a tree, every thread that ever pointed at one of its states: its log would hold erased states), and
    the prompts no remaining state uses."""
    async with store._db.write() as s:
        if store._db.distributed:  # texts (a reference table) are written after the fan-out DELETEs
            await s.execute(_citus.SEQUENTIAL)
        if tenant is not None:
            threads, moves = THREADS.c.tenant == tenant, THREAD_MOVES.c.tenant == tenant
        else:
            touched = select(THREAD_MOVES.c.key).where(  # a log entry names its state's tree
                THREAD_MOVES.c.tenant == store.tenant_name, THREAD_MOVES.c.root_id == root_id
            )
            keys = list((await s.execute(touched.distinct())).scalars())
            threads = and_(THREADS.c.tenant == store.tenant_name, THREADS.c.key.in_(keys))
            moves = and_(THREAD_MOVES.c.tenant == store.tenant_name, THREAD_MOVES.c.key.in_(keys))
        prompts = list(
            (await s.execute(select(AGENTS.c.system_prompt_id).where(agents).distinct())).scalars()
        )
        counts = {
            "thread_moves": await deleted(s, delete_(THREAD_MOVES).where(moves), THREAD_MOVES.c.key),
            "threads": await deleted(s, delete_(THREADS).where(threads), THREADS.c.key),
            "agents": await deleted(s, delete_(AGENTS).where(agents), AGENTS.c.id),
            "messages": await deleted(
                s,
                children_first(delete_(MESSAGES).where(messages), MESSAGES.c.depth, store._db.dialect),
                MESSAGES.c.id,
            ),
            "texts": await _unused_texts(s, prompts, distributed=store._db.distributed) if prompts else 0,
        }
    store._cache.clear()
    return counts


async def _rows(store: Store, stmt: Any) -> list[Any]:
    async with store._db.read() as s:
        return list((await s.execute(stmt)).all())


async def _unused_texts(session: AsyncSession, among: list[UUID] | None, *, distributed: bool = False) -> int:
    """Delete texts no state uses: all of them (gc), or only those ``among`` (erasure). On Citus a
    reference table's DELETE cannot look into a distributed table: the prompts in use are read first
    (a fan-out), and a state created meanwhile with one of them makes the DELETE fail on its foreign
    key (the transaction rolls back; run it again)."""
    if distributed:
        used = select(AGENTS.c.system_prompt_id).distinct()
        if among is not None:
            used = used.where(AGENTS.c.system_prompt_id.in_(among))
        in_use = list((await session.execute(used)).scalars())
        where: ColumnElement[bool] = TEXTS.c.id.not_in(in_use)
    else:
        where = ~exists().where(AGENTS.c.system_prompt_id == TEXTS.c.id)
    if among is not None:
        where = and_(TEXTS.c.id.in_(among), where)
    return await deleted(session, delete_(TEXTS).where(where), TEXTS.c.id)


async def deleted(session: AsyncSession, statement: Any, key: Any) -> int:
    """Run a DELETE and count its rows (RETURNING where the dialect has it: SQLite's rowcount is -1
    for a DELETE driven by a recursive CTE)."""
    if session.get_bind().dialect.delete_returning:
        return len((await session.execute(statement.returning(key))).all())
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0))
