"""immagent on a real Citus cluster (a coordinator and two workers): the tables distributed and colocated,
the store's contract, atomic and concurrent turns, threads, tenants, erasure and gc, the UPDATE refusal on
the workers' shards, and EXPLAIN showing that a turn's writes and a history load are router queries (one
task, one shard). Without a cluster the cases are left out with one line saying why (tests/support/citus).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, insert, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from immagent import AgentNotFoundError, ConflictError, Store, ValidationError
from immagent._ids import content_id, uuid7
from immagent._messages import utcnow
from immagent._orm import AGENTS, MESSAGES, TEXTS
from immagent.testing import ScriptedModel
from tests.support.citus import CitusCluster
from tests.support.db import InjectedFault, StatementFault, empty_tables, row_counts
from tests.support.schema import immagent_cli

_DELETE_ORDER = (
    "immagent_thread_moves",
    "immagent_threads",
    "immagent_agents",
    "immagent_messages",
    "immagent_texts",
)


@pytest.fixture(scope="session")
async def citus_setup(citus_cluster: CitusCluster) -> AsyncIterator[tuple[str, str]]:
    """A fresh database on the cluster, migrated, then distributed by the CLI: (URL, what it printed)."""
    url = citus_cluster.create_database("immagent_citus")
    try:
        async with await Store.connect(url) as store:
            await store.migrate()
        distributed = await immagent_cli("db", "distribute", "--url", url)
        assert distributed.returncode == 0, distributed.stderr
        yield url, distributed.stdout
    finally:
        citus_cluster.drop_database(url)


@pytest.fixture
async def citus_url(citus_setup: tuple[str, str]) -> str:
    """The session's distributed database, emptied (the shards one at a time: the reference table's
    DELETE may not follow parallel DELETEs in one transaction)."""
    engine = create_async_engine(citus_setup[0])
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"))
            for table in _DELETE_ORDER:
                await conn.execute(text(f"DELETE FROM {table}"))
    finally:
        await engine.dispose()
    return citus_setup[0]


@pytest.fixture
async def store(citus_url: str) -> AsyncIterator[Store]:
    async with await Store.connect(citus_url) as opened:
        yield opened


@pytest.fixture
def model() -> AsyncIterator[ScriptedModel]:
    scripted = ScriptedModel("citus").install()
    yield scripted
    scripted.uninstall()


async def _query(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


# ------------------------------------------------------------------------------------------- distribution


async def test_distribute_makes_colocated_distributed_tables_and_a_second_run_changes_nothing(
    citus_setup: tuple[str, str],
) -> None:
    url, first = citus_setup
    assert "immagent_messages: distributed by root_id" in first
    assert "immagent_agents: distributed by root_id, colocated with immagent_messages" in first
    assert "immagent_thread_moves: distributed by tenant, colocated with immagent_threads" in first
    assert "immagent_texts: reference table" in first
    layout = {
        name: (method, column, group)
        for name, method, column, group in await _query(
            url,
            "SELECT logicalrelid::regclass::text, partmethod::text, "
            "column_to_column_name(logicalrelid, partkey), colocationid FROM pg_dist_partition",
        )
    }
    assert layout["immagent_texts"][0] == "n"  # a reference table: no distribution column
    assert layout["immagent_messages"][:2] == layout["immagent_agents"][:2] == ("h", "root_id")
    assert layout["immagent_messages"][2] == layout["immagent_agents"][2]
    assert layout["immagent_threads"][:2] == layout["immagent_thread_moves"][:2] == ("h", "tenant")
    assert layout["immagent_threads"][2] == layout["immagent_thread_moves"][2]

    again = await immagent_cli("db", "distribute", "--url", url)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "immagent's tables are already distributed; nothing to do"
    checked = await immagent_cli("db", "check", "--url", url)  # the dropped key is no drift there
    assert checked.returncode == 0, checked.stderr


async def test_distribute_on_a_database_without_citus_is_one_clear_error(
    migrated_urls: dict[str, str],
) -> None:
    for url in (migrated_urls["postgresql"], migrated_urls["sqlite"]):
        refused = await immagent_cli("db", "distribute", "--url", url)
        assert refused.returncode == 1
        assert refused.stderr.startswith("error: ") and len(refused.stderr.strip().splitlines()) == 1
        assert "no citus extension" in refused.stderr


async def test_update_is_refused_on_the_workers_shards_and_through_the_coordinator(
    store: Store, model: ScriptedModel, citus_cluster: CitusCluster, citus_url: str
) -> None:
    agent = await (await store.create_agent(name="a", system_prompt="p", model=model.model)).advance("hi")
    placements = await _query(
        citus_url,
        "SELECT shard_name(logicalrelid, s.shardid), p.nodename, p.nodeport FROM pg_dist_shard s "
        "JOIN pg_dist_placement pl USING (shardid) JOIN pg_dist_node p USING (groupid) "
        "WHERE logicalrelid = 'immagent_messages'::regclass AND s.shardid = "
        "get_shard_id_for_distribution_column('immagent_messages', CAST(:root AS uuid))",
        root=str(agent.root_id),
    )
    shard, host, port = placements[0]
    worker = next(w for w in citus_cluster.workers if (w.host, w.port) == (host, port))
    on_worker = create_async_engine(citus_cluster.node_url(worker, store.engine.url.database or ""))
    try:
        async with on_worker.connect() as conn:
            assert (await conn.execute(text(f"SELECT count(*) FROM {shard}"))).scalar_one() == 2
            with pytest.raises(DBAPIError, match=f"UPDATE on {shard} is refused"):
                await conn.execute(text(f"UPDATE {shard} SET content = 'changed'"))
    finally:
        await on_worker.dispose()
    async with store.engine.connect() as conn:
        with pytest.raises(DBAPIError, match=r"immutable: UPDATE on immagent_agents_[0-9]+ is refused"):
            await conn.execute(text("UPDATE immagent_agents SET name = 'changed'"))
    store.clear_cache()
    assert [m.content for m in await (await store.load_agent(agent.id)).messages()] == ["hi", "echo: hi"]


# --------------------------------------------------------------------------------------- the contract


async def test_the_store_contract_holds_on_the_cluster(store: Store, model: ScriptedModel) -> None:
    root = await store.create_agent(name="core", system_prompt="be brief", model=model.model)
    first = await root.advance("one")
    second = await first.advance("two")
    clone = await second.clone()
    branch = await first.advance("other")
    store.clear_cache()

    loaded = await store.load_agent(second.id)
    assert [m.content for m in await loaded.messages()] == ["one", "echo: one", "two", "echo: two"]
    assert [s.id for s in await loaded.lineage()] == [root.id, first.id, second.id]
    assert {c.id for c in await (await store.load_agent(first.id)).children()} == {
        second.id,
        clone.id,  # a clone is a sibling
        branch.id,
    }
    assert (await store.load_agent(clone.id)).head_id == second.head_id
    assert [s.id for s in await store.tree(second)] == [root.id, first.id, second.id, clone.id, branch.id]
    assert len(await store.tree_messages(second)) == 6
    assert await store.count_agents() == 5
    page = await store.list_agents(limit=2)
    assert [s.id for s in page] == [branch.id, clone.id]
    assert [s.id for s in await store.list_agents(limit=10, after=page.next_cursor)] == [
        second.id,
        first.id,
        root.id,
    ]
    again = await (await store.load_agent(second.id)).advance("three")
    assert [m.content for m in await again.messages()][-2:] == ["three", "echo: three"]


async def test_a_failing_turn_leaves_nothing_and_a_retry_succeeds(store: Store, model: ScriptedModel) -> None:
    agent = await (await store.create_agent(name="atomic", system_prompt="p", model=model.model)).advance("a")
    before = await row_counts(store.engine)
    with StatementFault(store.engine, at=2).armed(), pytest.raises(InjectedFault):  # at the state's INSERT
        await agent.advance("lost")
    assert await row_counts(store.engine) == before
    retried = await agent.advance("kept")
    assert [m.content for m in await retried.messages()][-1] == "echo: kept"
    assert (await row_counts(store.engine))["immagent_messages"] == before["immagent_messages"] + 2


async def test_concurrent_turns_on_different_trees_and_on_the_same_tree(
    store: Store, model: ScriptedModel
) -> None:
    roots = [await store.create_agent(name=f"t{i}", system_prompt="p", model=model.model) for i in range(6)]
    different = await asyncio.gather(*(r.advance(f"to {i}") for i, r in enumerate(roots)))
    shared = await roots[0].advance("shared")
    same = await asyncio.gather(*(shared.advance(f"branch {i}") for i in range(6)))
    store.clear_cache()
    for i, state in enumerate(different):
        assert [m.content for m in await (await store.load_agent(state.id)).messages()] == [
            f"to {i}",
            f"echo: to {i}",
        ]
    for i, state in enumerate(same):
        contents = [m.content for m in await (await store.load_agent(state.id)).messages()]
        assert contents == ["shared", "echo: shared", f"branch {i}", f"echo: branch {i}"]
    assert len(await store.tree(roots[0])) == 1 + 1 + 1 + 6


# ------------------------------------------------------------------------------------------------ threads


async def test_threads_create_advance_move_conflict_and_guard_their_states(
    store: Store, model: ScriptedModel
) -> None:
    agent = await store.create_agent(name="th", system_prompt="p", model=model.model)
    other = await store.create_agent(name="elsewhere", system_prompt="p", model=model.model)
    thread = await store.create_thread("chat", agent)
    advanced = await thread.advance("hello")
    store.clear_cache()
    loaded = await store.load_thread("chat")
    assert loaded.position == 1 and loaded.agent_id == advanced.agent_id
    assert [m.content for m in await (await loaded.head()).messages()] == ["hello", "echo: hello"]

    moved = await loaded.move(other)  # to another tree, so another shard
    assert (await moved.head()).id == other.id
    with pytest.raises(ConflictError, match="expected position 1"):
        await loaded.advance("stale")
    assert [m.kind for m in await moved.log()] == ["create", "advance", "move"]

    # No foreign key can guard a state on Citus: the store refuses to delete one a thread points at...
    with pytest.raises(ValidationError, match="thread 'chat' points at this state"):
        await store.delete(other)
    assert (await store.load_agent(other.id)).id == other.id
    # ...and refuses a move to a state deleted meanwhile.
    gone = await store.create_agent(name="gone", system_prompt="p", model=model.model)
    await store.delete(gone)
    with pytest.raises(AgentNotFoundError):
        await moved.move(gone)
    assert (await store.load_thread("chat")).position == 2


async def test_tenants_are_isolated_and_erase_tenant_removes_only_theirs(
    store: Store, model: ScriptedModel
) -> None:
    acme, umbrella = store.tenant("acme"), store.tenant("umbrella")
    mine = await (await acme.create_agent(name="x", system_prompt="acme prompt", model=model.model)).advance(
        "a"
    )
    theirs = await (await umbrella.create_agent(name="x", system_prompt="p", model=model.model)).advance("u")
    await acme.create_thread("t", mine)
    await umbrella.create_thread("t", theirs)
    assert [s.id for s in await acme.list_agents()] == [mine.id, mine.parent_id]
    with pytest.raises(AgentNotFoundError):
        await acme.load_agent(theirs.id)

    assert await acme.stats() == {"agents": 2, "messages": 2, "threads": 1, "thread_moves": 1, "texts": 1}
    assert (await store.stats())["agents"] == 4  # every shard, in one statement
    erased = await store.erase_tenant("acme")
    assert erased == {"thread_moves": 1, "threads": 1, "agents": 2, "messages": 2, "texts": 1}
    assert await acme.count_agents() == 0
    assert await umbrella.count_agents() == 2
    head = await (await umbrella.load_thread("t")).head()
    assert [m.content for m in await head.messages()] == ["u", "echo: u"]


async def test_erase_tree_removes_the_tree_and_its_threads_only(store: Store, model: ScriptedModel) -> None:
    doomed = await (await store.create_agent(name="d", system_prompt="p", model=model.model)).advance("x")
    kept = await (await store.create_agent(name="k", system_prompt="p", model=model.model)).advance("y")
    await store.create_thread("doomed", doomed)
    await store.create_thread("kept", kept)
    erased = await store.erase_tree(doomed)
    assert erased == {"thread_moves": 1, "threads": 1, "agents": 2, "messages": 2, "texts": 0}
    assert [t.key for t in await store.list_threads()] == ["kept"]
    store.clear_cache()
    assert [m.content for m in await (await store.load_agent(kept.id)).messages()] == ["y", "echo: y"]


async def test_gc_removes_only_what_no_remaining_state_or_thread_reaches(
    store: Store, model: ScriptedModel
) -> None:
    root = await store.create_agent(name="g", system_prompt="p", model=model.model)
    first = await root.advance("one")
    dead_end = await first.advance("abandoned")
    kept = await first.advance("kept")
    threaded = await (await store.create_agent(name="h", system_prompt="q", model=model.model)).advance("t")
    await store.create_thread("t", threaded)
    lonely = await (await store.create_agent(name="l", system_prompt="only me", model=model.model)).advance(
        "z"
    )
    for state in (dead_end, lonely, lonely.parent_id):
        await store.delete(state)

    removed = await store.gc()
    assert removed == {"messages": 4, "texts": 1}  # the abandoned turn, the lonely tree, its prompt
    store.clear_cache()
    assert [m.content for m in await (await store.load_agent(kept.id)).messages()] == [
        "one", "echo: one", "kept", "echo: kept",
    ]  # fmt: skip
    assert len(await (await (await store.load_thread("t")).head()).messages()) == 2
    assert await store.gc() == {"messages": 0, "texts": 0}


# ----------------------------------------------------------------------------------- router queries


async def _explain(store: Store, statement: str, parameters: Any) -> str:
    """Citus's plan of a statement the store ran, with its parameters (an executemany's rows, all of
    one tree, run one by one: the first row's plan stands for each)."""
    if isinstance(parameters, list):
        parameters = parameters[0]
    async with store.engine.connect() as conn:
        rows = await conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        return "\n".join(r[0] for r in rows)


async def test_a_turns_writes_and_a_history_load_are_router_queries(
    store: Store, model: ScriptedModel
) -> None:
    agent = await (await store.create_agent(name="r", system_prompt="p", model=model.model)).advance("one")
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        seen.append((statement, parameters))

    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    try:
        later = await agent.advance("two")
        store.clear_cache()
        loaded = await store.load_agent(later.id)
        await loaded.messages()
        await loaded.lineage()
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", record)
    inserts = [(s, p) for s, p in seen if s.lstrip().upper().startswith("INSERT")]
    walks = [(s, p) for s, p in seen if "RECURSIVE" in s.upper()]
    assert [s.split()[2] for s, _ in inserts] == ["immagent_messages", "immagent_agents"]
    assert len(walks) == 2  # the history and the lineage
    for statement, parameters in inserts + walks:
        plan = await _explain(store, statement, parameters)
        assert re.search(r"Task Count: 1\b", plan), plan
    # Loading by id alone names no tree: it asks every shard (documented), and still finds the state.
    load = next(
        (s, p) for s, p in seen if s.lstrip().upper().startswith("SELECT") and "RECURSIVE" not in s.upper()
    )
    plan = await _explain(store, *load)
    assert not re.search(r"Task Count: 1\b", plan), plan


# ------------------------------------------------------------------ one PostgreSQL: the keys still serve


async def test_on_one_postgresql_the_per_tree_reads_use_the_keys(migrated_urls: dict[str, str]) -> None:
    """The root_id filters cost nothing on one PostgreSQL: each per-tree read is an index lookup on the
    (id, root_id) keys (EXPLAIN shows no scan of a whole table), with 40 trees of 50 messages."""
    url = migrated_urls["postgresql"]
    await empty_tables(url)
    prompt, now = content_id("p"), utcnow()
    messages: list[dict[str, Any]] = []
    agents: list[dict[str, Any]] = []
    for _ in range(200):  # a tree: 50 messages, a state after every second one
        root, parent, state = uuid7(), None, None
        for depth in range(50):
            message = {"id": uuid7(), "tenant": "default", "root_id": root, "parent_id": parent,
                       "depth": depth, "role": "user", "created_at": now}  # fmt: skip
            messages.append(message)
            parent = message["id"]
            if depth % 2 == 0:
                continue
            id_ = root if state is None else uuid7()
            agents.append({"id": id_, "tenant": "default", "root_id": root, "parent_id": state,
                           "name": "n", "system_prompt_id": prompt, "head_id": parent, "model": "m",
                           "metadata": {}, "model_settings": {}, "created_at": now})  # fmt: skip
            state = id_
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(TEXTS), [{"id": prompt, "content": "p", "created_at": now}])
            await conn.execute(insert(MESSAGES), messages)
            await conn.execute(insert(AGENTS), agents)
            await conn.execute(text("ANALYZE immagent_messages, immagent_agents"))
    finally:
        await engine.dispose()

    async with await Store.connect(url) as store:
        seen: list[tuple[str, Any]] = []
        event.listen(store.engine.sync_engine, "before_cursor_execute", lambda *a: seen.append((a[2], a[3])))
        state = await store.load_agent(agents[-1]["id"])
        assert len(await state.messages()) == 50
        assert len(await state.lineage()) == 25
        assert len(await (await store.load_agent(agents[-2]["id"])).children()) == 1
        reads = [(s, p) for s, p in seen if "immagent_" in s and "alembic" not in s and "pg_" not in s]
        assert len(reads) == 5  # load, history, lineage, load, children
        for statement, parameters in reads:
            plan = await _explain(store, statement, parameters)
            assert "Index" in plan and "Seq Scan on immagent" not in plan, plan
