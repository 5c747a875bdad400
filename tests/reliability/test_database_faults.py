"""Database faults: an error at every statement of every write and at its commit, cancellation at random
points of a turn (the commit included), and server connections killed mid-session (PostgreSQL backends
terminated, MySQL/MariaDB connections KILLed): DatabaseUnavailableError, the driver's error chained.

After each fault: no partial rows (the database is byte-for-byte unchanged, or holds the whole turn),
the old agent still works, and the next call succeeds (the pool replaces dead connections by itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from immagent import DatabaseUnavailableError, PersistentAgent, Store
from immagent.testing import ScriptedModel, ScriptedReply
from tests.reliability._support import (
    Tally,
    kept_rows,
    open_transactions,
    pause_in_event,
    row_ids,
    run_in_event,
)
from tests.support.db import InjectedFault, StatementFault, snapshot

# -- an error at the k-th statement of each write, for every k, and at the commit ---------------------------


@dataclass
class World:
    """A small store state to break: a root, a turn, an unreachable branch (work for gc), a victim."""

    store: Store
    model: ScriptedModel
    root: PersistentAgent
    one: PersistentAgent
    victim: PersistentAgent


async def _world(store: Store, model: ScriptedModel) -> World:
    root = await store.create_agent(name="db", system_prompt="p", model=model.model)
    one = await root.advance("1")
    orphan = await one.advance("orphaned branch")
    await store.delete(orphan)  # its two messages are now garbage for gc
    victim = await one.advance("to be deleted")
    return World(store, model, root, one, victim)


async def _advance_with_tools(w: World) -> object:
    w.model.reply(None, tool_calls=[("c1", "get_weather", '{"city": "Paris"}'), ("c2", "x", "{}")])
    w.model.reply("done")
    return await w.one.advance("tools please")  # 5 messages: user, assistant, tool, tool, assistant


WRITES: dict[str, Callable[[World], Awaitable[object]]] = {
    # A prompt never seen before: its text row is written too (on MySQL only then, after a read).
    "create_agent": lambda w: w.store.create_agent(
        name="n", system_prompt=f"new {uuid4()}", model=w.model.model
    ),
    "advance": lambda w: w.one.advance("2"),
    "advance_with_tool_calls": _advance_with_tools,
    "clone": lambda w: w.one.clone(),
    "with_metadata": lambda w: w.one.with_metadata({"k": 1}),
    "delete": lambda w: w.store.delete(w.victim),
    "gc": lambda w: w.store.gc(),
}


def _statement_count(seen: list[str]) -> int:
    assert seen, "the write ran no statement"
    return len(seen)


@pytest.mark.parametrize("write", sorted(WRITES))
async def test_an_error_at_any_statement_of_a_write_or_at_its_commit_leaves_no_trace(
    store: Store, scripted: ScriptedModel, tally: Tally, write: str
) -> None:
    operation = WRITES[write]
    probe = StatementFault(store.engine, at=10**9)  # never fires: counts the write's statements
    world = await _world(store, scripted)
    with probe.armed():
        await operation(world)
    steps: list[int | str] = [*range(1, _statement_count(probe.seen) + 1), "commit"]

    for at in steps:
        world = await _world(store, scripted)
        history = await world.one.messages()
        before = await snapshot(store.engine)
        fault = StatementFault(store.engine, at=at)
        with fault.armed(), pytest.raises(InjectedFault):
            await operation(world)
        assert fault.fired
        assert await snapshot(store.engine) == before, f"{write}: partial write after a fault at {at}"
        store.clear_cache()  # the old agent still loads and works from the database
        again = await store.load_agent(world.one.id)
        assert await again.messages() == history
        await operation(world)  # the next call succeeds
        assert await snapshot(store.engine) != before
        tally.add("database statement faults injected")
        tally.add("database statement faults survived")


# -- cancellation at random points -----------------------------------------------------------------------


@pytest.fixture
def slow_model() -> Iterator[ScriptedModel]:
    """An offline model that takes 10 ms per answer (so a cancellation can land during the call)."""
    model = ScriptedModel(
        "reliability-slow",
        responder=lambda messages: ScriptedReply(content=f"echo: {messages[-1]['content']}", delay=0.01),
    ).install()
    try:
        yield model
    finally:
        model.uninstall()


def _slow_writes(engine: AsyncEngine, pause: float) -> Callable[[], None]:
    """Make every write statement and every commit of ``engine`` take ``pause`` seconds (cancellable)."""

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "DELETE")):
            pause_in_event(pause)

    def on_commit(conn: Any) -> None:
        pause_in_event(pause)

    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    event.listen(engine.sync_engine, "commit", on_commit)

    def remove() -> None:
        event.remove(engine.sync_engine, "before_cursor_execute", on_execute)
        event.remove(engine.sync_engine, "commit", on_commit)

    return remove


CANCELLATIONS = 30


async def test_a_turn_cancelled_at_a_random_point_is_committed_whole_or_not_at_all(
    store: Store, slow_model: ScriptedModel, tally: Tally
) -> None:
    rng = random.Random(20240611)
    root = await store.create_agent(name="cancel", system_prompt="p", model=slow_model.model)
    one = await root.advance("start")
    expected = await one.messages()
    outcomes = {"committed": 0, "nothing written": 0}
    remove = _slow_writes(store.engine, 0.004)
    try:
        started = time.perf_counter()
        for _ in range(3):
            await one.advance("how long does a turn take?")
        duration = (time.perf_counter() - started) / 3
        for i in range(CANCELLATIONS):
            before = await snapshot(store.engine)
            before_ids = await row_ids(store.engine)
            turn = asyncio.create_task(one.advance(f"question {i}"))
            await asyncio.sleep(rng.uniform(0.0, 1.5 * duration))  # before, during or after the commit
            turn.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # it may have finished first
                await turn
            assert await open_transactions(store.engine) == 0  # no lock, no half-open transaction
            after = await snapshot(store.engine)
            assert kept_rows(after, {row[0] for row in before}) == before  # no row was rewritten
            if after == before:
                outcomes["nothing written"] += 1
            else:
                outcomes["committed"] += 1
                now = await row_ids(store.engine)
                new_agents = now["immagent_agents"] - before_ids["immagent_agents"]
                assert len(new_agents) == 1
                assert len(now["immagent_messages"] - before_ids["immagent_messages"]) == 2
                store.clear_cache()
                child = await store.load_agent(new_agents.pop())
                assert child.parent_id == one.id
                history = await child.messages()
                assert history[:-2] == expected
                assert [(m.role, m.content) for m in history[-2:]] == [
                    ("user", f"question {i}"),
                    ("assistant", f"echo: question {i}"),
                ]
            # the old agent advances fine right after
            fine = await one.advance(f"after {i}")
            assert (await fine.messages())[:-2] == expected
            tally.add("cancellations injected")
            tally.add("cancellations survived")
    finally:
        remove()
    # the random points covered both outcomes (a third of them fall after an average turn's end)
    assert outcomes["committed"] > 0 and outcomes["nothing written"] > 0, outcomes
    await _pool_is_healthy(store)


#: Each step of a turn's write, where a cancellation lands in the deterministic test, and what it leaves:
#: before the COMMIT nothing is written; from the COMMIT on (the pool's reset after it included) the
#: write runs to its end, so the whole turn is there, and the caller still sees CancelledError.
STEPS = {
    "begin": "nothing written",
    "INSERT INTO immagent_messages": "nothing written",
    "INSERT INTO immagent_agents": "nothing written",
    "commit": "committed",
    "reset": "committed",
}


@pytest.mark.parametrize("where", list(STEPS))
async def test_a_turn_cancelled_at_each_step_of_its_write_is_whole_or_absent_and_leaves_no_transaction(
    store: Store, scripted: ScriptedModel, tally: Tally, where: str
) -> None:
    """Cancel while the write itself runs: at BEGIN, between the INSERTs, in the COMMIT, in the pool's
    reset of the connection. No transaction stays open and no lock is held; the next write succeeds."""
    root = await store.create_agent(name="cancel", system_prompt="p", model=scripted.model)
    one = await root.advance("start")
    reached = asyncio.Event()

    def pause(step: str) -> None:
        if step == where and not reached.is_set():
            reached.set()
            pause_in_event(0.2)  # the cancellation arrives during this pause

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        pause(next((s for s in STEPS if statement.startswith(s)), ""))

    hooks: list[tuple[Any, str, Callable[..., None]]] = [
        (store.engine.sync_engine, "before_cursor_execute", on_execute),
        (store.engine.sync_engine, "begin", lambda conn: pause("begin")),
        (store.engine.sync_engine, "commit", lambda conn: pause("commit")),
        (store.engine.pool, "reset", lambda dbapi, record, state: pause("reset")),
    ]
    before = await snapshot(store.engine)
    for target, name, hook in hooks:
        event.listen(target, name, hook)
    try:
        turn = asyncio.create_task(one.advance(f"cancelled at {where}"))
        await asyncio.wait_for(reached.wait(), 10)
        turn.cancel()
        with pytest.raises(asyncio.CancelledError):
            await turn
    finally:
        for target, name, hook in hooks:
            event.remove(target, name, hook)
    assert await open_transactions(store.engine) == 0
    after = await snapshot(store.engine)
    if STEPS[where] == "nothing written":
        assert after == before
    else:
        assert kept_rows(after, {row[0] for row in before}) == before
        assert len(after) == len(before) + 3  # the whole turn: two messages and the new state
    fine = await one.advance("after")
    assert fine.parent_id == one.id
    await _pool_is_healthy(store)
    tally.add("cancellations injected")
    tally.add("cancellations survived")


async def _pool_is_healthy(store: Store) -> None:
    """Every pooled connection still works: as many concurrent reads as the pool holds."""
    size = store.engine.pool.size() if hasattr(store.engine.pool, "size") else 1
    await asyncio.gather(*(store.ping() for _ in range(size)))
    store.clear_cache()
    assert await store.count_agents() >= 1


# -- server connections killed mid-session (PostgreSQL backends terminated, MySQL connections KILLed) -----


async def _terminate_store_backends(admin: Any, database: str) -> int:
    """Kill every connection to ``database`` except the admin's own, wait for each to end, and count them:
    ``pg_terminate_backend`` on PostgreSQL, ``KILL CONNECTION`` on MySQL/MariaDB."""
    if admin.dialect.name == "postgresql":
        result = await admin.execute(
            text(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            ),
            {"db": database},
        )
        return int(result.scalar_one())
    others = text("SELECT id FROM information_schema.processlist WHERE db = :db AND id <> CONNECTION_ID()")
    ids = set((await admin.execute(others, {"db": database})).scalars())
    for connection_id in ids:
        await admin.execute(text(f"KILL CONNECTION {int(connection_id)}"))
    deadline = time.monotonic() + 5
    while ids & set((await admin.execute(others, {"db": database})).scalars()):
        assert time.monotonic() < deadline, "killed MySQL connections did not end within 5 s"
        await asyncio.sleep(0.01)
    return len(ids)


@pytest.fixture
async def admin_engine(server_url: str) -> Any:
    # AUTOCOMMIT: pg_stat_activity is a snapshot taken once per transaction
    engine = create_async_engine(server_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_terminated_backends_between_turns_are_replaced_by_the_pool(
    server_url: str, admin_engine: AsyncEngine, scripted: ScriptedModel, tally: Tally
) -> None:
    database = admin_engine.url.database
    assert database is not None
    async with await Store.connect(server_url, min_size=3, max_size=3) as store:
        agent = await (
            await store.create_agent(name="kill", system_prompt="p", model=scripted.model)
        ).advance("0")
        async with admin_engine.connect() as admin:
            for i in range(3):
                assert await _terminate_store_backends(admin, database) >= 1
                agent = await agent.advance(f"after kill {i}")  # pre-ping finds the dead ones
                store.clear_cache()
                reloaded = await store.load_agent(agent.id)
                assert len(await reloaded.messages()) == 2 * (i + 2)
                assert len(await store.list_agents()) == i + 3
                tally.add("backend terminations injected")
                tally.add("backend terminations survived")


def _terminate_while_the_loop_is_busy(url: str, database: str) -> int:
    """Terminate the store's backends from another thread while this event loop is blocked, so the loop
    has not yet read the closed sockets when the next call checks a connection out. The same holds for a
    connection dropped without a FIN (a NAT or firewall timeout, a failover): nothing marks it closed."""

    async def terminate() -> int:
        engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as admin:
                return await _terminate_store_backends(admin, database)
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(1) as pool:
        killed = pool.submit(asyncio.run, terminate()).result()
    time.sleep(0.1)  # the FINs are in the kernel now; the loop still has not looked
    return killed


async def test_a_backend_terminated_while_the_loop_is_busy_is_replaced_before_the_next_call(
    server_url: str, admin_engine: AsyncEngine, scripted: ScriptedModel, tally: Tally
) -> None:
    database = admin_engine.url.database
    assert database is not None
    async with await Store.connect(server_url, min_size=1, max_size=1) as store:
        agent = await store.create_agent(name="busy", system_prompt="p", model=scripted.model)
        assert await store.count_agents() == 1
        assert _terminate_while_the_loop_is_busy(server_url, database) == 1
        assert await store.count_agents() == 1  # the pool must replace the dead connection by itself
        assert (await agent.clone()).parent_id is None
    tally.add("backend terminations injected")
    tally.add("backend terminations survived")


@pytest.mark.parametrize(
    "where", ["INSERT INTO immagent_messages", "INSERT INTO immagent_agents", "commit", "history read"]
)
async def test_a_backend_terminated_during_a_call_fails_cleanly_writes_nothing_and_the_next_call_works(
    server_url: str, admin_engine: AsyncEngine, scripted: ScriptedModel, tally: Tally, where: str
) -> None:
    database = admin_engine.url.database
    assert database is not None
    async with (
        await Store.connect(server_url, min_size=2, max_size=2) as store,
        admin_engine.connect() as admin,
    ):
        root = await store.create_agent(name="kill", system_prompt="p", model=scripted.model)
        one = await root.advance("0")
        history = await one.messages()
        before = await snapshot(admin_engine)
        killed: list[int] = []

        def kill() -> None:
            if not killed:
                killed.append(run_in_event(_terminate_store_backends(admin, database)))

        def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.startswith(where) or (where == "history read" and "immagent_history" in statement):
                kill()

        def on_commit(conn: Any) -> None:
            if where == "commit":
                kill()

        if where == "history read":
            store.clear_cache()
            one = await store.load_agent(one.id)  # its history will be read from the database
        event.listen(store.engine.sync_engine, "before_cursor_execute", on_execute)
        event.listen(store.engine.sync_engine, "commit", on_commit)
        try:
            with pytest.raises(DatabaseUnavailableError) as info:  # typed, not a hang or an odd crash
                await one.advance("during the kill")
        finally:
            event.remove(store.engine.sync_engine, "before_cursor_execute", on_execute)
            event.remove(store.engine.sync_engine, "commit", on_commit)
        assert isinstance(info.value.__cause__, DBAPIError)  # the driver's error is chained
        assert killed and killed[0] >= 1
        assert await snapshot(admin_engine) == before  # nothing was written

        again = await one.advance("the next call")  # the pool recovers by itself
        assert (await again.messages())[:-2] == history
        store.clear_cache()
        assert await (await store.load_agent(again.id)).messages() == await again.messages()
        tally.add("backend terminations injected")
        tally.add("backend terminations survived")
