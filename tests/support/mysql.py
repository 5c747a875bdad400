"""Find a MySQL or MariaDB server for the test suite, and give each test session databases of its own.

`find_mysql()` tries ``$IMMAGENT_TEST_MYSQL_URL`` when set (``mysql://``, ``mariadb://`` or either with a
driver; a set but unusable URL is an error, never a fallback), else the server this kind of machine runs
at ``127.0.0.1:3306`` (user root, empty password) when it answers. When neither does, it returns why, in
one line, and the suite leaves its MySQL cases out and prints that line.

A `MySQLServer` creates uniquely named databases (several developers' sessions share one server),
hands out their SQLAlchemy URLs with the asyncmy driver, and drops them again: one by one, and every one
it created at `close()` (also at interpreter exit).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import secrets
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["DEFAULT_URL", "ENV_VAR", "MySQLServer", "MySQLUnavailableError", "find_mysql", "normalize_url"]

ENV_VAR = "IMMAGENT_TEST_MYSQL_URL"
DEFAULT_URL = "mysql://root@127.0.0.1:3306/test"
CONNECT_TIMEOUT = 3


class MySQLUnavailableError(RuntimeError):
    """$IMMAGENT_TEST_MYSQL_URL is set, but no server answers there."""


def normalize_url(url: str | URL) -> URL:
    """``url`` with the asyncmy driver (``mysql://``, ``mariadb://`` and any MySQL driver accepted)."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError as exc:
        raise ValueError(f"not a MySQL URL: {url!r} ({exc})") from None
    backend = parsed.drivername.split("+", 1)[0].lower()
    if backend not in ("mysql", "mariadb"):
        raise ValueError(f"not a MySQL or MariaDB URL (scheme {parsed.drivername!r})")
    return parsed.set(drivername=f"{backend}+asyncmy")


def _run(coroutine: Any) -> Any:
    """Run an admin coroutine on a fresh loop in a worker thread (callers may be inside a running loop)."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coroutine)
        except BaseException as exc:
            result["error"] = exc

    worker = threading.Thread(target=target, name="immagent-mysql-admin")
    worker.start()
    worker.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


class MySQLServer:
    """A MySQL or MariaDB server the tests may create databases on; ``source`` is "env", "default" or
    "dedicated" (a server of the caller's own, which ``halt()`` and ``resume()`` stop and start)."""

    def __init__(
        self,
        url: URL,
        source: str,
        *,
        stop: Callable[[], None] | None = None,
        halt: Callable[[str], None] | None = None,
        resume: Callable[[], None] | None = None,
    ) -> None:
        self._url = url
        self.source = source
        self._stop, self._halt, self._resume = stop, halt, resume
        self._created: set[str] = set()
        self._lock = threading.Lock()
        self._owner_pid = os.getpid()
        self._closed = False
        self.version = str(self._admin("SELECT version()"))
        atexit.register(self.close)

    @property
    def is_mariadb(self) -> bool:
        return "mariadb" in self.version.lower()

    def describe(self) -> str:
        """One line for the session header, e.g. "MariaDB 10.11.19 via default at 127.0.0.1:3306"."""
        product = "MariaDB" if self.is_mariadb else "MySQL"
        where = f"{self._url.host}:{self._url.port or 3306}"
        return f"{product} {self.version.split('-')[0]} via {self.source} at {where}"

    def url(self, database: str | None = None) -> str:
        """A SQLAlchemy URL (``mysql+asyncmy://``) for ``database``, by default the configured one."""
        url = self._url if database is None else self._url.set(database=database)
        return url.render_as_string(hide_password=False)

    def create_database(self, prefix: str = "immagent_test") -> str:
        """CREATE DATABASE with a unique name starting with ``prefix``; returns its URL."""
        name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
        # A case-insensitive, PAD SPACE default on purpose (most servers' own): immagent's tables must not
        # depend on it, and the tests see the trap if they did.
        self._admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
        with self._lock:
            self._created.add(name)
        return self.url(name)

    def drop_database(self, url_or_name: str) -> None:
        """DROP a database this object created (no error when it is gone already)."""
        name = make_url(url_or_name).database if "://" in url_or_name else url_or_name
        with self._lock:
            if name not in self._created:
                raise ValueError(f"refusing to drop {name!r}: this session did not create it")
            self._created.discard(name)
        self._admin(f"DROP DATABASE IF EXISTS `{name}`")

    def close(self) -> None:
        """Drop every database this object created and still holds. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            leftovers = sorted(self._created)
            self._created.clear()
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)
        if os.getpid() != self._owner_pid:
            return
        if self._stop is not None:  # a dedicated server goes away with its databases
            self._stop()
            return
        for name in leftovers:
            with contextlib.suppress(Exception):
                self._admin(f"DROP DATABASE IF EXISTS `{name}`")

    def halt(self, mode: str = "fast") -> None:
        """Stop a dedicated server while the test goes on: ``fast`` (a clean shutdown, like a restart) or
        ``immediate`` (SIGKILL, like a crash: InnoDB recovers at the next start)."""
        if self._halt is None:
            raise RuntimeError(f"{self.describe()} cannot be stopped by the tests (only a dedicated one can)")
        self._halt(mode)

    def resume(self) -> None:
        """Start a halted dedicated server again (same data, same port)."""
        if self._resume is None:
            raise RuntimeError(f"{self.describe()} cannot be restarted by the tests")
        self._resume()

    def _admin(self, statement: str) -> Any:
        """Run one statement on a short-lived connection; the first column of its first row, if any."""
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine
        from sqlalchemy.pool import NullPool

        async def work() -> Any:
            engine = create_async_engine(
                self._url, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT}
            )
            try:
                async with engine.connect() as conn:
                    result = await conn.execute(text(statement))
                    row = result.first() if result.returns_rows else None
                    await conn.commit()
                    return None if row is None else row[0]
            finally:
                await engine.dispose()

        return _run(work())


def find_mysql() -> tuple[MySQLServer | None, str]:
    """The server for the tests and a line saying which; or None and a line saying why there is none."""
    env_url = os.environ.get(ENV_VAR, "").strip()
    if env_url:
        try:
            server = MySQLServer(normalize_url(env_url), "env")
        except Exception as exc:
            raise MySQLUnavailableError(
                f"{ENV_VAR} is set but no MySQL/MariaDB server answers there: {type(exc).__name__}: {exc}"
            ) from exc
        return server, server.describe()
    try:
        import asyncmy  # noqa: F401
    except ImportError:
        return (
            None,
            "MySQL/MariaDB cases skipped: the asyncmy driver is not installed (pip install immagent[mysql])",
        )
    try:
        server = MySQLServer(normalize_url(DEFAULT_URL), "default")
    except Exception as exc:
        where = f"{make_url(DEFAULT_URL).host}:{make_url(DEFAULT_URL).port}"
        return None, (
            f"{ENV_VAR} is unset and no MySQL/MariaDB server answers at {where} "
            f"({type(exc).__name__}); set {ENV_VAR}=mysql://user:password@host:port/database to use one"
        )
    return server, server.describe()
