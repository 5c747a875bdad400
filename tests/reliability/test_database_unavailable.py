"""A database that goes away: the server stopped (a restart, a crash) between calls and during a call,
and a network path that stops carrying packets without closing anything.

Each time the call fails with DatabaseUnavailableError (the driver's error chained), nothing is
written, and the next call works once the server or the path is back. These tests stop a PostgreSQL and
a MariaDB of their own (``start_dedicated_postgres``, ``start_dedicated_mariadb``: a server in a temporary
folder on a free port), never the machine's shared servers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import event

from immagent import DatabaseUnavailableError, PersistentAgent, Store, ValidationError
from immagent.testing import ScriptedModel
from tests.reliability._support import Tally, open_transactions
from tests.support.db import empty_tables, snapshot
from tests.support.mariadb_server import start_dedicated_mariadb
from tests.support.mysql import MySQLServer, MySQLUnavailableError
from tests.support.postgres import PostgresServer, start_dedicated_postgres
from tests.support.proxy import BlackholeProxy, upstream_of, url_through

#: How each backend's dedicated server starts.
DEDICATED: dict[str, Callable[[], PostgresServer | MySQLServer]] = {
    "postgresql": start_dedicated_postgres,
    "mysql": start_dedicated_mariadb,
}


@pytest.fixture(scope="module", params=sorted(DEDICATED))
def own_server(request: pytest.FixtureRequest) -> Iterator[PostgresServer | MySQLServer]:
    """A server of this module's own (PostgreSQL, then MariaDB), which the tests stop and start again."""
    try:
        server = DEDICATED[request.param]()
    except MySQLUnavailableError as exc:  # a MySQL reached by URL, on a machine without mariadbd
        pytest.skip(f"no dedicated MariaDB: {exc}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
async def own_server_url(own_server: PostgresServer | MySQLServer) -> str:
    url = own_server.create_database("immagent_unavailable")
    async with await Store.connect(url) as store:
        await store.migrate()
    return url


@pytest.fixture
async def own_url(own_server_url: str) -> str:
    await empty_tables(own_server_url)
    return own_server_url


def _unavailable(info: pytest.ExceptionInfo[DatabaseUnavailableError]) -> None:
    """The typed error chains the driver's and says what to do."""
    assert info.value.__cause__ is not None
    assert "retry" in str(info.value) and "nothing was committed" in str(info.value)


async def _one_turn(store: Store, model: ScriptedModel) -> PersistentAgent:
    """A state one turn deep (its history is in the database)."""
    return await (await store.create_agent(name="down", system_prompt="p", model=model.model)).advance("0")


CALLS: dict[str, Callable[[Store, PersistentAgent], Awaitable[object]]] = {
    "advance": lambda store, agent: agent.advance("while down"),
    "create_agent": lambda store, agent: store.create_agent(name="n", system_prompt="p", model=agent.model),
    "clone": lambda store, agent: agent.clone(),
    "load_agent": lambda store, agent: store.load_agent(agent.id),
    "list_agents": lambda store, agent: store.list_agents(),
    "ping": lambda store, agent: store.ping(),
}


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_server_stopped_and_started_again_between_calls_is_a_typed_error_then_works(
    own_server: PostgresServer | MySQLServer, own_url: str, scripted: ScriptedModel, tally: Tally, mode: str
) -> None:
    async with await Store.connect(own_url, min_size=2, max_size=2) as store:
        agent = await _one_turn(store, scripted)
        before = await snapshot(store.engine)
        own_server.halt(mode)
        try:
            for call in CALLS.values():
                store.clear_cache()  # reads go to the database
                with pytest.raises(DatabaseUnavailableError) as info:
                    await call(store, agent)
                _unavailable(info)
                tally.add("calls on a stopped server (typed error)")
        finally:
            own_server.resume()
        assert await snapshot(store.engine) == before  # nothing was written
        again = await agent.advance("the server is back")  # the pool reconnects by itself
        assert (await again.messages())[:-2] == await agent.messages()
        tally.add("server restarts injected")
        tally.add("server restarts survived")
    with pytest.raises(DatabaseUnavailableError) as info:  # a refused connect is the typed error too
        own_server.halt("fast")
        try:
            await Store.connect(own_url)
        finally:
            own_server.resume()
    _unavailable(info)


@pytest.mark.parametrize("where", ["INSERT INTO immagent_messages", "commit"])
async def test_a_server_stopped_during_a_call_writes_nothing_and_the_next_call_works(
    own_server: PostgresServer | MySQLServer, own_url: str, scripted: ScriptedModel, tally: Tally, where: str
) -> None:
    async with await Store.connect(own_url, min_size=2, max_size=2) as store:
        agent = await _one_turn(store, scripted)
        before = await snapshot(store.engine)
        halted: list[bool] = []

        def halt(*_: Any) -> None:
            if not halted:
                halted.append(True)
                own_server.halt("immediate")  # the server dies with the transaction open

        def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.startswith(where):
                halt()

        hooks: list[tuple[str, Callable[..., None]]] = [("before_cursor_execute", on_execute)]
        if where == "commit":
            hooks.append(("commit", halt))
        for name, hook in hooks:
            event.listen(store.engine.sync_engine, name, hook)
        try:
            with pytest.raises(DatabaseUnavailableError) as info:
                await agent.advance("during the stop")
        finally:
            for name, hook in hooks:
                event.remove(store.engine.sync_engine, name, hook)
            own_server.resume()
        _unavailable(info)
        assert halted
        assert await snapshot(store.engine) == before
        again = await agent.advance("the next call")
        assert (await again.messages())[:-2] == await agent.messages()
        tally.add("server stops during a call injected")
        tally.add("server stops during a call survived")


# -- a network path that drops silently ------------------------------------------------------------------


TIMEOUT = 1.0  # the store's command_timeout in these tests


@pytest.mark.parametrize("where", ["between calls", "INSERT INTO immagent_messages"])
async def test_a_silently_dropped_network_path_fails_in_bounded_time_and_the_pool_recovers(
    own_url: str, scripted: ScriptedModel, tally: Tally, where: str
) -> None:
    with BlackholeProxy(upstream_of(own_url)).running() as proxy:
        store = await Store.connect(
            url_through(own_url, proxy), min_size=2, max_size=2, command_timeout=TIMEOUT
        )
        try:
            agent = await _one_turn(store, scripted)
            before = await snapshot(store.engine)

            def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
                if statement.startswith(where):
                    proxy.pause()

            if where == "between calls":
                proxy.pause()
            event.listen(store.engine.sync_engine, "before_cursor_execute", on_execute)
            started = time.perf_counter()
            try:
                with pytest.raises(DatabaseUnavailableError) as info:
                    await asyncio.wait_for(agent.advance("on a dead path"), 30)  # a hang fails the test
            finally:
                event.remove(store.engine.sync_engine, "before_cursor_execute", on_execute)
            print(f"\n{where}: DatabaseUnavailableError after {time.perf_counter() - started:.2f} s")
            _unavailable(info)
            tally.add("silent network drops injected")
            proxy.resume()
            assert await snapshot(store.engine) == before  # nothing was written
            again = await agent.advance("the path is back")  # the pool recovers by itself
            assert (await again.messages())[:-2] == await agent.messages()
            await asyncio.gather(store.ping(), store.ping())
            assert await open_transactions(store.engine) == 0
            tally.add("silent network drops survived")
        finally:
            proxy.resume()
            await store.close()


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "30", True])
async def test_a_bad_command_timeout_is_a_validation_error(tmp_path: Any, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        await Store.connect(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", command_timeout=value)  # type: ignore[arg-type]
    assert info.value.field == "command_timeout"
