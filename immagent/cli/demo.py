"""``immagent demo``: a tour of immutable agent states in a few seconds, offline by default.

It creates an agent and a thread on it, advances the thread twice, runs one tool turn through the
example MCP weather server (shipped in the package), clones a state and advances both branches
differently, moves the thread to the other branch and back (its log keeps every position), then prints
each branch's conversation, the family tree and the thread's log, and how to continue in ``immagent chat``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING

import click

from immagent.cli import url_option
from immagent.cli._common import (
    echo_messages,
    family_lines,
    model_option,
    open_store,
    prepare_model,
    resolve_model,
    together,
)

if TYPE_CHECKING:
    from immagent._mcp import MCPManager
    from immagent._store import Store
    from immagent._views import PersistentAgent, Thread

SYSTEM_PROMPT = (
    "You are a concise travel assistant. When asked about current weather, call the get_weather tool "
    "and answer from its result."
)
TURNS = ("Hi! I'm planning a trip to Paris next week.", "What should I pack?")
TOOL_TURN = "What's the weather in Paris right now?"
BRANCH_A = "Plan a rainy day for me: museums?"
BRANCH_B = "Where should we eat tonight?"


def _step(text: str) -> None:
    click.echo(click.style("==> ", fg="cyan", bold=True) + text)


async def _connect_weather(mcp: MCPManager) -> None:
    await mcp.connect("weather", sys.executable, ["-m", "immagent.examples.weather_server"])


async def _tour(store: Store, mcp: MCPManager, model: str) -> tuple[PersistentAgent, PersistentAgent, Thread]:
    agent = await store.create_agent(name="demo", system_prompt=SYSTEM_PROMPT, model=model)
    _step(f"created agent {agent.id} (model {model}, no messages yet)")
    thread = await store.create_thread(f"demo-trip-{agent.id.hex[-8:]}", agent)
    _step(f"created thread {thread.key!r} pointing at it (position 0 of the thread's log)")
    for text in TURNS:
        parent = agent
        thread = await thread.advance(text)  # the turn and the thread's move: one transaction
        agent = await thread.head()
        _step(f"advanced {parent.id} -> {agent.id}: {await agent.last_response()}")
    parent = agent
    thread = await thread.advance(TOOL_TURN, mcp=mcp)
    agent = await thread.head()
    calls = [c for m in (await agent.messages())[len(await parent.messages()) :] for c in m.tool_calls or ()]
    used = ", ".join(f"{c.name}({c.arguments})" for c in calls) or "no tool"
    _step(f"tool turn {parent.id} -> {agent.id} used {used}: {await agent.last_response()}")
    twin = await agent.clone()
    _step(f"cloned {agent.id} -> {twin.id} (same parent, same history, no message copied)")
    thread, branch_b = await together(thread.advance(BRANCH_A), twin.advance(BRANCH_B))
    branch_a = await thread.head()
    _step(f"branch A {agent.id} -> {branch_a.id} (the thread moved with it)")
    _step(f"branch B {twin.id} -> {branch_b.id}")
    thread = await thread.move(branch_b)
    _step(f"moved thread {thread.key!r} to branch B (position {thread.position})")
    thread = await thread.move(branch_a)
    _step(f"moved it back to branch A (position {thread.position}); no row was rewritten")
    return branch_a, branch_b, thread


@click.command()
@model_option
@url_option
@click.pass_context
def demo(ctx: click.Context, model: str | None, url: str | None) -> None:
    """Create, advance, use a tool, branch, and show the family tree of states.

    Runs offline with the scripted model unless --model (or $IMMAGENT_MODEL) names a real one. The
    database is migrated first, so it works on a fresh machine (default: ./immagent.db).
    """
    chosen = resolve_model(model)
    typed_url = ctx.get_parameter_source("url") is click.core.ParameterSource.COMMANDLINE
    started = time.monotonic()

    async def run() -> None:
        from immagent._mcp import MCPManager

        async with open_store(url, create=True, migrate=False) as store, MCPManager() as mcp:
            # LiteLLM's first import, the migration and the MCP server's start overlap.
            await asyncio.gather(prepare_model(chosen), store.migrate(), _connect_weather(mcp))
            a, b, thread = await _tour(store, mcp, chosen)
            for title, state in (("Branch A", a), ("Branch B", b)):
                click.echo()
                click.echo(click.style(f"{title}: conversation of {state.id}", bold=True))
                echo_messages(await state.messages())
            root = (await a.lineage())[0]
            click.echo()
            click.echo(click.style("Family tree of states (each line is one immutable state):", bold=True))
            for line in await family_lines(root, store=store):
                click.echo("  " + line)
            click.echo()
            click.echo(
                click.style(f"Log of thread {thread.key!r} (every position stays readable):", bold=True)
            )
            for move in await thread.log():
                click.echo(f"  {move.position}  {move.kind:8} -> {move.agent_id}")
            click.echo()
            click.echo(f"Branch A: {a.id}")
            click.echo(f"Branch B: {b.id}")
            click.echo(f"Thread: {thread.key}")
            click.echo(f"Done in {time.monotonic() - started:.1f}s.")
            on = f" --url {url}" if typed_url else ""
            click.echo(
                "Continue the thread with the command below "
                '(add --mcp "python -m immagent.examples.weather_server" for the weather tools):'
            )
            click.echo(f"  immagent chat --thread {thread.key}{on}")
            click.echo(f"See it all in a browser (pip install 'immagent[ui]'):\n  immagent ui{on} --open")

    asyncio.run(run())
