"""What the CLI commands share: opening the store, choosing and preparing the model, and drawing
messages and families of states as text. Heavy imports (the store, LiteLLM) happen inside functions so
``immagent --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import IO, TYPE_CHECKING, Any
from uuid import UUID

import click

if TYPE_CHECKING:
    from immagent._messages import Message
    from immagent._store import Store
    from immagent._views import PersistentAgent, Thread

#: Environment variable naming the model for ``demo`` and new ``chat`` agents.
MODEL_ENV = "IMMAGENT_MODEL"


class CLIError(click.ClickException):
    """A failure the user can act on: printed as one ``error: ...`` line, exit code 1."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


model_option = click.option(
    "--model",
    envvar=MODEL_ENV,
    default=None,
    help=f"LiteLLM model name (default: ${MODEL_ENV}, else the offline scripted model immagent/scripted).",
)


# ---------------------------------------------------------------------------------------------- the store


@asynccontextmanager
async def open_store(
    url: str | None, *, create: bool = False, migrate: bool = True, tenant: str | None = None
) -> AsyncIterator[Store]:
    """A store on ``url`` (else $IMMAGENT_DATABASE_URL, else ./immagent.db), scoped to ``tenant`` when
    one is named.

    With ``create``, a missing SQLite file is made and (unless ``migrate`` is false) a database with no
    immagent schema yet is migrated; an older schema is left for ``immagent db upgrade`` to move. Without
    ``create``, a missing SQLite file is an error, not an empty file left behind by a read-only command.
    """
    from immagent._store import Store
    from immagent._urls import database_url

    resolved = database_url(url)
    if not create:
        _require_sqlite_file(resolved)
    async with await Store.connect(resolved, min_size=1, max_size=2) as store:
        if create and migrate and await store.schema_revision() is None:
            await store.migrate()
        yield store.tenant(tenant) if tenant is not None else store


def _require_sqlite_file(url: str) -> None:
    """A read-only command on a SQLite file that does not exist says so (instead of creating it)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    path = parsed.database
    if (
        parsed.get_backend_name() == "sqlite"
        and path not in (None, "", ":memory:")
        and not os.path.exists(path)
    ):
        raise CLIError(f"no database at {path} (run `immagent demo` or `immagent chat` first, or pass --url)")


async def together(*work: Awaitable[Any]) -> list[Any]:
    """Await ``work`` concurrently, results in order. On the first failure the others are cancelled and
    awaited before it is raised: unlike ``asyncio.gather``, no sibling is left running (and holding a
    pooled connection) after the caller has moved on, for example to close the store."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_awaited(w)) for w in work]
    except BaseExceptionGroup as failed:
        first: BaseException = failed
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return [t.result() for t in tasks]


async def _awaited(work: Awaitable[Any]) -> Any:
    return await work


# ---------------------------------------------------------------------------------------------- the model


def resolve_model(model: str | None) -> str:
    """The model to use: the option, else $IMMAGENT_MODEL, else the offline scripted model."""
    from immagent.cli._offline import OFFLINE_MODEL

    return model or os.environ.get(MODEL_ENV) or OFFLINE_MODEL


@contextmanager
def _bulk_import() -> Iterator[None]:
    """Around LiteLLM's first import (about 340,000 new objects, nearly all kept for the process's life):
    no cyclic GC passes while they are made (those passes are about a third of the import's CPU), then
    freeze them, so that later collections and the process's exit skip them. The command owns its
    process, so it may; the library itself leaves the GC alone."""
    if "litellm" in sys.modules or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.freeze()


def _prepare_model_sync(model: str) -> None:
    from immagent._llm import _load_litellm
    from immagent.cli import _offline
    from immagent.testing import PROVIDER

    if logging.getLogger().level > logging.DEBUG:  # LiteLLM's notices are noise here, unless --debug
        logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    with _bulk_import():
        litellm = _load_litellm()  # quietly, with nothing fetched (for the offline model too)
    if model.startswith(f"{PROVIDER}/"):
        _offline.install(model)
        return
    try:
        missing = [str(k) for k in litellm.validate_environment(model).get("missing_keys") or []]
    except Exception:  # an unknown model: let the first call say what is wrong
        missing = []
    keys = [k for k in missing if k.endswith(("_KEY", "_TOKEN"))]
    if keys:
        raise CLIError(f"model {model!r} needs an API key: set the {' or '.join(keys)} environment variable")


async def prepare_model(model: str) -> None:
    """Make ``model`` usable: install the offline model for ``immagent/...`` names, else check that the
    provider's API key is set (one clear error before any chat starts). Runs LiteLLM's slow first import
    in a thread so the caller can open the database meanwhile."""
    await asyncio.to_thread(_prepare_model_sync, model)


# ---------------------------------------------------------------------------------------------- drawing


def one_line_text(text: str | None, width: int = 60) -> str:
    """``text`` on one line, cut to ``width`` characters."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def message_lines(index: int, message: Message) -> list[str]:
    """One message as text lines: role, content (indented when it spans lines), tool calls, usage, and
    the native form's format for a message another framework wrote."""
    usage = ""
    if message.input_tokens is not None or message.output_tokens is not None:
        usage = f"  [tokens in {message.input_tokens or 0}, out {message.output_tokens or 0}]"
    if message.native is not None:  # written by another framework: say which (its form is in `export`)
        usage += f"  [{message.native.format}]"
    head = f"[{index}] {message.role}"
    if message.role == "tool":
        head += f" ({message.tool_call_id})"
    lines: list[str] = []
    content = (message.content or "").splitlines() or ([] if message.tool_calls else [""])
    for n, line in enumerate(content):
        lines.append(f"{head}: {line}" if n == 0 else " " * (len(head) + 2) + line)
    for call in message.tool_calls or ():
        lines.append(f"{head} -> {call.name}({call.arguments})  [call {call.id}]")
    if lines and usage:
        lines[-1 if message.tool_calls else 0] += usage
    return lines


def thread_marks(threads: Sequence[Thread]) -> str:
    """How a state that threads point at is marked: ``⇐ thread support/42, thread other``."""
    return "⇐ " + ", ".join(f"thread {t.key}" for t in threads)


def echo_messages(messages: Sequence[Message], *, indent: str = "  ") -> None:
    """Print a conversation, one numbered message after another."""
    if not messages:
        click.echo(f"{indent}(no messages yet)")
    for index, message in enumerate(messages, start=1):
        for line in message_lines(index, message):
            click.echo(indent + line)


def state_summary(agent: PersistentAgent, messages: Sequence[Message]) -> str:
    """One line about a state: message count, the last thing the user said, metadata."""
    last_user = next((m.content for m in reversed(messages) if m.role == "user"), None)
    parts = [f"{len(messages)} msgs"]
    if last_user:
        parts.append(f"“{one_line_text(last_user, 40)}”")
    if agent.metadata:
        parts.append(json.dumps(agent.metadata, ensure_ascii=False, sort_keys=True))
    return " · ".join(parts)


async def descendants(agent: PersistentAgent) -> dict[UUID, tuple[PersistentAgent, ...]]:
    """Every state below ``agent``: state id -> its children, oldest first (one query per state)."""
    family: dict[UUID, tuple[PersistentAgent, ...]] = {}
    level = [agent]
    while level:
        found = await together(*(node.children() for node in level))
        following: list[PersistentAgent] = []
        for node, kids in zip(level, found, strict=True):
            family[node.id] = kids
            following.extend(kids)
        level = following
    return family


Node = Any  # a PersistentAgent, or a str drawn as a note


def draw_tree(
    root: Node, children_of: Callable[[Node], Sequence[Node]], label: Callable[[Node], str]
) -> list[str]:
    """Text lines of a tree. An only child is drawn under its parent at the same indentation (long chats
    stay narrow); siblings get ``├──``/``└──`` branches. Iterative, so deep lineages are fine."""
    lines: list[str] = []
    stack: list[tuple[Node, str, str]] = [(root, "", "")]
    while stack:
        node, lead, prefix = stack.pop()
        lines.append(lead + label(node))
        kids = children_of(node)
        if len(kids) == 1:
            stack.append((kids[0], prefix, prefix))
            continue
        for i in reversed(range(len(kids))):
            last = i == len(kids) - 1
            stack.append(
                (kids[i], prefix + ("└── " if last else "├── "), prefix + ("    " if last else "│   "))
            )
    return lines


async def family_lines(
    top: PersistentAgent,
    *,
    current: UUID | None = None,
    ancestors: Sequence[PersistentAgent] = (),
    store: Store | None = None,
) -> list[str]:
    """The family of states under ``top`` drawn as a tree, ``current`` marked, and with ``store`` the
    states that threads point at. With ``ancestors`` (root first, ending at ``top``'s parent) the chain
    that led to ``top`` is drawn above it, and each ancestor's other branches are counted, not drawn."""
    below = await descendants(top)
    other: dict[UUID, int] = {}
    chain = list(ancestors)
    if chain:
        siblings = await together(*(a.children() for a in chain))
        path = [*chain[1:], top]
        for ancestor, kids, step in zip(chain, siblings, path, strict=True):
            below[ancestor.id] = (step,)
            other[ancestor.id] = sum(1 for k in kids if k.id != step.id)
    twin_of: dict[UUID, UUID] = {}  # a clone (or metadata change) and the earlier sibling it equals
    for kids in below.values():
        first: dict[UUID | None, UUID] = {}
        for kid in kids:
            if kid.head_id in first:
                twin_of[kid.id] = first[kid.head_id]
            first.setdefault(kid.head_id, kid.id)
    nodes = [*chain, top, *(kid for kids in below.values() for kid in kids)]
    unique = {n.id: n for n in nodes}
    histories = dict(zip(unique, await together(*(n.messages() for n in unique.values())), strict=True))
    threads = await store.threads_pointing_at(unique) if store is not None else {}

    def children_of(node: Node) -> Sequence[Node]:
        if isinstance(node, str):
            return ()
        kids: list[Node] = list(below.get(node.id, ()))
        if other.get(node.id):
            count = other[node.id]
            kids.append(f"… {count} other branch{'es' if count > 1 else ''} (see `immagent tree --all`)")
        return kids

    def label(node: Node) -> str:
        if isinstance(node, str):
            return node
        text = f"{node.id}  {state_summary(node, histories[node.id])}"
        if node.parent_id is None:
            text += f" · root “{node.name}” on {node.model}"
        if node.id in twin_of:
            text += f" · same history as {twin_of[node.id]}"
        if node.id in threads:
            text += "   " + thread_marks(threads[node.id])
        return text + ("   ◀ current" if node.id == current else "")

    return draw_tree(chain[0] if chain else top, children_of, label)
