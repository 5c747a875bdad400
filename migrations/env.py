"""Alembic environment for immagent's own tables.

Runs online on a connection handed over by immagent (``config.attributes["connection"]``), or on an async
engine built from the URL (``sqlalchemy.url``, else ``IMMAGENT_DATABASE_URL``, else the embedded SQLite
default) with NullPool, or offline (``--sql``) to print the DDL. Only immagent's tables are considered,
and the version table is ``immagent_alembic_version``, so it can share a database with a host app.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

from immagent._migrations import VERSION_TABLE, is_immagent_object
from immagent._orm import Base
from immagent._urls import database_url

config = context.config
target_metadata = Base.metadata

# Run by the `alembic` command with an ini file that sets up logging: use it (immagent's own calls pass none).
if config.config_file_name is not None and config.file_config.has_section("loggers"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _options() -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        # Always immagent's own table (the store checks it), whatever a host's ini section says.
        "version_table": VERSION_TABLE,
        "include_object": is_immagent_object,  # a host app's tables are not ours
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
