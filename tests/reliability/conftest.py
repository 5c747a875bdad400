"""Fixtures of the reliability suite: an offline model, PostgreSQL and MySQL/MariaDB databases of its own
(their connections may be killed freely), the weather MCP server with its test-only tools, and a tally of
what was injected and tried (for docs/reliability.md).

Set ``IMMAGENT_RELIABILITY_REPORT=path.json`` to have the tally written at the end of the session.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import pytest_asyncio

from immagent import MCPManager, Store
from immagent.testing import ScriptedModel
from tests.reliability._support import Tally
from tests.support.db import empty_tables
from tests.support.mysql import MySQLServer
from tests.support.postgres import PostgresServer

WEATHER = Path(__file__).resolve().parents[2] / "examples" / "weather_server.py"
#: The server backends, and the session fixture holding the suite's database on each.
SERVERS = {"postgresql": "reliability_pg", "mysql": "reliability_mysql"}
REPORT_ENV = "IMMAGENT_RELIABILITY_REPORT"


@pytest.fixture(scope="session")
def tally() -> Iterator[Tally]:
    """The session's tally; written to $IMMAGENT_RELIABILITY_REPORT (when set) at the end."""
    counts = Tally()
    yield counts
    target = os.environ.get(REPORT_ENV)
    if target:
        Path(target).write_text(json.dumps(dict(sorted(counts.counts.items())), indent=2) + "\n")


@pytest.fixture
def scripted() -> Iterator[ScriptedModel]:
    """An offline model (``immagent/reliability``) answering ``echo: <text>``; reset for each test."""
    model = ScriptedModel("reliability").install()
    model.reset()
    try:
        yield model
    finally:
        model.reset()


@asynccontextmanager
async def _suite_database(server: PostgresServer | MySQLServer) -> AsyncIterator[str]:
    """A migrated database of this suite's own on ``server``, dropped at the end."""
    url = server.create_database("immagent_reliability")
    try:
        async with await Store.connect(url) as store:
            await store.migrate()
        yield url
    finally:
        server.drop_database(url)


@pytest.fixture(scope="session")
async def reliability_pg(pg_server: PostgresServer) -> AsyncIterator[str]:
    """A migrated PostgreSQL database used only by this suite (its backends may be terminated freely)."""
    async with _suite_database(pg_server) as url:
        yield url


@pytest.fixture
async def pg_url(reliability_pg: str) -> str:
    """The suite's PostgreSQL database, emptied for this test."""
    await empty_tables(reliability_pg)
    return reliability_pg


@pytest.fixture(scope="session")
async def reliability_mysql(mysql_server: MySQLServer) -> AsyncIterator[str]:
    """A migrated MySQL/MariaDB database used only by this suite (its connections may be killed freely)."""
    async with _suite_database(mysql_server) as url:
        yield url


@pytest.fixture(params=SERVERS)
def server_database(request: pytest.FixtureRequest) -> str:
    """The suite's database on each server backend in turn (PostgreSQL, MySQL/MariaDB)."""
    url: str = request.getfixturevalue(SERVERS[request.param])
    return url


@pytest.fixture
async def server_url(server_database: str) -> str:
    """The suite's database on each server backend in turn, emptied for this test."""
    await empty_tables(server_database)
    return server_database


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def weather() -> AsyncIterator[MCPManager]:
    """The example weather server as a stdio subprocess, with its test-only tools (fail, slow, crash)."""
    async with MCPManager(tool_timeout=5.0) as mcp:
        await mcp.connect("weather", sys.executable, [str(WEATHER), "--with-test-tools"])
        yield mcp
