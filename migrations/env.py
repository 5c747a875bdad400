"""Alembic environment for immagent's own tables.

Runs online on a connection handed over by immagent (``config.attributes["connection"]``), or on an async
engine built from the URL (``sqlalchemy.url``, else ``IMMAGENT_DATABASE_URL``, else the embedded SQLite
default) with NullPool, or offline (``--sql``) to print the DDL. Only immagent's tables are considered,
and the version table is ``immagent_alembic_version``, so it can share a database with a host app.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

from immagent._migrations import VERSION_TABLE
from immagent._orm import Base
from immagent._urls import database_url

config = context.config
target_metadata = Base.metadata


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Look only at immagent's tables: a host app's tables in the same database are not ours."""
    if type_ == "table":
        return bool(name and name.startswith("immagent_"))
    table = getattr(obj, "table", None)
    if table is not None:
        return bool(table.name.startswith("immagent_"))
    return True


def _options() -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        "version_table": config.get_main_option("version_table") or VERSION_TABLE,
        "include_object": include_object,
        "render_as_batch": True,  # SQLite alters tables by copy
        "compare_type": True,
    }


def _url() -> str:
    return database_url(config.get_main_option("sqlalchemy.url") or None)


def run_migrations_offline() -> None:
    """Emit the SQL to standard output instead of running it (for a DBA to review)."""
    context.configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"}, **_options())
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, **_options())
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    section = config.get_section(config.config_ini_section, {})
    section["sqlalchemy.url"] = _url()
    engine = async_engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
