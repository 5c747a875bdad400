"""Helpers of the reliability suite: the tally, row-id views of a database, and real async pauses
inside engine events (so a commit can be slowed down or interrupted where it really runs)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Awaitable
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_only

from immagent._orm import AgentRow, MessageRow, TextRow

_T = TypeVar("_T")


class Tally:
    """Counts by kind: faults injected and survived, inputs tried, turns run, rows lost."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, kind: str, n: int = 1) -> None:
        self.counts[kind] += n


async def row_ids(engine: AsyncEngine) -> dict[str, set[UUID]]:
    """The ids in each immagent table."""
    out: dict[str, set[UUID]] = {}
    async with engine.connect() as conn:
        for row in (AgentRow, MessageRow, TextRow):
            table = row.__table__
            out[table.name] = set((await conn.execute(select(table.c.id))).scalars())
    return out


#: How old InnoDB lets its transaction snapshot get (MySQL and MariaDB docs: 0.1 s), with a margin.
INNODB_TRX_REFRESH_S = 0.15


async def open_transactions(engine: AsyncEngine) -> int:
    """How many transactions are still open on ``engine``'s database, seen from outside the pool: the
    write lock on SQLite (a fresh connection tries to take it without waiting), the sessions idle in a
    transaction on PostgreSQL, the other sessions' InnoDB transactions on MySQL/MariaDB."""
    if engine.dialect.name == "sqlite":
        probe = sqlite3.connect(str(engine.url.database), timeout=0)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return 0
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc), exc
            return 1
        finally:
            probe.close()
    if engine.dialect.name in ("mysql", "mariadb"):  # InnoDB's open transactions of other sessions
        # INNODB_TRX is served from one server-wide snapshot that InnoDB refreshes only when it is older
        # than 0.1 s: read sooner, it can still show a transaction that ended just before (taken while it
        # was open by any other client's read, another test run's included). Past 0.1 s from now, every
        # snapshot was taken after this call began, so the count is about the state we ask about.
        await asyncio.sleep(INNODB_TRX_REFRESH_S)
        query = (
            "SELECT count(*) FROM information_schema.innodb_trx t JOIN information_schema.processlist p "
            "ON p.id = t.trx_mysql_thread_id WHERE p.db = DATABASE() AND p.id <> CONNECTION_ID()"
        )
    else:
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
        )
    outside = create_async_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with outside.connect() as conn:
            return int((await conn.execute(text(query))).scalar_one())
    finally:
        await outside.dispose()


def kept_rows(snapshot: list[tuple[Any, ...]], ids: set[UUID]) -> list[tuple[Any, ...]]:
    """The rows of a snapshot whose id is in ``ids`` (every immagent table's first column is its id)."""
    return [row for row in snapshot if row[0] in ids]


def run_in_event(awaitable: Awaitable[_T]) -> _T:
    """Await from inside a synchronous engine event: SQLAlchemy's async bridge runs those events in a
    greenlet, so this suspends the real statement or commit (it can be cancelled there, too)."""
    return await_only(awaitable)


def pause_in_event(seconds: float) -> None:
    """Sleep inside an engine event without blocking the event loop."""
    run_in_event(asyncio.sleep(seconds))
