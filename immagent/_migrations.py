"""Where immagent's Alembic scripts live, and running them from Python (``Store.migrate()``, the CLI).

The scripts are the repo's top-level ``migrations/`` folder, shipped in the wheel as the package resource
``immagent:migrations``. Alembic is imported only when a migration actually runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

#: The newest revision this library needs. A test checks it equals the scripts' head.
HEAD_REVISION = "0004"
#: immagent's own Alembic version table, so it never collides with a host app's ``alembic_version``.
VERSION_TABLE = "immagent_alembic_version"
#: The resource form a host app's alembic.ini can use (installed wheels).
PACKAGE_LOCATION = "immagent:migrations"
#: Every immagent table (and the version table) starts with this.
TABLE_PREFIX = "immagent_"


#: The binary, NO PAD collation immagent's MySQL-family tables compare text with (exact, trailing
#: spaces included); the two servers name it differently.
MYSQL_EXACT_COLLATION = {"mariadb": "utf8mb4_nopad_bin", "mysql": "utf8mb4_0900_bin"}


def mysql_table_options(dialect: Any) -> dict[str, str]:
    """``create_table`` keyword arguments for an immagent table on MySQL/MariaDB (none elsewhere): InnoDB,
    utf8mb4, and the exact collation as the table's default, so every text column (and every column added
    later) compares byte for byte. The migration scripts call it: changing it changes what they create."""
    if dialect.name not in ("mysql", "mariadb"):
        return {}
    exact = MYSQL_EXACT_COLLATION["mariadb" if getattr(dialect, "is_mariadb", False) else "mysql"]
    # SQLAlchemy reads the options under the dialect's own name: mysql_* for mysql://, mariadb_* for mariadb://.
    prefix = dialect.name
    return {f"{prefix}_engine": "InnoDB", f"{prefix}_charset": "utf8mb4", f"{prefix}_collate": exact}


def update_guard_sql(dialect: str, table: str, *, create: bool) -> str | None:
    """The statement that creates (or drops) ``table``'s UPDATE-refusing trigger on this backend, so the
    database itself refuses UPDATE (PostgreSQL reuses 0001's ``immagent_refuse_update()``); the
    migration scripts call it after every table they create or rebuild."""
    name = f"{table}_no_update"
    refused = f"immagent rows are immutable: UPDATE on {table} is refused"
    if dialect == "postgresql":
        if not create:
            return f"DROP TRIGGER IF EXISTS {name} ON {table}"
        return (
            f"CREATE TRIGGER {name} BEFORE UPDATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION immagent_refuse_update()"
        )
    if dialect not in ("sqlite", "mysql", "mariadb"):
        return None
    if not create:
        return f"DROP TRIGGER IF EXISTS {name}"
    if dialect == "sqlite":
        return f"CREATE TRIGGER {name} BEFORE UPDATE ON {table} BEGIN SELECT RAISE(ABORT, '{refused}'); END"
    return (
        f"CREATE TRIGGER {name} BEFORE UPDATE ON {table} FOR EACH ROW SIGNAL SQLSTATE '45000' "
        f"SET MESSAGE_TEXT = '{refused}'"
    )


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

    with _quiet_mysql_notes():
        command.upgrade(alembic_config(connection=connection), revision)


def downgrade_sync(connection: Connection, revision: str) -> None:
    """Downgrade on an open connection (run through ``AsyncConnection.run_sync``)."""
    from alembic import command

    with _quiet_mysql_notes():
        command.downgrade(alembic_config(connection=connection), revision)


@contextmanager
def _quiet_mysql_notes() -> Iterator[None]:
    """While DDL runs: MySQL notes that it ignores a primary key's name, and the asyncmy driver logs every
    note as a warning; nothing is wrong, so keep them out of the output (errors still show)."""
    driver_log = logging.getLogger("asyncmy")
    level = driver_log.level
    driver_log.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        driver_log.setLevel(level)


def offline_sql(url: str | None, direction: str, revision: str) -> None:
    """Print the SQL of an upgrade or downgrade to standard output without connecting (``--sql``).

    A downgrade needs a starting point offline; ``REV`` alone means from this library's head."""
    from alembic import command

    config = alembic_config(url)
    if direction == "upgrade":
        command.upgrade(config, revision, sql=True)
    else:
        command.downgrade(config, revision if ":" in revision else f"{HEAD_REVISION}:{revision}", sql=True)


def is_immagent_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic ``include_object`` filter: only immagent's tables (and their indexes and constraints).

    A host app's Alembic env wants the opposite (``not is_immagent_object(...)``), so that its
    autogenerate neither creates nor drops immagent's tables."""
    if type_ == "table":
        return bool(name and name.startswith(TABLE_PREFIX))
    table = getattr(obj, "table", None)
    if table is not None:
        return bool(table.name.startswith(TABLE_PREFIX))
    return True


def drift_sync(connection: Connection) -> list[Any]:
    """Differences between immagent's models and the database's immagent tables (Alembic autogenerate's
    comparison, plus on MySQL/MariaDB what it does not compare); an empty list when they agree. On
    Citus, once distributed, the thread log's key to its state is missing by design (see _citus)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from immagent._orm import Base

    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "version_table": VERSION_TABLE, "include_object": is_immagent_object},
    )
    found = list(compare_metadata(context, Base.metadata))
    if connection.dialect.name == "postgresql":
        from immagent._store._citus import CROSS_SHARD_KEY, distributed_sync

        if distributed_sync(connection):  # the one key Citus cannot hold is dropped on purpose
            found = [d for d in found if not (d[0] == "add_fk" and d[1].name == CROSS_SHARD_KEY)]
    if connection.dialect.name in ("mysql", "mariadb"):
        found.extend(_mysql_drift(connection))
    return found


def _mysql_drift(connection: Connection) -> list[tuple[Any, ...]]:
    """What Alembic leaves out on MySQL/MariaDB but immagent relies on: every table and text column in the
    exact collation (the server's default ignores case and trailing spaces), and DATETIME(6) timestamps
    (plain DATETIME drops microseconds)."""
    from sqlalchemy import text

    exact = MYSQL_EXACT_COLLATION["mariadb" if getattr(connection.dialect, "is_mariadb", False) else "mysql"]
    drift: list[tuple[Any, ...]] = []
    tables = connection.execute(
        text(
            "SELECT table_name, table_collation FROM information_schema.tables "
            "WHERE table_schema = DATABASE()"
        )
    )
    for table, collation in tables:
        if table.startswith(TABLE_PREFIX) and table != VERSION_TABLE and collation != exact:
            drift.append(("table_collation", table, collation, exact))
    columns = connection.execute(
        text(
            "SELECT table_name, column_name, data_type, collation_name, datetime_precision "
            "FROM information_schema.columns WHERE table_schema = DATABASE() ORDER BY table_name, column_name"
        )
    )
    for table, column, data_type, collation, precision in columns:
        if not table.startswith(TABLE_PREFIX) or table == VERSION_TABLE:
            continue
        if data_type in ("char", "varchar") and collation != exact:
            drift.append(("column_collation", table, column, collation, exact))
        if data_type == "datetime" and precision != 6:
            drift.append(("datetime_precision", table, column, precision, 6))
    return drift


def is_known_revision(revision: str) -> bool:
    """True when ``revision`` is one of this library's scripts (False: a newer immagent wrote it)."""
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except (CommandError, RevisionError):
        return False


def history() -> list[tuple[str, str | None, str]]:
    """(revision, down_revision, first line of its docstring) for every script, newest first."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    return [
        (
            str(script.revision),
            None if script.down_revision is None else str(script.down_revision),
            (script.doc or "").strip().splitlines()[0] if script.doc else "",
        )
        for script in scripts.walk_revisions()
    ]


def current_revision_sync(connection: Connection) -> str | None:
    """The database's immagent revision, or None when immagent's version table is absent or empty."""
    from sqlalchemy import inspect, text

    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows: list[Any] = list(connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")))
    return str(rows[0][0]) if rows else None
