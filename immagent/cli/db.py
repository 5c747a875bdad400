"""``immagent db``: run and inspect immagent's migrations (the scripts shipped inside the package).

    immagent db upgrade [REV] [--sql]     to REV (default head); --sql prints the DDL, touching nothing
    immagent db downgrade REV [--sql]     e.g. base; --sql prints the DDL (from head, or FROM:TO)
    immagent db current                   the database's revision
    immagent db history                   the scripts, newest first (--url marks the database's)
    immagent db check                     models vs database (Alembic autogenerate); exit 1 on drift
    immagent db distribute                on a Citus coordinator: distribute the tables (idempotent)

Every command takes ``--url`` (else $IMMAGENT_DATABASE_URL, else the embedded SQLite default).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import click

from immagent.cli import url_option

if TYPE_CHECKING:
    from immagent._store import Store

_T = TypeVar("_T")


def _with_store(url: str | None, work: Callable[[Store], Awaitable[_T]]) -> _T:
    """Open a store on ``url`` (one pooled connection), run ``work``, close it."""
    from immagent._store import Store

    async def run() -> _T:
        async with await Store.connect(url, min_size=1, max_size=1) as store:
            return await work(store)

    return asyncio.run(run())


@click.group()
def db() -> None:
    """Run and inspect immagent's database migrations."""


@db.command()
@click.argument("revision", default="head")
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it (no database is touched).")
@url_option
def upgrade(revision: str, sql: bool, url: str | None) -> None:
    """Upgrade immagent's tables to REVISION (default: head)."""
    from immagent._migrations import offline_sql

    if sql:
        offline_sql(url, "upgrade", revision)
        return

    async def work(store: Store) -> str | None:
        await store.migrate(revision)
        return await store.schema_revision()

    click.echo(f"immagent schema at revision {_shown(_with_store(url, work))}")


@db.command()
@click.argument("revision")
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it (no database is touched).")
@url_option
def downgrade(revision: str, sql: bool, url: str | None) -> None:
    """Downgrade immagent's tables to REVISION (``base`` removes them, and every agent with them)."""
    from immagent._migrations import offline_sql

    if sql:
        offline_sql(url, "downgrade", revision)
        return

    async def work(store: Store) -> str | None:
        await store._downgrade(revision)
        return await store.schema_revision()

    click.echo(f"immagent schema at revision {_shown(_with_store(url, work))}")


@db.command()
@url_option
def current(url: str | None) -> None:
    """Print the database's immagent revision, and whether it is this library's head."""

    async def work(store: Store) -> str | None:
        return await store.schema_revision()

    click.echo(_shown(_with_store(url, work)))


@db.command()
@click.option(
    "--url",
    default=None,
    help="Also mark the revision of this database (without it, no database is opened).",
)
def history(url: str | None) -> None:
    """List immagent's migration scripts, newest first."""
    from immagent._migrations import HEAD_REVISION
    from immagent._migrations import history as scripts

    found: str | None = None
    if url is not None:

        async def work(store: Store) -> str | None:
            return await store.schema_revision()

        found = _with_store(url, work)
    for revision, down, title in scripts():
        marks = [m for m, on in (("head", revision == HEAD_REVISION), ("current", revision == found)) if on]
        shown = f"{down or '<base>'} -> {revision}" + (f" ({', '.join(marks)})" if marks else "")
        click.echo(f"{shown}: {title}")


@db.command()
@url_option
def check(url: str | None) -> None:
    """Compare immagent's models with the database; exit 1 when they differ or it is not at head."""
    from immagent._migrations import HEAD_REVISION, drift_sync

    async def work(store: Store) -> tuple[str | None, list[object]]:
        found = await store.schema_revision()
        if found != HEAD_REVISION:
            return found, []
        async with store.engine.connect() as conn:
            return found, await conn.run_sync(drift_sync)

    found, drift = _with_store(url, work)
    if found != HEAD_REVISION:
        from immagent._store._database import schema_error as _schema_error

        raise _schema_error(found)
    if drift:
        click.echo(f"the database differs from immagent's models at revision {found}:", err=True)
        for difference in drift:
            click.echo(f"  {difference}", err=True)
        raise SystemExit(1)
    click.echo(f"immagent schema at revision {found} (head) matches the models")


@db.command()
@url_option
def distribute(url: str | None) -> None:
    """On a Citus coordinator: make immagent's tables distributed (by conversation tree, threads by
    tenant, colocated) and texts a reference table; a second run changes nothing."""

    async def work(store: Store) -> tuple[str, ...]:
        return await store.distribute()

    steps = _with_store(url, work)
    if not steps:
        click.echo("immagent's tables are already distributed; nothing to do")
        return
    for step in steps:
        click.echo(step)
    click.echo("immagent's tables are distributed")


def _shown(revision: str | None) -> str:
    """A revision as the commands print it: ``0001 (head)``, ``none``."""
    from immagent._migrations import HEAD_REVISION

    if revision is None:
        return "none (no immagent schema)"
    return f"{revision} (head)" if revision == HEAD_REVISION else revision
