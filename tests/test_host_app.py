"""A host app (tests/host_app) that already runs SQLAlchemy and Alembic, with immagent beside it: both
migration histories in one database, one shared engine, and one transaction for the app's rows and an
agent's new state."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from immagent import AgentNotFoundError, Store
from immagent._migrations import HEAD_REVISION, PACKAGE_LOCATION, VERSION_TABLE, drift_sync, script_location
from immagent._orm import AgentRow, MessageRow
from immagent.testing import ScriptedModel, ScriptedReply
from tests.host_app.hostapp import HostBase, Order
from tests.support.db import BACKENDS
from tests.support.schema import read, rows

HOST = Path(__file__).parent / "host_app"
ON_EVERY_BACKEND = pytest.mark.parametrize("fresh_db_url", BACKENDS, indirect=True)


def host_config(section: str = "alembic") -> Config:
    """The host's alembic.ini, one of its sections. In a checkout (editable install) the package
    resource ``immagent:migrations`` does not exist, so immagent's section points at the checkout's
    folder instead; tests/test_wheel.py runs the ini verbatim against an installed wheel."""
    config = Config(str(HOST / "alembic.ini"), ini_section=section)
    assert config.get_main_option("script_location") == (
        PACKAGE_LOCATION if section == "immagent" else f"{HOST}/migrations"
    )
    if section == "immagent" and not importlib.resources.files("immagent").joinpath("migrations").is_dir():
        config.set_main_option("script_location", script_location())
    return config


async def run_host_pipeline(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the host's deploy step runs: immagent's history, then the app's own."""
    monkeypatch.setenv("IMMAGENT_DATABASE_URL", url)
    monkeypatch.setenv("APP_DATABASE_URL", url)
    monkeypatch.syspath_prepend(str(HOST))  # what prepend_sys_path does for the alembic command
    # Both env.py files start their own event loop (asyncio.run), as under the `alembic` command.
    await asyncio.to_thread(command.upgrade, host_config("immagent"), "head")
    await asyncio.to_thread(command.upgrade, host_config(), "head")


def host_include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return not (table or "").startswith("immagent_")


def host_drift(conn: Connection, *, filtered: bool = True) -> list[Any]:
    """What the host's autogenerate would put in its next revision."""
    opts: dict[str, Any] = {"include_object": host_include} if filtered else {}
    return list(compare_metadata(MigrationContext.configure(conn, opts=opts), HostBase.metadata))


async def count(engine: AsyncEngine, table: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


@pytest.fixture
async def app_engine(fresh_db_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AsyncEngine]:
    """The host's own engine on a database its pipeline has migrated (both histories)."""
    await run_host_pipeline(fresh_db_url, monkeypatch)
    engine = create_async_engine(fresh_db_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel("host").install()


# ---------------------------------------------------------------------------------------------- Alembic


@ON_EVERY_BACKEND
async def test_the_host_and_immagent_histories_live_side_by_side(
    fresh_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await run_host_pipeline(fresh_db_url, monkeypatch)
    tables = await read(fresh_db_url, rows)  # every immagent_ table
    assert [r[0] for r in tables[VERSION_TABLE]] == [HEAD_REVISION]
    assert [
        r[0] for r in (await read(fresh_db_url, lambda c: rows(c, "alembic_version")))["alembic_version"]
    ] == ["h001"]

    engine = create_async_engine(fresh_db_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(host_drift) == []  # the host's autogenerate leaves immagent alone
            unfiltered = await conn.run_sync(lambda c: host_drift(c, filtered=False))
            assert await conn.run_sync(drift_sync) == []  # and immagent's models match its tables
    finally:
        await engine.dispose()
    # Without include_object the host's next revision would drop immagent's tables: the filter matters.
    dropped = {diff[1].name for diff in unfiltered if diff[0] == "remove_table"}
    assert {"immagent_agents", "immagent_messages", "immagent_texts", VERSION_TABLE} <= dropped

    await asyncio.to_thread(command.upgrade, host_config(), "head")  # a second run changes nothing
    await asyncio.to_thread(command.upgrade, host_config("immagent"), "head")
    assert (await read(fresh_db_url, rows)) == tables


# --------------------------------------------------------------------------------------- shared engine


@ON_EVERY_BACKEND
async def test_a_store_on_the_app_engine_uses_its_pool_and_never_disposes_it(app_engine: AsyncEngine) -> None:
    pool = app_engine.sync_engine.pool
    async with await Store.connect(engine=app_engine) as store:
        assert store.engine is app_engine
        agent = await store.create_agent(name="a", system_prompt="p", model="m")
    assert app_engine.sync_engine.pool is pool  # dispose() would have replaced the pool
    assert pool.checkedin() >= 1  # the connection immagent used went back to the app's pool
    assert await count(app_engine, AgentRow.__table__) == 1
    async with await Store.connect(engine=app_engine) as again:
        assert (await again.load_agent(agent.id)).name == "a"


@ON_EVERY_BACKEND
async def test_a_store_that_made_its_engine_disposes_it_on_close(
    app_engine: AsyncEngine, fresh_db_url: str
) -> None:
    store = await Store.connect(fresh_db_url)
    own_pool = store.engine.sync_engine.pool
    await store.close()
    assert store.engine.sync_engine.pool is not own_pool  # the contrast: close() disposed its own


# ------------------------------------------------------------------------------------------ transaction


async def order_and_turn(
    app_engine: AsyncEngine, store: Store, model: ScriptedModel, *, commit: bool
) -> tuple[Any, Any]:
    """In one app transaction: a new agent, the app's order row, and an advance; then commit or not.
    Before the end, another connection sees none of it (immagent committed nothing itself)."""
    sessions = async_sessionmaker(app_engine, expire_on_commit=False)
    with contextlib.suppress(_RolledBack):
        async with sessions() as session, session.begin():
            agent = await store.create_agent(
                name="support", system_prompt="help", model=model.model, session=session
            )
            new = await agent.advance("where is my order?", session=session)
            session.add(Order(agent_id=new.id, note="refund"))
            await session.flush()
            outside = create_async_engine(str(app_engine.url.render_as_string(hide_password=False)))
            try:
                assert await count(outside, Order.__table__) == 0
                assert await count(outside, AgentRow.__table__) == 0
                assert await count(outside, MessageRow.__table__) == 0
            finally:
                await outside.dispose()
            if not commit:
                raise _RolledBack  # leaving session.begin() with an error rolls the transaction back
    return agent, new


class _RolledBack(Exception):
    pass


@ON_EVERY_BACKEND
async def test_a_rolled_back_transaction_leaves_neither_the_app_row_nor_the_agent(
    app_engine: AsyncEngine, model: ScriptedModel
) -> None:
    async with await Store.connect(engine=app_engine) as store:
        agent, new = await order_and_turn(app_engine, store, model, commit=False)
        assert len(model.requests) == 1  # the turn ran; its rows were then rolled back
        for table in (Order.__table__, AgentRow.__table__, MessageRow.__table__):
            assert await count(app_engine, table) == 0
        for state in (agent, new):  # still held in memory, yet unknown to the store
            with pytest.raises(AgentNotFoundError):
                await store.load_agent(state.id)


@ON_EVERY_BACKEND
async def test_a_committed_transaction_keeps_both_the_app_row_and_the_agent(
    app_engine: AsyncEngine, model: ScriptedModel
) -> None:
    async with await Store.connect(engine=app_engine) as store:
        agent, new = await order_and_turn(app_engine, store, model, commit=True)
        async with app_engine.connect() as conn:
            orders = (await conn.execute(select(Order.__table__))).all()
        assert [(o.agent_id, o.note) for o in orders] == [(new.id, "refund")]
        assert await count(app_engine, AgentRow.__table__) == 2
        assert await count(app_engine, MessageRow.__table__) == 2
    async with await Store.connect(engine=app_engine) as fresh:  # nothing cached: read back
        loaded = await fresh.load_agent(new.id)
        assert [m.content for m in await loaded.messages()] == [
            "where is my order?",
            "echo: where is my order?",
        ]
        assert [a.id for a in await loaded.lineage()] == [agent.id, new.id]


@ON_EVERY_BACKEND
async def test_no_connection_of_immagent_is_held_while_the_model_runs(
    app_engine: AsyncEngine, model: ScriptedModel
) -> None:
    pool = app_engine.sync_engine.pool
    during: list[int] = []

    def responder(messages: Sequence[dict[str, Any]]) -> ScriptedReply:
        during.append(pool.checkedout())
        return ScriptedReply(content="ok")

    model.responder = responder
    async with await Store.connect(engine=app_engine) as store:
        agent = await store.create_agent(name="a", system_prompt="p", model=model.model)
        agent = await agent.advance("one")
        store.clear_cache()  # the next turn must read the history from the database first
        cold = await store.load_agent(agent.id)
        sessions = async_sessionmaker(app_engine)
        async with sessions() as session, session.begin():
            session.add(Order(agent_id=None, note="before the turn"))
            await session.flush()  # the app now holds one connection, in its own open transaction
            two = await cold.advance("two", session=session)
        async with sessions() as session, session.begin():  # begun but unused: no connection yet
            await two.advance("three", session=session)
            session.add(Order(agent_id=None, note="after the turn"))
    assert during == [0, 1, 0]  # only ever the app's own connection
