"""Database helpers shared by tests: row snapshots, row counts and fault injection through engine events.

``snapshot()`` reads every immagent row in a stable order: two equal snapshots mean the database is
unchanged, byte for byte as far as the rows go. ``StatementFault`` raises on the k-th statement (or at
the commit) of the next write transaction, through SQLAlchemy's ``before_cursor_execute`` and ``commit``
events, so a real driver-level failure can be placed at every step of a unit of work.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from immagent._orm import AgentRow, MessageRow, TextRow, ThreadMoveRow, ThreadRow
from immagent._sql import children_first

__all__ = [
    "BACKENDS",
    "InjectedFault",
    "StatementFault",
    "UpdateGuard",
    "backend_of",
    "empty_database",
    "row_counts",
    "snapshot",
]

_ROWS = (TextRow, MessageRow, AgentRow, ThreadRow, ThreadMoveRow)
#: Children first, as the foreign keys want.
_DELETE_ORDER = (ThreadMoveRow, ThreadRow, AgentRow, MessageRow, TextRow)

#: Every backend the store is tested on ("mysql" is MySQL or MariaDB); parametrise database fixtures with it.
BACKENDS = ("sqlite", "postgresql", "mysql")


async def row_counts(engine: AsyncEngine) -> dict[str, int]:
    """How many rows each immagent table holds."""
    async with engine.connect() as conn:
        return {
            row.__tablename__: int((await conn.execute(select(func.count()).select_from(row))).scalar_one())
            for row in _ROWS
        }


async def snapshot(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    """Every immagent row, in a stable order: equal snapshots mean an unchanged database."""
    out: list[tuple[Any, ...]] = []
    async with engine.connect() as conn:
        for row in _ROWS:
            table = row.__table__
            result = await conn.execute(select(table).order_by(*table.primary_key.columns))
            out.extend(tuple(r) for r in result)
    return out


class InjectedFault(RuntimeError):
    """The error a fault-injection hook raises (stands in for a driver or server error)."""


_WRITE = re.compile(r"^\s*(WITH\b.*?)?\b(INSERT|DELETE|UPDATE)\b", re.IGNORECASE | re.DOTALL)


def _is_write(statement: str) -> bool:
    """INSERT, DELETE or UPDATE, also behind a WITH (gc's recursive DELETE starts with WITH)."""
    return _WRITE.match(statement) is not None


class StatementFault:
    """Raise ``InjectedFault`` at the k-th statement (1-based) of the next transaction that writes, or
    at its commit when ``at`` is ``"commit"``. Reads before the first write are not counted, so k
    walks the statements of the unit of work itself. ``seen`` keeps every statement that ran."""

    def __init__(self, engine: AsyncEngine, at: int | str) -> None:
        self.engine = engine
        self.at = at
        self.seen: list[str] = []
        self.writing = False
        self.fired = False

    def _execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.fired:
            return
        if not self.writing and _is_write(statement):
            self.writing = True
        if self.writing:
            self.seen.append(statement)
            if self.at == len(self.seen):
                self.fired = True
                raise InjectedFault(f"injected at statement {self.at}: {statement.split()[:3]}")

    def _commit(self, conn: Any) -> None:
        if self.writing and not self.fired and self.at == "commit":
            self.fired = True
            raise InjectedFault("injected at commit")

    def _rollback(self, conn: Any) -> None:
        if self.writing:  # the transaction that wrote is over; later transactions are not counted
            self.writing = False

    @contextmanager
    def armed(self) -> Iterator[StatementFault]:
        """Listen for the duration of the block."""
        hooks: list[tuple[str, Callable[..., None]]] = [
            ("before_cursor_execute", self._execute),
            ("commit", self._commit),
            ("rollback", self._rollback),
        ]
        for name, hook in hooks:
            event.listen(self.engine.sync_engine, name, hook)
        try:
            yield self
        finally:
            for name, hook in hooks:
                event.remove(self.engine.sync_engine, name, hook)


class UpdateGuard:
    """Records (and refuses) every UPDATE statement an engine runs: the library must never issue one."""

    def __init__(self) -> None:
        self.updates: list[str] = []
        self.statements = 0

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements += 1
        if statement.lstrip().upper().startswith("UPDATE"):
            self.updates.append(statement)
            raise AssertionError(f"immagent issued an UPDATE: {statement}")

    def watch(self, engine: AsyncEngine) -> None:
        """Start checking ``engine`` (until it is disposed)."""
        event.listen(engine.sync_engine, "before_cursor_execute", self)


@contextmanager
def empty_database(request: Any, backend: str, sqlite_file: Path, prefix: str) -> Iterator[str]:
    """An empty database (no tables) of ``backend``: a SQLite file, or a uniquely named database on the
    session's PostgreSQL or MySQL/MariaDB server (``pg_server``, ``mysql_server``), dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{sqlite_file}"
        return
    server = request.getfixturevalue("pg_server" if backend == "postgresql" else "mysql_server")
    url: str = server.create_database(prefix)
    try:
        yield url
    finally:
        server.drop_database(url)


def backend_of(url: str) -> str:
    """The test suite's name of a URL's backend: "sqlite", "postgresql" or "mysql" (MySQL or MariaDB)."""
    name = make_url(url).get_backend_name()
    return "mysql" if name in ("mysql", "mariadb") else name


async def empty_tables(url: str) -> None:
    """Delete every immagent row (children first, as the foreign keys want; on MySQL, which checks them
    row by row, the deepest messages first too)."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for row in _DELETE_ORDER:
                statement = delete(row.__table__)
                if row is MessageRow:  # MySQL checks the foreign keys row by row: deepest first
                    statement = children_first(statement, MessageRow.depth, engine.dialect.name)
                await conn.execute(statement)
    finally:
        await engine.dispose()


@dataclass
class StatementCounter:
    """The SQL statements an engine runs (``before_cursor_execute``), transaction control left out
    (the BEGIN immagent emits itself on SQLite is not a query)."""

    statements: list[str] = field(default_factory=list)

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.strip().upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
            self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)

    def matching(self, word: str) -> list[str]:
        return [s for s in self.statements if word.lower() in s.lower()]


@contextmanager
def counting(engine: AsyncEngine) -> Iterator[StatementCounter]:
    """Count the statements ``engine`` runs inside the ``with`` block."""
    counter = StatementCounter()
    event.listen(engine.sync_engine, "before_cursor_execute", counter)
    try:
        yield counter
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", counter)
