"""Small portable SQL helpers that need a dialect branch (PostgreSQL, SQLite, MySQL/MariaDB)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ClauseElement, Delete, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import SyntaxExtension
from sqlalchemy.sql.visitors import InternalTraversal

#: SQLAlchemy names the dialect after the URL's scheme: both are MySQL's.
MYSQL_FAMILY = ("mysql", "mariadb")


async def insert_ignore(session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT the rows whose primary key ``id`` is not there yet (content-addressed texts are written once;
    an import skips what exists).

    PostgreSQL and SQLite: ``ON CONFLICT DO NOTHING``. MySQL has only ``INSERT IGNORE``, which turns every
    skipped duplicate into a warning (the asyncmy driver then reads it with one more round trip and logs
    it) and would downgrade other errors too; so the ids already present are read first, and IGNORE is
    left only for a concurrent writer of the same id.
    """
    if not rows:
        return
    key = [column.name for column in table.primary_key.columns]  # (id, root_id) for a tree's rows
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        await session.execute(pg_insert(table).on_conflict_do_nothing(index_elements=key), rows)
        return
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        await session.execute(sqlite_insert(table).on_conflict_do_nothing(index_elements=key), rows)
        return
    present = set(
        (await session.execute(select(table.c.id).where(table.c.id.in_([r["id"] for r in rows])))).scalars()
    )
    missing = [r for r in rows if r["id"] not in present]
    if missing:
        await session.execute(insert(table).prefix_with("IGNORE"), missing)


def children_first(statement: Delete, depth: Any, dialect: str) -> Delete:
    """A DELETE of tree nodes that removes the deepest first where that matters.

    InnoDB checks a foreign key row by row, not at the end of the statement, so deleting a message before
    the child that points at it fails even when the same statement deletes the child too. PostgreSQL and
    SQLite check at the end of the statement and have no ``DELETE ... ORDER BY``.
    """
    if dialect not in MYSQL_FAMILY:
        return statement
    return statement.ext(_OrderBy(depth.desc()))


class _OrderBy(SyntaxExtension, ClauseElement):
    """``ORDER BY`` after a MySQL DELETE's WHERE (SQLAlchemy's Delete has no order_by of its own)."""

    __visit_name__ = "immagent_delete_order_by"
    inherit_cache = True
    _traverse_internals = [("order", InternalTraversal.dp_clauseelement)]  # noqa: RUF012 (SQLAlchemy reads it)

    def __init__(self, order: ClauseElement) -> None:
        self.order = order

    def apply_to_delete(self, delete_stmt: Delete) -> None:
        delete_stmt.apply_syntax_extension_point(self.append_replacing_same_type, "post_criteria")


@compiles(_OrderBy)
def _compile_order_by(element: _OrderBy, compiler: Any, **kw: Any) -> str:
    return f"ORDER BY {compiler.process(element.order, **kw)}"


def violation(exc: BaseException) -> str | None:
    """Which constraint an IntegrityError broke, from the driver's message (the same on every backend):
    ``"unique"`` (a primary or unique key), ``"foreign_key"``, or None when it is neither."""
    text = str(getattr(exc, "orig", exc)).lower()
    if "foreign key" in text:
        return "foreign_key"
    if "unique" in text or "duplicate" in text:
        return "unique"
    return None
