"""Helpers for the migration tests: what a database holds (schema and rows), and running the CLI.

`schema()` and `rows()` run on a sync connection (``await conn.run_sync(schema)``) and return plain,
comparable values, so a test can assert an exact schema or that an upgrade kept every row.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, inspect, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

REPO = Path(__file__).resolve().parents[2]


def schema(conn: Connection, prefix: str = "") -> dict[str, Any]:
    """Tables (columns with type and nullability, primary key, foreign keys, indexes; on MySQL/MariaDB the
    engine and default collation too), triggers and, on PostgreSQL, functions; only names starting with
    ``prefix``."""
    inspector = inspect(conn)
    tables: dict[str, Any] = {}
    for table in sorted(t for t in inspector.get_table_names() if t.startswith(prefix)):
        pk = inspector.get_pk_constraint(table)
        tables[table] = {
            "columns": {c["name"]: (_type(c["type"]), c["nullable"]) for c in inspector.get_columns(table)},
            "primary_key": (pk["name"], tuple(pk["constrained_columns"])),
            "foreign_keys": sorted(
                (
                    fk["name"],
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                )
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                for ix in inspector.get_indexes(table)
            ),
        }
    if conn.dialect.name == "sqlite":
        triggers = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars()
        functions: list[str] = []
    elif conn.dialect.name in ("mysql", "mariadb"):
        triggers = conn.execute(
            text("SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE()")
        ).scalars()
        functions = []
        for table, options in _mysql_tables(conn, prefix).items():
            tables[table]["options"] = options
    else:
        triggers = conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).scalars()
        functions = list(
            conn.execute(
                text(
                    "SELECT proname FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace "
                    "WHERE nspname = 'public'"
                )
            ).scalars()
        )
    return {
        "tables": tables,
        "triggers": sorted(t for t in triggers if t.startswith(prefix)),
        "functions": sorted(f for f in functions if f.startswith(prefix)),
    }


def _mysql_tables(conn: Connection, prefix: str) -> dict[str, tuple[str, str]]:
    """MySQL/MariaDB: each table's engine and default collation (which decides how its text compares)."""
    found = conn.execute(
        text(
            "SELECT table_name, engine, table_collation FROM information_schema.tables "
            "WHERE table_schema = DATABASE()"
        )
    )
    return {name: (engine, collation) for name, engine, collation in found if name.startswith(prefix)}


def _type(type_: Any) -> str:
    name = str(type_)
    if getattr(type_, "fsp", None):  # MySQL's fractional seconds: DATETIME(6)
        name += f"({type_.fsp})"
    if getattr(type_, "timezone", False):
        name += " WITH TIME ZONE"
    return name


def rows(conn: Connection, prefix: str = "immagent_") -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table whose name starts with ``prefix``, sorted, as plain tuples."""
    metadata = MetaData()
    names = [t for t in inspect(conn).get_table_names() if t.startswith(prefix)]
    metadata.reflect(conn, only=names)
    return {
        name: sorted((tuple(r) for r in conn.execute(select(metadata.tables[name]))), key=repr)
        for name in sorted(names)
    }


async def read(url: str, work: Any) -> Any:
    """Run ``work(sync_connection)`` on a throwaway engine (nothing of the code under test is reused)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(work)
    finally:
        await engine.dispose()


async def execute(url: str, *statements: str) -> None:
    """Run SQL statements in one committed transaction on a throwaway engine."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a subprocess: this one without a stray database URL, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "IMMAGENT_DATABASE_URL"}
    env.update(extra or {})
    return env


async def run(
    *argv: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion in a worker thread (the event loop stays free); output as text."""
    return await asyncio.to_thread(
        subprocess.run,
        list(argv),
        cwd=cwd,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


async def immagent_cli(*args: str, env: Mapping[str, str] | None = None) -> CliResult:
    """Run the ``immagent`` command in this process (click's runner, in a worker thread so the command's
    own ``asyncio.run`` has no running loop): the same code as the console script, without a new
    interpreter per call."""
    from click.testing import CliRunner

    from immagent.cli import main

    result = await asyncio.to_thread(
        CliRunner().invoke, main, list(args), env=dict(env or {}), prog_name="immagent"
    )
    return CliResult(result.exit_code, result.stdout, result.stderr)
