"""Engine settings per backend: pool sizing for the servers, pragmas for SQLite.

Only engines the store creates are configured here; a shared app engine is used exactly as given.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import StaticPool
from sqlalchemy.util.concurrency import await_

#: How long a writer waits for SQLite's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_S = 30


def engine_options(url: str, *, max_size: int, recycle: float) -> dict[str, Any]:
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
        "pool_recycle": recycle,
        # A dead pooled connection (server restart, pg_terminate_backend, a dropped network) is replaced
        # at checkout instead of failing the caller. prepare_engine() makes the ping one round trip.
        "pool_pre_ping": True,
    }


def prepare_engine(engine: AsyncEngine) -> None:
    """SQLite: real transactions, foreign keys, WAL so readers never block the writer, waits on locks.

    The sqlite3 driver opens transactions only before INSERT/UPDATE/DELETE it recognises, so a statement
    that starts with ``WITH`` (gc's recursive DELETE) would autocommit on its own. SQLAlchemy's documented
    recipe turns that off and emits BEGIN itself, so every unit of work is one transaction.
    """
    if engine.dialect.driver == "asyncpg":
        _one_round_trip_ping(engine)
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


def _one_round_trip_ping(engine: AsyncEngine) -> None:
    """Make asyncpg's pre-ping one round trip instead of three.

    SQLAlchemy's asyncpg ping wraps an empty query in BEGIN/ROLLBACK (for pgbouncer's transaction
    mode). A simple-protocol SELECT 1 is its own transaction there too, so it is enough; and a
    connection asyncpg already knows to be closed costs no round trip at all.
    """
    dialect: Any = engine.dialect

    def do_ping(dbapi_connection: Any) -> bool:
        driver = dbapi_connection.driver_connection
        if driver.is_closed():
            raise DisconnectionError("the server closed this pooled connection")
        try:
            await_(driver.execute("SELECT 1"))
        except Exception as error:
            dbapi_connection._handle_exception(error)  # maps it to the DBAPI error SQLAlchemy expects
        return True

    dialect.do_ping = do_ping
