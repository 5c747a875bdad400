"""The database side of a store: engine, sessions, schema check and the unit-of-work rules, in one place.

Every operation of every part of the store goes through ``write()`` or ``read()`` here:

- ``write(session)`` is one transaction, committed when the block ends and rolled back when it raises;
  with a caller's ``session=``, rows join that transaction (flushed, not committed: the caller decides).
- ``read()`` is a short session whose connection returns to the pool when the block ends.
- Neither is ever held across a model or tool call: callers read, release, run the pure core, then write.
- Both check once per store that the database is at this library's migration head (SchemaError).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from immagent import _validation as check
from immagent._engine import engine_options, prepare_engine
from immagent._errors import MessageNotFoundError, SchemaError, ValidationError
from immagent._migrations import (
    HEAD_REVISION,
    current_revision_sync,
    downgrade_sync,
    is_known_revision,
    upgrade_sync,
)
from immagent._urls import database_url

__all__ = ["Database", "check_session", "schema_error"]


class Database:
    """An engine (owned or shared), its session factory, and the unit-of-work rules."""

    def __init__(self, engine: AsyncEngine, *, owns_engine: bool) -> None:
        self.engine = engine
        self.owns_engine = owns_engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self.dialect = engine.dialect.name
        self._schema_checked = False
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
        resolved = database_url(url)
        own = create_async_engine(
            resolved,
            **engine_options(resolved, max_size=max_size, recycle=max_inactive_connection_lifetime),
        )
        prepare_engine(own)
        database = cls(own, owns_engine=True)
        try:
            await database._warm(min(min_size, max_size))
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
        async with self.engine.connect() as conn:
            await conn.execute(select(literal(1)))
        return True

    # ------------------------------------------------------------------ schema

    async def migrate(self, revision: str) -> None:
        async with self.engine.begin() as conn:
            found = await conn.run_sync(current_revision_sync)
            if found is not None and not is_known_revision(found):
                raise schema_error(found)
            await conn.run_sync(upgrade_sync, revision)
        self._schema_checked = False

    async def downgrade(self, revision: str) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(downgrade_sync, revision)
        self._schema_checked = False

    async def revision(self) -> str | None:
        async with self.engine.connect() as conn:
            return await conn.run_sync(current_revision_sync)

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
            self._schema_checked = True

    # ------------------------------------------------------------------ units of work

    @asynccontextmanager
    async def write(self, session: AsyncSession | None = None) -> AsyncIterator[AsyncSession]:
        """One transaction of our own, committed at the end; or the caller's session, flushed but not
        committed, so the caller's transaction decides."""
        check_session(session)
        await self.require_schema()
        try:
            if session is not None:
                yield session
                await session.flush()
                return
            async with self._write_lock, self.sessions() as own, own.begin():
                yield own
        except IntegrityError as exc:
            raise _integrity_error(exc) from exc

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A short read session; its connection goes back to the pool on exit."""
        await self.require_schema()
        async with self.sessions() as session:
            yield session


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
