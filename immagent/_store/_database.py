"""The database side of a store: engine, sessions, schema check and the unit-of-work rules, in one place.

Every operation of every part of the store goes through ``write()`` or ``read()`` here:

- ``write(session)`` is one transaction, committed when the block ends and rolled back when it raises;
  with a caller's ``session=``, rows join that transaction (flushed, not committed: the caller decides).
- ``write_many(work, session)`` is the same unit of work for a fixed list of Core statements (a turn's
  inserts): ``work`` runs synchronously on the unit's connection inside one greenlet, with the begin and
  the commit, instead of one greenlet switch (and one pass through the ORM's execute) per step.
- ``read()`` is a short session for one statement, whose connection returns to the pool when the block
  ends; on asyncpg it runs in autocommit (no BEGIN and ROLLBACK around a lone SELECT).
- Neither is ever held across a model or tool call: callers read, release, run the pure core, then write.
- Both check once per store that the database is at this library's migration head (SchemaError).
- A cancellation never interrupts a statement, the commit, the rollback or the connection's return to
  the pool: each runs to its end in a task of its own, then the cancellation goes on (``to_completion``).
  Interrupted, SQLAlchemy would invalidate the connection and close it without a rollback; on SQLite the
  cancelled statement's cursor keeps that closed connection alive ("zombie", sqlite3_close_v2) with its
  open write transaction, so every later writer waited for the lock until the garbage collector ran.
- A connection-level failure (server down, connection refused or lost, a network timeout) leaves as
  DatabaseUnavailableError, chaining the driver's error; SQL errors stay what they are.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, literal, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from immagent import _validation as check
from immagent._engine import DEFAULT_COMMAND_TIMEOUT_S, engine_options, lift_recursion_limit, prepare_engine
from immagent._errors import DatabaseUnavailableError, MessageNotFoundError, SchemaError, ValidationError
from immagent._migrations import (
    HEAD_REVISION,
    current_revision_sync,
    downgrade_sync,
    is_known_revision,
    upgrade_sync,
)
from immagent._urls import database_url

__all__ = ["Database", "check_session", "schema_error", "to_completion", "unavailable"]

_T = TypeVar("_T")


async def to_completion(awaitable: Awaitable[_T], on_cancel: Callable[[], None] | None = None) -> _T:
    """Await ``awaitable`` in a task of its own that a cancellation of the caller does not interrupt:
    the caller waits for it to end (a second cancellation too), then the cancellation is re-raised.
    ``on_cancel`` is told when the caller is cancelled (so a unit of work can stop before its commit)."""
    task = asyncio.ensure_future(awaitable)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError as exc:
            cancelled = exc
            if on_cancel is not None:
                on_cancel()
    if cancelled is not None:
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation is what the caller sees
        raise cancelled
    return task.result()


class UnitSession(AsyncSession):
    """The store's own sessions: every database round trip runs to its end even if the caller is
    cancelled meanwhile (see the module's docstring)."""

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await to_completion(super().execute(*args, **kwargs))

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return await to_completion(super().scalar(*args, **kwargs))

    async def scalars(self, *args: Any, **kwargs: Any) -> Any:
        return await to_completion(super().scalars(*args, **kwargs))

    async def flush(self, objects: Any = None) -> None:
        await to_completion(super().flush(objects))


async def _end(session: AsyncSession, *, commit: bool) -> None:
    """Commit (or not), roll back what did not commit, and return the connection to the pool.

    The explicit rollback after a failed commit matters: SQLAlchemy then marks the connection's
    transaction as ended without a ROLLBACK reaching the driver, and the pool skips its own reset."""
    try:
        if commit:
            try:
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
    finally:
        await session.close()


class Database:
    """An engine (owned or shared), its session factory, and the unit-of-work rules."""

    def __init__(self, engine: AsyncEngine, *, owns_engine: bool) -> None:
        self.engine = engine
        self.owns_engine = owns_engine
        lift_recursion_limit(engine)
        self.sessions = async_sessionmaker(
            engine, class_=UnitSession, expire_on_commit=False, autoflush=False
        )
        # Every read is one statement, atomic on its own: on asyncpg, run it without BEGIN and ROLLBACK
        # (two round trips of three; asyncpg switches autocommit on the client, at no cost). SQLite keeps
        # its transactions: its driver's autocommit switch would undo prepare_engine()'s BEGIN recipe.
        self.read_sessions = (
            async_sessionmaker(
                engine.execution_options(isolation_level="AUTOCOMMIT"),
                class_=UnitSession,
                expire_on_commit=False,
                autoflush=False,
            )
            if engine.dialect.driver == "asyncpg"
            else self.sessions
        )
        self.dialect = engine.dialect.name
        self._schema_checked = False
        #: True when immagent's tables are distributed on Citus (read with the schema check).
        self.distributed = False
        self._schema_lock = asyncio.Lock()
        # SQLite has one writer at a time; queueing our own writers here is fairer and faster than
        # letting them poll the file lock (its busy handler sleeps in growing steps).
        self._write_lock: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if self.dialect == "sqlite" else contextlib.nullcontext()
        )

    @classmethod
    async def open(
        cls,
        url: str | None,
        *,
        engine: AsyncEngine | None,
        min_size: int,
        max_size: int,
        max_inactive_connection_lifetime: float,
        command_timeout: float | None = DEFAULT_COMMAND_TIMEOUT_S,
    ) -> Database:
        """A shared engine as given, or an engine of our own (pool warmed, so a bad URL fails here)."""
        if engine is not None:
            if url is not None:
                raise ValidationError("engine", "pass either url or engine, not both")
            if not isinstance(engine, AsyncEngine):
                raise ValidationError("engine", f"must be an AsyncEngine, not {type(engine).__name__}")
            return cls(engine, owns_engine=False)
        check.positive_int("max_size", max_size)
        check.positive_int("min_size", min_size, minimum=0)
        if min_size > max_size:
            raise ValidationError("min_size", f"must be <= max_size ({max_size}), got {min_size}")
        check.seconds("max_inactive_connection_lifetime", max_inactive_connection_lifetime)
        if command_timeout is not None:
            check.seconds("command_timeout", command_timeout)
        resolved = database_url(url)
        own = create_async_engine(
            resolved,
            **engine_options(
                resolved,
                max_size=max_size,
                recycle=max_inactive_connection_lifetime,
                command_timeout=command_timeout,
            ),
        )
        prepare_engine(own)
        database = cls(own, owns_engine=True)
        try:
            with _connection_failures():
                await to_completion(database._warm(min(min_size, max_size)))
        except BaseException:
            await own.dispose()
            raise
        return database

    async def _warm(self, count: int) -> None:
        """Open ``count`` pooled connections up front (and fail fast on a bad URL or server)."""

        async def one() -> None:
            async with self.engine.connect() as conn:
                await conn.execute(select(literal(1)))

        await asyncio.gather(*(one() for _ in range(max(count, 1))))

    async def close(self) -> None:
        """Release the pool, only when the engine is ours (a shared engine is never disposed)."""
        if self.owns_engine:
            await self.engine.dispose()

    async def ping(self) -> bool:
        async def one() -> None:
            async with self.engine.connect() as conn:
                await conn.execute(select(literal(1)))

        with _connection_failures():
            await to_completion(one())
        return True

    # ------------------------------------------------------------------ schema

    async def migrate(self, revision: str) -> None:
        def upgrade(conn: Connection) -> None:
            found = current_revision_sync(conn)
            if found is not None and not is_known_revision(found):
                raise schema_error(found)
            upgrade_sync(conn, revision)

        with _connection_failures():
            await to_completion(self._migration(upgrade))
        self._schema_checked = False

    async def downgrade(self, revision: str) -> None:
        with _connection_failures():
            await to_completion(self._migration(lambda conn: downgrade_sync(conn, revision)))
        self._schema_checked = False

    async def _migration(self, work: Callable[[Connection], None]) -> None:
        """Run ``work`` in one transaction. SQLite: with its foreign key checks off (a key changes by
        rebuilding the table, which the checks would refuse; the scripts run ``foreign_key_check``
        themselves), switched on the connection before BEGIN and back on after the end."""
        sqlite = self.dialect == "sqlite"
        async with self.engine.connect() as conn:
            if sqlite:
                await conn.run_sync(_sqlite_foreign_keys, on=False)
            try:
                async with conn.begin():
                    await conn.run_sync(work)
            finally:
                if sqlite:
                    await conn.run_sync(_sqlite_foreign_keys, on=True)

    async def revision(self) -> str | None:
        async def read() -> str | None:
            async with self.engine.connect() as conn:
                return await conn.run_sync(current_revision_sync)

        with _connection_failures():
            return await to_completion(read())

    async def require_schema(self) -> None:
        """Check once per store that the database is at this library's head; SchemaError otherwise."""
        if self._schema_checked:
            return
        async with self._schema_lock:
            if self._schema_checked:
                return
            found = await self.revision()
            if found != HEAD_REVISION:
                raise schema_error(found)
            if self.dialect == "postgresql":
                await self.check_distributed()
            self._schema_checked = True

    async def distribute(self) -> tuple[str, ...]:
        """See ``Store.distribute``: one transaction on the coordinator, then read the layout again."""
        from immagent._store._citus import distribute

        self._schema_checked = False
        await self.require_schema()

        async def run() -> tuple[str, ...]:
            async with self.engine.begin() as conn:
                return (await distribute(conn)).steps

        with _connection_failures():
            steps = await to_completion(run())
        await self.check_distributed()
        return steps

    async def check_distributed(self) -> bool:
        """Read (again) whether immagent's tables are distributed on Citus."""
        from immagent._store._citus import is_distributed

        async with self.engine.connect() as conn:
            self.distributed = await is_distributed(conn)
        return self.distributed

    # ------------------------------------------------------------------ units of work

    @asynccontextmanager
    async def write(self, session: AsyncSession | None = None) -> AsyncIterator[AsyncSession]:
        """One transaction of our own, committed at the end; or the caller's session, flushed but not
        committed, so the caller's transaction decides (and, if the caller is cancelled, rolls back)."""
        check_session(session)
        with _connection_failures():
            await self.require_schema()
            try:
                if session is not None:
                    yield session
                    await to_completion(session.flush())
                    return
                async with self._write_lock:
                    own = self.sessions()
                    try:
                        yield own
                    except BaseException:
                        await to_completion(_end(own, commit=False))
                        raise
                    await to_completion(_end(own, commit=True))
            except IntegrityError as exc:
                mapped = _integrity_error(exc)
                if mapped is exc:
                    raise
                raise mapped from exc

    async def write_many(self, work: Callable[[Connection], _T], session: AsyncSession | None = None) -> _T:
        """``write(session)`` for synchronous Core work on the unit's connection: begin, ``work``, commit
        (or, in a caller's session, ``work`` then a flush) all happen in one greenlet, in a task of their
        own (``to_completion``). Same rules as ``write``: a cancellation that arrives before the COMMIT
        rolls the unit back once its current statement ends; from the COMMIT on, the unit completes."""
        check_session(session)
        with _connection_failures():
            await self.require_schema()
            try:
                if session is not None:
                    return await to_completion(session.run_sync(_joined, work))
                async with self._write_lock:
                    stop = _Stop()
                    unit = self.sessions().run_sync(_committed, work, stop)
                    return await to_completion(unit, on_cancel=stop.set)
            except IntegrityError as exc:
                mapped = _integrity_error(exc)
                if mapped is exc:
                    raise
                raise mapped from exc

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A short session for one read statement; its connection goes back to the pool on exit."""
        with _connection_failures():
            await self.require_schema()
            session = self.read_sessions()
            try:
                yield session
            finally:
                await to_completion(_end(session, commit=False))


class _Stop:
    """Set when the caller of a unit of work was cancelled: the unit then rolls back before its commit."""

    requested = False

    def set(self) -> None:
        self.requested = True


def _sqlite_foreign_keys(conn: Connection, *, on: bool) -> None:
    """Switch SQLite's foreign key checks on the driver's connection (outside a transaction: inside one,
    SQLite ignores the pragma)."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    finally:
        cursor.close()


def _committed(session: Session, work: Callable[[Connection], _T], stop: _Stop) -> _T:
    """Our own unit of work, inside one greenlet: begin, work, commit; rolled back (explicitly, as
    ``_end`` does) and closed on error, or when the caller was cancelled before the commit."""
    try:
        result = work(session.connection())
        if stop.requested:
            raise asyncio.CancelledError("cancelled before the commit: rolled back")
        session.commit()
        return result
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _joined(session: Session, work: Callable[[Connection], _T]) -> _T:
    """Work in a caller's session: its transaction, flushed after, never committed here."""
    result = work(session.connection())
    session.flush()
    return result


#: What a driver raises when the server cannot be reached at all (refused, unreachable, timed out).
_NETWORK_ERRORS = (OSError, TimeoutError)


def unavailable(exc: BaseException) -> bool:
    """True for a connection-level failure: SQLAlchemy saw the connection die (and invalidated it), or
    the driver could not reach the server. A SQL error on a live connection is never one."""
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(exc.orig, _NETWORK_ERRORS) or _refused(exc)
    return isinstance(exc, _NETWORK_ERRORS)


def _refused(exc: DBAPIError) -> bool:
    """The server answered but will not take connections now (starting up, shutting down, in recovery:
    SQLSTATE class 57P, as asyncpg reports it), or, on MySQL, could not be reached or went away while
    connecting (error codes the MySQL dialect does not count as a disconnect)."""
    driver_error = getattr(exc.orig, "__cause__", None)  # SQLAlchemy's adapter wraps asyncpg's error
    state = getattr(exc.orig, "sqlstate", None) or getattr(driver_error, "sqlstate", None)
    if isinstance(state, str) and state.startswith("57P"):
        return True
    return _mysql_unreachable(getattr(exc.orig, "args", ()))


#: MySQL client and server error codes that mean "no server to talk to": can't connect through the socket
#: or TCP (2002, 2003), unknown host (2005), lost or gone during the handshake (2013, 2006), the server
#: shutting down (1053) or the connection killed (1927, MariaDB).
_MYSQL_UNREACHABLE = frozenset({1053, 1927, 2002, 2003, 2005, 2006, 2013})


def _mysql_unreachable(args: tuple[Any, ...]) -> bool:
    """MySQL drivers (asyncmy, PyMySQL) raise with ``(code, message)``; other drivers' args are text."""
    return bool(args) and isinstance(args[0], int) and args[0] in _MYSQL_UNREACHABLE


@contextlib.contextmanager
def _connection_failures() -> Iterator[None]:
    """Turn a connection-level failure into DatabaseUnavailableError (the driver's error chained)."""
    try:
        yield
    except (DBAPIError, *_NETWORK_ERRORS) as exc:
        if not unavailable(exc):
            raise
        raise DatabaseUnavailableError(
            f"the database is unavailable ({_reason(exc)}); nothing was committed by this call: check that "
            "the server is running and reachable, then retry (the pool reconnects by itself)"
        ) from exc


def _reason(exc: BaseException) -> str:
    """The driver's own words, on one line."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = " ".join(str(cause).split()) or "no message"
    return f"{type(cause).__name__}: {text}"[:300]


def check_session(session: object) -> None:
    """``session=`` must be None or the caller's AsyncSession (checked before the model is called)."""
    if session is not None and not isinstance(session, AsyncSession):
        raise ValidationError("session", f"must be an AsyncSession, not {type(session).__name__}")


def schema_error(found: str | None) -> SchemaError:
    """The database is not at this library's head: say where it is, what is needed, and the fix."""
    fix = "run `immagent db upgrade` (or `await store.migrate()`, or `alembic upgrade head`)"
    if found is None:
        message = (
            "the database has no immagent schema (revision: none; never migrated, or downgraded to base); "
            f"this library needs revision {HEAD_REVISION}: {fix}"
        )
    elif is_known_revision(found):
        message = (
            f"the database is at immagent revision {found}, behind this library's head {HEAD_REVISION}: {fix}"
        )
    else:
        message = (
            f"the database is at immagent revision {found}, newer than this library's head {HEAD_REVISION} "
            "(a newer immagent migrated it): upgrade immagent here (pip install -U immagent); "
            "this version will not use it"
        )
    return SchemaError(message, database_revision=found, library_revision=HEAD_REVISION)


def _integrity_error(exc: IntegrityError) -> Exception:
    """A foreign-key failure while writing means something we point at was removed meanwhile."""
    text = str(exc.orig).lower()
    if "foreign key" in text:
        return MessageNotFoundError(
            "?", "a message or system prompt this state needs was removed (by gc) while writing; reload it"
        )
    return exc
