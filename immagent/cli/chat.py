"""``immagent chat``: an interactive chat on any stored state, streaming each reply as it arrives.

Every completed turn is a new persisted state; Ctrl-C during a reply cancels that turn and writes
nothing. With ``--thread KEY`` the chat follows a thread: each turn moves it (in the turn's transaction),
and so does every other move (/undo, /back, /branch, /meta). Commands: /history, /tree, /branch [N|ID],
/back, /undo, /meta [KEY=VALUE ...], /help, /exit. When standard input is not a terminal, lines are read
from it (one message or command per line).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from immagent.cli import one_line, tenant_option, url_option
from immagent.cli._common import (
    echo_messages,
    family_lines,
    model_option,
    open_store,
    prepare_model,
    resolve_model,
    state_summary,
)

if TYPE_CHECKING:
    from immagent._mcp import MCPManager
    from immagent._store import Store
    from immagent._views import PersistentAgent, Thread

DEFAULT_SYSTEM = "You are a helpful, concise assistant."
HELP = """commands:
  /history          this state's conversation
  /tree             the family tree of states (this one marked)
  /branch           list this state's ancestors; /branch N or /branch ID continues from one
  /back             go to the parent state (your next message starts a new branch)
  /undo             the same, for a thread: move it back one turn (its log keeps every position)
  /meta             this state's details; /meta KEY=VALUE ... makes a child state with that metadata
  /help             this text
  /exit             leave (Ctrl-D too); Ctrl-C during a reply cancels that turn, saving nothing"""


@dataclass
class _Session:
    """What a chat holds between turns: the store, the optional MCP servers and the current state."""

    store: Store
    current: PersistentAgent
    mcp: MCPManager | None
    stack: AsyncExitStack
    prepared: set[str] = field(default_factory=set)
    failed: bool = False
    thread: Thread | None = None  # with --thread: the thread every move of the chat moves


_ASSISTANT = click.style("assistant> ", fg="green", bold=True)


def _dim(text: str) -> str:
    return click.style(text, dim=True)


async def _open(
    url: str | None,
    tenant: str | None,
    agent_id: str | None,
    name: str | None,
    thread_key: str | None,
    model: str | None,
    model_typed: bool,
    system: str | None,
    servers: tuple[str, ...],
) -> _Session:
    """Open the store (migrating a fresh database), find or create the state (and the thread), start MCP
    servers."""
    from immagent._errors import ThreadNotFoundError

    stack = AsyncExitStack()
    try:
        store = await stack.enter_async_context(open_store(url, create=True, tenant=tenant))
        current: PersistentAgent | None = None
        thread: Thread | None = None
        if thread_key is not None:
            try:
                thread = await store.load_thread(thread_key)
                current = await thread.head()
            except ThreadNotFoundError:
                pass  # created on first use, below
        elif agent_id is not None:
            current = await store.load_agent(agent_id)
        elif name is not None:
            found = await store.find_by_name(name)
            current = found[0] if found else None
        resumed = current is not None
        if resumed and (model_typed or system is not None):
            raise click.UsageError("--model and --system are for a new agent; a resumed state keeps its own")
        chosen = current.model if current is not None else resolve_model(model)
        mcp: MCPManager | None = None
        if servers:
            from immagent._mcp import MCPManager

            mcp = await stack.enter_async_context(MCPManager())
        # The model is checked (or the offline one installed) before anything is written.
        prepared: set[str] = set()
        await asyncio.gather(_prepare(prepared, chosen), *([_connect(mcp, servers)] if mcp else []))
        if current is None:
            current = await store.create_agent(
                name=name or thread_key or "chat", system_prompt=system or DEFAULT_SYSTEM, model=chosen
            )
        if thread_key is not None and thread is None:
            thread = await store.create_thread(thread_key, current)
        session = _Session(store, current, mcp, stack, prepared, thread=thread)
        verb = "resumed" if resumed else "new agent"
        count = len(await current.messages())
        on = f" on thread {thread.key!r} (position {thread.position})" if thread is not None else ""
        click.echo(
            f"{verb} “{current.name}” at state {current.id}{on} ({count} messages, model {current.model}); "
            "/help for commands"
        )
        return session
    except BaseException:
        await stack.aclose()
        raise


async def _connect(mcp: MCPManager, servers: tuple[str, ...]) -> None:
    for index, command in enumerate(servers, start=1):
        program, *args = shlex.split(command)
        await mcp.connect(f"server{index}", program, args)


async def _prepare(prepared: set[str], model: str) -> None:
    """Ready ``model`` once per chat (a resumed branch may use another model than the first state)."""
    if model not in prepared:
        await prepare_model(model)
        prepared.add(model)


async def _turn(session: _Session, text: str) -> None:
    """One streamed turn; the new state becomes current only once it is committed."""
    from immagent._advance import TextDelta, ToolCallFinished, ToolCallStarted, TurnComplete

    state = session.current
    await _prepare(session.prepared, state.model)
    speaking = False  # "assistant> " is printed for the text of the current reply
    at_line_start = True
    thread = session.thread
    events = (
        thread.advance_stream(text, mcp=session.mcp)
        if thread is not None
        else state.advance_stream(text, mcp=session.mcp)
    )
    async for event in _following(session, events):
        if isinstance(event, TextDelta):
            if not speaking:
                click.echo(("" if at_line_start else "\n") + _ASSISTANT, nl=False)
                speaking = True
            click.echo(event.text, nl=False)
            at_line_start = event.text.endswith("\n")
        elif isinstance(event, (ToolCallStarted, ToolCallFinished)):
            if not at_line_start:
                click.echo()
            if isinstance(event, ToolCallStarted):
                click.echo(_dim(f"  [tool] {event.call.name}({event.call.arguments})"))
            else:
                outcome = "failed:" if event.is_error else "->"
                click.echo(_dim(f"  [tool] {event.call.name} {outcome} {event.result}"))
            speaking, at_line_start = False, True
        elif isinstance(event, TurnComplete):
            session.current = event.agent
            session.thread = event.thread or session.thread
    if not at_line_start:
        click.echo()
    on = f", thread {session.thread.key} at {session.thread.position}" if session.thread else ""
    click.echo(_dim(f"[state {session.current.id}{on}]"))


async def _following(session: _Session, events: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The turn's events; when another writer moved the thread meanwhile, follow it (and re-raise)."""
    from immagent._errors import ConflictError

    try:
        async for event in events:
            yield event
    except ConflictError as exc:
        if exc.current is not None:
            session.thread, session.current = exc.current, await exc.current.head()
        raise


async def _command(session: _Session, line: str) -> bool:
    """Run one /command; False when the chat should end."""
    word, _, rest = line.partition(" ")
    rest = rest.strip()
    current = session.current
    if word in ("/exit", "/quit"):
        return False
    if word == "/help":
        click.echo(HELP)
    elif word == "/history":
        echo_messages(await current.messages())
    elif word == "/tree":
        root = (await current.lineage())[0]
        for text in await family_lines(root, current=current.id):
            click.echo(text)
    elif word in ("/back", "/undo"):
        if word == "/undo" and session.thread is None:
            click.echo("/undo moves a thread: start the chat with --thread KEY (or use /back)")
        elif current.parent_id is None:
            click.echo("already at the first state of this lineage")
        else:
            await _move(session, await session.store.load_agent(current.parent_id))
    elif word == "/branch":
        lineage = await current.lineage()
        if not rest:
            for number, state in enumerate(lineage):
                mark = "   ◀ current" if state.id == current.id else ""
                summary = state_summary(state, await state.messages())
                click.echo(f"  {number:>3}  {state.id}  {summary}{mark}")
            click.echo("continue from one with /branch N (or /branch ID)")
        elif rest.isdigit():
            number = int(rest)
            if number >= len(lineage):
                click.echo(f"no state number {number}: /branch lists 0 to {len(lineage) - 1}")
            else:
                await _move(session, lineage[number])
        else:
            await _move(session, await session.store.load_agent(rest))
    elif word == "/meta":
        if rest:
            metadata = {**current.metadata, **_pairs(rest)}
            child = await current.with_metadata(metadata)
            await _move(session, child, quiet=True)
            click.echo(f"new state {child.id} with metadata {json.dumps(metadata, sort_keys=True)}")
        else:
            await _describe(current)
    else:
        click.echo(f"unknown command {word}; /help lists them")
    return True


def _pairs(text: str) -> dict[str, Any]:
    """``KEY=VALUE`` words; a VALUE that is JSON (numbers, true, lists...) is taken as such."""
    out: dict[str, Any] = {}
    for word in shlex.split(text):
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {word!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


async def _move(session: _Session, state: PersistentAgent, *, quiet: bool = False) -> None:
    """Make ``state`` current (and move the thread to it, when the chat follows one)."""
    if session.thread is not None:
        from immagent._errors import ConflictError

        try:
            session.thread = await session.thread.move(state)
        except ConflictError as exc:
            if exc.current is not None:
                session.thread, session.current = exc.current, await exc.current.head()
            raise
    session.current = state
    if quiet:
        return
    count = len(await state.messages())
    on = (
        f"; thread {session.thread.key} moved to position {session.thread.position}" if session.thread else ""
    )
    click.echo(
        f"now at state {state.id} ({count} messages){on}; your next message grows a new branch from it"
    )


async def _describe(state: PersistentAgent) -> None:
    tokens_in, tokens_out = await state.token_usage()
    click.echo(f"state     {state.id}")
    click.echo(f"parent    {state.parent_id or '-'}")
    click.echo(f"name      {state.name}")
    click.echo(f"model     {state.model}")
    click.echo(f"created   {state.created_at.isoformat()}")
    click.echo(f"messages  {len(await state.messages())}")
    click.echo(f"tokens    in {tokens_in}, out {tokens_out}")
    click.echo(f"metadata  {json.dumps(state.metadata, ensure_ascii=False, sort_keys=True)}")


def _read_line(interactive: bool) -> str | None:
    """The next line typed (or piped); None at end of input."""
    if interactive:
        try:
            return input("you> ")
        except EOFError:
            return None
    line = sys.stdin.readline()
    return line.rstrip("\r\n") if line else None


@click.command()
@click.option("--agent", "agent_id", metavar="ID", default=None, help="Resume this state (any state).")
@click.option(
    "--name", default=None, help="Resume the newest state named NAME, or start a new agent so named."
)
@click.option(
    "--thread",
    "thread_key",
    metavar="KEY",
    default=None,
    help="Follow thread KEY: resume where it points and move it with every turn (created on first use).",
)
@model_option
@click.option("--system", default=None, help="System prompt of a new agent.")
@click.option(
    "--mcp",
    "servers",
    multiple=True,
    metavar="COMMAND",
    help="An MCP server to start for tools, e.g. 'python -m immagent.examples.weather_server' (repeatable).",
)
@tenant_option
@url_option
@click.pass_context
def chat(
    ctx: click.Context,
    agent_id: str | None,
    name: str | None,
    thread_key: str | None,
    model: str | None,
    system: str | None,
    servers: tuple[str, ...],
    tenant: str | None,
    url: str | None,
) -> None:
    """Chat with an agent, resuming any state; replies stream as they arrive.

    Every turn is saved as it completes (a new state); Ctrl-C during a reply cancels that turn and saves
    nothing. Type /help in the chat for its commands. Exit code 1 when a turn failed.
    """
    if sum(x is not None for x in (agent_id, name, thread_key)) > 1:
        raise click.UsageError("pass one of --agent, --name or --thread")
    model_typed = ctx.get_parameter_source("model") is click.core.ParameterSource.COMMANDLINE
    interactive = sys.stdin.isatty()
    if interactive:
        import readline  # noqa: F401 - line editing and history for input()

    with asyncio.Runner() as runner:
        session = runner.run(
            _open(url, tenant, agent_id, name, thread_key, model, model_typed, system, servers)
        )
        try:
            _loop(runner, session, interactive)
        finally:
            runner.run(session.stack.aclose())
    click.echo(f"last state: {session.current.id}")
    if session.thread is not None:
        click.echo(f"continue with: immagent chat --thread {session.thread.key}")
    else:
        click.echo(f"continue with: immagent chat --agent {session.current.id}")
    if session.failed:
        ctx.exit(1)


def _loop(runner: asyncio.Runner, session: _Session, interactive: bool) -> None:
    while True:
        try:
            line = _read_line(interactive)
        except KeyboardInterrupt:
            click.echo()
            return
        if line is None:
            return
        text = line.strip()
        if not text:
            continue
        try:
            if text.startswith("/"):
                if not runner.run(_command(session, text)):
                    return
            else:
                runner.run(_turn(session, text))
        except KeyboardInterrupt:
            click.echo()
            click.echo("[cancelled: this turn was not saved]", err=True)
        except (click.ClickException, Exception) as exc:  # one line per failure; the chat goes on
            if not text.startswith("/"):
                session.failed = True
                click.echo()  # end the partly streamed reply's line
            message = exc.format_message() if isinstance(exc, click.ClickException) else one_line(exc)
            click.echo(f"error: {message}", err=True)
