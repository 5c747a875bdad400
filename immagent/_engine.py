"""Engine settings per backend: pool sizing and health for the servers, pragmas for SQLite.

Only engines the store creates are configured here; a shared app engine is used as given, except for
MySQL/MariaDB's recursion limit (``lift_recursion_limit``), without which long histories would be wrong.
"""

from __future__ import annotations

import select
import weakref
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import StaticPool

#: How long a writer waits for SQLite's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_S = 30

#: ``Store.connect(command_timeout=)``'s default: how long one round trip to a database server (opening
#: a connection, a statement, the commit) may take before the call fails with DatabaseUnavailableError.
#: It bounds a turn on a network path that drops packets silently (no FIN, no RST).
DEFAULT_COMMAND_TIMEOUT_S = 60.0

#: MySQL/MariaDB stop a recursive CTE after this many iterations by default: 1,000 (MariaDB's
#: ``max_recursive_iterations``, which then returns the rows so far with a warning; MySQL's
#: ``cte_max_recursion_depth``, which fails). Every walk of a history, a lineage or a tree is one
#: recursive query with one iteration per message or state, so the limit is lifted to the server's maximum
#: on each connection immagent uses. A walk cannot loop: a row's parent is always written before it.
RECURSION_LIMIT = 4_294_967_295

#: Drivers whose pooled connections are checked by a socket poll, and how each says it is closed.
_POLLED: dict[str, Callable[[Any], bool]] = {
    "asyncpg": lambda driver: bool(driver.is_closed()),
    "asyncmy": lambda driver: not driver.connected,
}


def engine_options(
    url: str, *, max_size: int, recycle: float, command_timeout: float | None = DEFAULT_COMMAND_TIMEOUT_S
) -> dict[str, Any]:
    """``create_async_engine`` keyword arguments for ``url``."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            # One shared connection, or every session would see its own empty database.
            return {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        return {
            "pool_size": max_size,
            "max_overflow": 0,
            "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S},
        }
    return {
        "pool_size": max_size,
        "max_overflow": 0,
        # Below MySQL's wait_timeout (8 h by default) and any proxy's idle limit: an idle connection is
        # replaced before a server or middlebox drops it.
        "pool_recycle": recycle,
        # asyncpg and asyncmy: no pool_pre_ping (a round trip per checkout): prepare_engine() checks the
        # connection's socket at checkout instead, which costs one non-blocking poll. Other drivers ping.
        "pool_pre_ping": parsed.get_driver_name() not in _POLLED,
        "connect_args": _timeouts(parsed.get_driver_name(), command_timeout),
    }


def _timeouts(driver: str, seconds: float | None) -> dict[str, Any]:
    """The driver's own connect and statement timeouts (a silently dropped path fails, never hangs)."""
    if seconds is None:
        return {}
    if driver == "asyncpg":
        # timeout: opening a connection; command_timeout: each statement, BEGIN and COMMIT included.
        return {"timeout": seconds, "command_timeout": seconds}
    if driver == "asyncmy":
        # Each wait for the server's answer (a statement, the COMMIT); the driver then closes the
        # connection. It costs a timer per read (on Python 3.11 a task): command_timeout=None saves it.
        return {"connect_timeout": seconds, "read_timeout": seconds}
    return {}


def prepare_engine(engine: AsyncEngine) -> None:
    """SQLite: real transactions, foreign keys, WAL so readers never block the writer, waits on locks.

    The sqlite3 driver opens transactions only before INSERT/UPDATE/DELETE it recognises, so a statement
    that starts with ``WITH`` (gc's recursive DELETE) would autocommit on its own. SQLAlchemy's documented
    recipe turns that off and emits BEGIN itself, so every unit of work is one transaction.
    """
    if engine.dialect.driver in _POLLED:
        _discard_dead_connections(engine)
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver's implicit transactions off; see "begin"
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


_LIFTED: weakref.WeakSet[Any] = weakref.WeakSet()


def lift_recursion_limit(engine: AsyncEngine) -> None:
    """MySQL/MariaDB: lift the session's recursion limit (``RECURSION_LIMIT``) once per connection, at its
    first checkout after this call, on the raw driver connection (no statement of the app's is touched or
    counted). Also for a shared app engine: a history of more than 1,000 messages would otherwise come
    back cut short on MariaDB, and fail on MySQL. Once per engine, however many stores share it."""
    if engine.dialect.name not in ("mysql", "mariadb") or engine.sync_engine in _LIFTED:
        return
    _LIFTED.add(engine.sync_engine)
    key = "immagent_recursion_lifted"

    @event.listens_for(engine.sync_engine, "checkout")
    def _lift(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.get(key):
            return
        mariadb = getattr(engine.dialect, "is_mariadb", False)  # known once the first connection opened
        variable = "max_recursive_iterations" if mariadb else "cte_max_recursion_depth"
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"SET SESSION {variable} = {RECURSION_LIMIT}")
        finally:
            cursor.close()
        record.info[key] = True


def _discard_dead_connections(engine: AsyncEngine) -> None:
    """Hand out no pooled connection the server has closed, without a round trip.

    A server that closes a connection (restart, ``pg_terminate_backend``, MySQL's ``KILL`` or
    ``wait_timeout``) sends FIN, often after an error packet. The driver marks itself closed once the event
    loop has read them; if the loop was busy, the bytes already wait in the socket, while an idle, healthy
    connection has nothing to read (neither protocol sends anything unasked). So at checkout a closed
    flag or a readable socket means "replace it", and the pool opens a fresh one. A silently dropped
    network path is not seen here: the first statement fails, and SQLAlchemy then replaces every pooled
    connection.
    """
    closed = _POLLED[engine.dialect.driver]

    @event.listens_for(engine.sync_engine, "checkout")
    def _check(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        if closed(driver) or _has_unread_bytes(driver):
            raise DisconnectionError("the server closed this pooled connection")


def _has_unread_bytes(driver: Any) -> bool:
    """True when an idle connection's socket has data or EOF waiting (a non-blocking poll), or when its
    transport is closed already (the loop saw the EOF before the driver marked itself closed)."""
    transport = getattr(driver, "_transport", None)
    if transport is None:
        return False
    if transport.is_closing():
        return True
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    if sock.fileno() < 0:
        return True
    readable, _, _ = select.select([sock.fileno()], [], [], 0)
    return bool(readable)
