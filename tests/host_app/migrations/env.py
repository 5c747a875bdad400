"""The host app's Alembic env: its own tables only. immagent's tables (``immagent_*``, including its
version table) are left to immagent's migrations, so autogenerate neither drops nor recreates them."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from alembic import context
from hostapp import HostBase
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

config = context.config


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Skip immagent's tables and everything on them."""
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return not (table or "").startswith("immagent_")


def configure(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=HostBase.metadata, include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


async def main() -> None:
    engine = create_async_engine(os.environ["APP_DATABASE_URL"], poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(configure)
            await connection.commit()
    finally:
        await engine.dispose()


asyncio.run(main())
