"""Browsing and housekeeping: ``immagent agents``, ``show ID``, ``tree ID`` and ``gc``.

All of them only read (``gc`` only deletes what no state reaches); none creates a database.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import click

from immagent.cli import tenant_option, url_option
from immagent.cli._common import echo_messages, family_lines, one_line_text, open_store, thread_marks


@click.command()
@click.option("--name", default=None, help="Only states whose name contains NAME (case-insensitive).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=0), help="How many to list.")
@click.option("--after", default=None, metavar="CURSOR", help="The page after CURSOR (printed under a page).")
@click.option("--offset", default=0, type=click.IntRange(min=0), help="Skip this many (slow on big tables).")
@click.option("--count", "count_only", is_flag=True, help="Print only how many states match.")
@tenant_option
@url_option
def agents(
    name: str | None,
    limit: int,
    after: str | None,
    offset: int,
    count_only: bool,
    tenant: str | None,
    url: str | None,
) -> None:
    """List agent states, newest first (each advance, clone or metadata change is one state)."""

    async def run() -> None:
        async with open_store(url, tenant=tenant) as store:
            total = await store.count_agents(name=name)
            if count_only:
                click.echo(str(total))
                return
            states = await store.list_agents(limit=limit, offset=offset, name=name, after=after)
            if not states:
                click.echo("no agent states" + (f" matching {name!r}" if name is not None else ""))
                return
            click.echo(f"{'ID':36}  {'CREATED (UTC)':19}  {'NAME':20}  {'MODEL':24}  PARENT")
            for s in states:
                created = s.created_at.strftime("%Y-%m-%d %H:%M:%S")
                parent = str(s.parent_id) if s.parent_id else "-"
                shown_name, model = one_line_text(s.name, 20), one_line_text(s.model, 24)
                click.echo(f"{s.id}  {created}  {shown_name:20}  {model:24}  {parent}")
            shown = f"{len(states)}" if after else f"{offset + 1}-{offset + len(states)}"
            click.echo(f"{shown} of {total} state{'s' if total != 1 else ''}")
            if states.next_cursor and not offset:
                click.echo(f"next page: immagent agents --limit {limit} --after {states.next_cursor}")

    asyncio.run(run())


@click.command()
@click.argument("agent_id", metavar="ID")
@tenant_option
@url_option
def show(agent_id: str, tenant: str | None, url: str | None) -> None:
    """Show one state: its fields, system prompt, the threads at it, and every message (tool calls and
    token usage too)."""

    async def run() -> None:
        async with open_store(url, tenant=tenant) as store:
            agent = await store.load_agent(agent_id)
            messages = await agent.messages()
            prompt = await agent.system_prompt()
            tokens_in, tokens_out = await agent.token_usage()
            threads = (await store.threads_pointing_at([agent])).get(agent.id, ())
        click.echo(f"state     {agent.id}")
        click.echo(f"tenant    {agent.tenant}")
        click.echo(f"name      {agent.name}")
        click.echo(f"model     {agent.model}")
        click.echo(f"created   {agent.created_at.isoformat()}")
        click.echo(f"parent    {agent.parent_id or '-'}")
        click.echo(f"root      {agent.root_id}")
        click.echo(f"metadata  {json.dumps(agent.metadata, ensure_ascii=False, sort_keys=True)}")
        if agent.model_settings:
            settings = json.dumps(agent.model_settings, ensure_ascii=False, sort_keys=True)
            click.echo(f"settings  {settings}")
        click.echo(f"tokens    in {tokens_in}, out {tokens_out} (whole history)")
        if threads:
            click.echo(f"threads   {thread_marks(threads)}")
        click.echo(f"system    {one_line_text(prompt, 100)}")
        click.echo(f"messages  {len(messages)}")
        echo_messages(messages)

    asyncio.run(run())


@click.command()
@click.argument("agent_id", metavar="ID")
@click.option("--all", "whole", is_flag=True, help="Draw the whole family from the root, every branch.")
@tenant_option
@url_option
def tree(agent_id: str, whole: bool, tenant: str | None, url: str | None) -> None:
    """Draw a state's ancestors and every branch that grew from it (the state is marked, and so are the
    states that threads point at)."""

    async def run() -> list[str]:
        async with open_store(url, tenant=tenant) as store:
            agent = await store.load_agent(agent_id)
            lineage = await agent.lineage()
            if whole:
                return await family_lines(lineage[0], current=agent.id, store=store)
            return await family_lines(agent, current=agent.id, ancestors=lineage[:-1], store=store)

    for line in asyncio.run(run()):
        click.echo(line)


@click.command()
@tenant_option
@url_option
def gc(tenant: str | None, url: str | None) -> None:
    """Delete messages and system prompts that no remaining state reaches (never anything reachable).

    Prints the table sizes before and after (of one tenant with --tenant); a running timer shows
    progress on a terminal."""

    async def run() -> None:
        async with open_store(url, tenant=tenant) as store:
            before = await store.stats()
            click.echo("before: " + _sizes(before))
            work = asyncio.ensure_future(store.gc())
            started = time.monotonic()
            live = sys.stderr.isatty()
            while not work.done():
                await asyncio.wait({work}, timeout=0.5)
                if live and not work.done():
                    click.echo(f"\rcollecting… {time.monotonic() - started:.0f}s", err=True, nl=False)
            if live:
                click.echo("\r" + " " * 30 + "\r", err=True, nl=False)
            removed = work.result()
            after = await store.stats()
        click.echo(f"removed: {removed['messages']} messages, {removed['texts']} texts")
        click.echo("after:  " + _sizes(after))

    asyncio.run(run())


def _sizes(stats: dict[str, int]) -> str:
    return (
        f"{stats['agents']} states, {stats['messages']} messages, {stats['threads']} threads, "
        f"{stats['texts']} texts"
    )
