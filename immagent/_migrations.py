"""Where immagent's Alembic scripts live, and running them from Python (``Store.migrate()``, the CLI).

The scripts are the repo's top-level ``migrations/`` folder, shipped in the wheel as the package resource
``immagent:migrations``. Alembic is imported only when a migration actually runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

#: The newest revision this library needs. A test checks it equals the scripts' head.
HEAD_REVISION = "0001"
#: immagent's own Alembic version table, so it never collides with a host app's ``alembic_version``.
VERSION_TABLE = "immagent_alembic_version"
#: The resource form a host app's alembic.ini can use (installed wheels).
PACKAGE_LOCATION = "immagent:migrations"


def script_location() -> str:
    """The migrations folder: inside the installed package, else the checkout's top-level folder."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "migrations", here.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return str(candidate)
    raise FileNotFoundError("immagent's migrations folder is missing from this installation")


def alembic_config(url: str | None = None, *, connection: Connection | None = None) -> Config:
    """An Alembic Config for immagent's scripts, bound to a URL or to an open (sync) connection."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", script_location())
    config.set_main_option("version_table", VERSION_TABLE)
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_sync(connection: Connection, revision: str = "head") -> None:
    """Upgrade on an open connection (run through ``AsyncConnection.run_sync``)."""
    from alembic import command

    command.upgrade(alembic_config(connection=connection), revision)


def downgrade_sync(connection: Connection, revision: str) -> None:
    """Downgrade on an open connection (run through ``AsyncConnection.run_sync``)."""
    from alembic import command

    command.downgrade(alembic_config(connection=connection), revision)


def current_revision_sync(connection: Connection) -> str | None:
    """The database's immagent revision, or None when immagent's version table is absent or empty."""
    from sqlalchemy import inspect, text

    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows: list[Any] = list(connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")))
    return str(rows[0][0]) if rows else None
