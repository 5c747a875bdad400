"""``immagent threads`` (list threads, or one thread's log) and ``immagent erase`` (forget a tenant or
one conversation tree, physically, after a confirmation)."""

from __future__ import annotations

import asyncio
import json

import click

from immagent.cli import tenant_option, url_option
from immagent.cli._common import open_store


@click.command()
@click.argument("key", required=False)
@click.option("--search", default=None, help="Only threads whose key contains SEARCH (case-insensitive).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=0), help="How many to list.")
@click.option("--after", default=None, metavar="CURSOR", help="The page after CURSOR (printed under a page).")
@tenant_option
@url_option
def threads(
    key: str | None, search: str | None, limit: int, after: str | None, tenant: str | None, url: str | None
) -> None:
    """List threads, newest first; with KEY, show that thread and every move of its log."""

    async def run() -> None:
        async with open_store(url, tenant=tenant) as store:
            if key is not None:
                thread = await store.load_thread(key)
                moves = await thread.log()
                click.echo(f"thread    {thread.key}")
                click.echo(f"tenant    {thread.tenant}")
                click.echo(f"head      {thread.agent_id} (position {thread.position})")
                click.echo(f"created   {thread.created_at.isoformat()}")
                click.echo(f"metadata  {json.dumps(thread.metadata, ensure_ascii=False, sort_keys=True)}")
                click.echo(f"{'POS':>5}  {'MOVED (UTC)':19}  {'KIND':8}  STATE")
                for move in moves:
                    moved = move.created_at.strftime("%Y-%m-%d %H:%M:%S")
                    click.echo(f"{move.position:>5}  {moved}  {move.kind:8}  {move.agent_id}")
                return
            page = await store.list_threads(limit=limit, after=after, key=search)
            if not page:
                click.echo("no threads" + (f" matching {search!r}" if search is not None else ""))
                return
            click.echo(f"{'KEY':30}  {'POS':>4}  {'MOVED (UTC)':19}  HEAD STATE")
            for thread in page:
                moved = thread.moved_at.strftime("%Y-%m-%d %H:%M:%S")
                click.echo(f"{thread.key:30}  {thread.position:>4}  {moved}  {thread.agent_id}")
            if page.next_cursor:
                click.echo(f"next page: immagent threads --limit {limit} --after {page.next_cursor}")

    asyncio.run(run())


@click.command()
@click.option("--tenant", "tenant", default=None, help="Erase every row of this tenant.")
@click.option("--tree", "tree", default=None, metavar="ID", help="Erase the conversation tree of state ID.")
@click.option("--in-tenant", "scope", default=None, help="The tenant --tree looks in (default: default).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@url_option
def erase(tenant: str | None, tree: str | None, scope: str | None, yes: bool, url: str | None) -> None:
    """Physically delete a tenant's data (--tenant T) or one conversation tree (--tree ID): states,
    messages, the threads that pointed at them and prompts nothing else uses. It cannot be undone."""
    if (tenant is None) == (tree is None):
        raise click.UsageError("pass exactly one of --tenant or --tree")
    what = f"every state, message and thread of tenant {tenant!r}" if tenant else f"the tree of state {tree}"
    if not yes:
        click.confirm(f"Erase {what}? This cannot be undone", abort=True)

    async def run() -> dict[str, int]:
        async with open_store(url, tenant=scope) as store:
            if tenant is not None:
                return await store.erase_tenant(tenant)
            assert tree is not None
            from immagent._errors import AgentNotFoundError

            try:  # any remaining state of the tree; else the id is taken as the tree's root_id
                return await store.erase_tree(await store.load_agent(tree))
            except AgentNotFoundError:
                return await store.erase_tree(tree)

    counts = asyncio.run(run())
    click.echo("erased: " + ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in counts.items()))
