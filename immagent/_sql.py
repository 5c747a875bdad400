"""Small portable SQL helpers that need a dialect branch."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession


def insert_ignore(session: AsyncSession, table: Table) -> Any:
    """INSERT that skips rows whose primary key exists (content-addressed texts are written once)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=["id"])
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing(index_elements=["id"])
    return insert(table).prefix_with("IGNORE")


def violation(exc: BaseException) -> str | None:
    """Which constraint an IntegrityError broke, from the driver's message (the same on every backend):
    ``"unique"`` (a primary or unique key), ``"foreign_key"``, or None when it is neither."""
    text = str(getattr(exc, "orig", exc)).lower()
    if "foreign key" in text:
        return "foreign_key"
    if "unique" in text or "duplicate" in text:
        return "unique"
    return None
