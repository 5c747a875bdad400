"""MCPManager: one client for several MCP servers, exposing their tools in OpenAI function format.

Each server's connection lives in its own long-lived asyncio task: the task enters the transport (stdio
subprocess or streamable HTTP) and the ``mcp.Client`` session, signals that it is ready, and waits to be told
to stop; it then leaves those contexts itself. mcp's transports are anyio task groups, which must be exited
by the task that entered them, so this is what lets ``close()`` (or ``async with`` exit) run from any task,
e.g. a request handler other than the one that connected. Tool calls are plain requests over the session and
may come from any task, concurrently.

The ``mcp`` package (and anyio) are imported on first use, never at import time: ``import immagent`` stays
cheap for apps that never touch MCP. Written against mcp 2.x (``mcp.Client``).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from immagent._errors import ImmAgentError, ToolExecutionError, ValidationError

if TYPE_CHECKING:
    import anyio
    from mcp import Client
    from mcp.client import Transport
    from mcp.client.stdio import StdioServerParameters
    from mcp.types import CallToolResult, ContentBlock, Implementation, Tool

__all__ = ["MCPManager"]

logger = logging.getLogger("immagent")

# How long a server may take to shut down gracefully (stdio: close stdin, SIGTERM, SIGKILL; HTTP: DELETE the
# session) before its task is cancelled outright; then how long the cancelled task gets to unwind.
_CLOSE_GRACE = 10.0
_ABORT_GRACE = 5.0

# An OpenAI tool definition needs an object schema; a tool without parameters gets this one.
_EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}

_OpenTarget = Callable[[AsyncExitStack], Awaitable["Transport | StdioServerParameters | str"]]


@dataclass(eq=False)
class _Connection:
    """One server: its background task, its session once ready, and the signals that drive its lifetime."""

    key: str
    description: str  # for messages and logs: "command 'python'" or "URL 'http://host/mcp'", no secrets
    open_target: _OpenTarget
    abort_scope: anyio.CancelScope
    ready: asyncio.Future[None]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    client: Client | None = None
    tools: list[Tool] = field(default_factory=list)
    error: BaseException | None = None  # what ended the connection before it was ready
    dead: bool = False  # the server went away (crashed, closed the connection)
    closing: bool = False


class MCPManager:
    """Connects to MCP servers by key and runs their tools; an async context manager that closes them all.

    ``tool_timeout`` (seconds) bounds each ``execute()`` that is not given its own ``timeout``;
    ``connect_timeout`` bounds starting a server and completing the MCP handshake.

    Usage::

        async with MCPManager() as mcp:
            await mcp.connect("weather", sys.executable, ["examples/weather_server.py"])
            tools = mcp.get_all_tools()             # pass to the model as ``tools=``
            text = await mcp.execute("get_weather", '{"city": "Paris"}')

    Every server runs in its own background task, so ``close()`` may be awaited from any task of the event
    loop that connected; it must be awaited (or the ``async with`` block left) before that loop ends.
    """

    def __init__(self, *, tool_timeout: float = 60.0, connect_timeout: float = 30.0) -> None:
        _check_positive("tool_timeout", tool_timeout)
        _check_positive("connect_timeout", connect_timeout)
        self.tool_timeout = tool_timeout
        self.connect_timeout = connect_timeout
        self._connections: dict[str, _Connection] = {}  # ready servers, in connect order
        self._pending: set[str] = set()  # keys whose connect() is in progress
        self._tool_owner: dict[str, _Connection] = {}
        self._stack = AsyncExitStack()  # one stop callback per ready server, unwound by close()
        self._orphans: set[asyncio.Task[None]] = set()  # tasks of aborted connects, awaited by close()

    async def __aenter__(self) -> MCPManager:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- connecting ---------------------------------------------------------------------------------------

    async def connect(
        self,
        key: str,
        command: str,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """Start ``command args`` as a stdio MCP server registered under ``key`` and load its tools.

        ``env`` is added to mcp's minimal default environment (PATH, HOME, ...), not to ``os.environ``:
        pass what the server needs explicitly. The server's stderr goes to this process's stderr.
        Raises ``ValidationError`` for a key already in use or a tool name another server already offers,
        ``ImmAgentError`` when the server cannot be started or does not complete the handshake in time.
        """
        from mcp.client.stdio import StdioServerParameters

        params = StdioServerParameters(command=command, args=list(args or []), env=env)

        async def open_target(stack: AsyncExitStack) -> StdioServerParameters:
            return params

        await self._connect(key, f"command {command!r}", open_target)

    async def connect_http(self, key: str, url: str, headers: dict[str, str] | None = None) -> None:
        """Connect to a streamable-HTTP MCP server at ``url`` (e.g. ``http://host:port/mcp``) under ``key``.

        ``headers`` (e.g. ``Authorization``) are sent with every request. Errors as for ``connect()``.
        """

        async def open_target(stack: AsyncExitStack) -> Transport | str:
            if not headers:
                return url
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            # Same timeouts as mcp's default client: a server may hold a response stream open for long.
            http = await stack.enter_async_context(
                httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0))
            )
            return streamable_http_client(url, http_client=http)

        await self._connect(key, f"URL {_safe_url(url)!r}", open_target)

    async def _connect(self, key: str, description: str, open_target: _OpenTarget) -> None:
        """Run a server in its own task, wait until it is ready, then register its tools (or undo it all)."""
        import anyio

        if not isinstance(key, str) or not key:
            raise ValidationError("key", "must be a non-empty string")
        if key in self._connections or key in self._pending:
            raise ValidationError("key", f"an MCP server is already connected under the key {key!r}")

        loop = asyncio.get_running_loop()
        conn = _Connection(
            key=key,
            description=description,
            open_target=open_target,
            abort_scope=anyio.CancelScope(),
            ready=loop.create_future(),
        )
        self._pending.add(key)
        try:
            task = loop.create_task(self._serve(conn), name=f"immagent-mcp-{key}")
            conn.task = task
            try:
                await asyncio.wait(
                    {task, conn.ready}, timeout=self.connect_timeout, return_when=asyncio.FIRST_COMPLETED
                )
            except BaseException:
                # The caller was cancelled mid-connect: abort the server in the background; close() awaits it.
                conn.abort_scope.cancel()
                self._orphans.add(task)
                task.add_done_callback(self._orphans.discard)
                raise

            if not conn.ready.done():
                if not task.done():
                    await self._shutdown(conn, graceful=False)
                    raise ImmAgentError(
                        f"MCP server {key!r} ({description}) did not complete the MCP handshake "
                        f"within {self.connect_timeout:g} s"
                    )
                cause = _unwrap(conn.error) if conn.error is not None else None
                detail = _connect_failure(cause)
                raise ImmAgentError(
                    f"could not connect to MCP server {key!r} ({description}): {detail}"
                ) from cause

            clashes = {
                tool.name: self._tool_owner[tool.name].key
                for tool in conn.tools
                if tool.name in self._tool_owner
            }
            if clashes:
                await self._shutdown(conn, graceful=True)
                listed = ", ".join(
                    f"{name!r} (already from server {owner!r})" for name, owner in sorted(clashes.items())
                )
                raise ValidationError(
                    "tools",
                    f"MCP server {key!r} offers tool names that another server already provides: {listed}; "
                    f"tool names must be unique across servers, so {key!r} was not connected",
                )

            # Registration is synchronous, so concurrent connect() calls see each other's tools atomically.
            self._connections[key] = conn
            for tool in conn.tools:
                self._tool_owner[tool.name] = conn
            self._stack.push_async_callback(self._shutdown, conn, True)
            logger.debug("connected MCP server %r (%s) with %d tools", key, description, len(conn.tools))
        finally:
            self._pending.discard(key)

    async def _serve(self, conn: _Connection) -> None:
        """The connection's task: enter transport and session, publish them, await stop, exit them here."""
        from mcp import Client

        try:
            with conn.abort_scope:
                async with AsyncExitStack() as stack:
                    target = await conn.open_target(stack)
                    client = await stack.enter_async_context(Client(target, client_info=_client_info()))
                    conn.tools = await _list_all_tools(client)
                    conn.client = client
                    conn.ready.set_result(None)
                    await conn.stop.wait()
        except Exception as exc:  # reported by connect() or logged: the task itself never raises
            if not conn.ready.done():
                conn.error = exc
            elif conn.dead:  # already reported; tearing down a dead connection may fail in any way
                logger.debug("MCP server %r: teardown after its death: %s", conn.key, _describe(exc))
            elif conn.closing:
                logger.warning("MCP server %r did not shut down cleanly: %s", conn.key, _describe(exc))
            else:
                conn.dead = True
                logger.error("MCP server %r: connection failed: %s", conn.key, _describe(exc))
        finally:
            conn.client = None

    # --- tools --------------------------------------------------------------------------------------------

    def get_all_tools(self) -> list[dict[str, Any]]:
        """Every connected server's tools as OpenAI function definitions (fresh copies, connect order).

        Tools of a server that has died are left out, so a model is not offered tools that cannot run.
        """
        result: list[dict[str, Any]] = []
        for conn in self._connections.values():
            if conn.dead or conn.closing:
                continue
            for tool in conn.tools:
                parameters = copy.deepcopy(tool.input_schema or _EMPTY_PARAMETERS)
                parameters.setdefault("type", "object")
                if parameters.get("type") == "object":
                    parameters.setdefault("properties", {})
                function: dict[str, Any] = {
                    "name": tool.name,
                    "description": tool.description or tool.title or "",
                    "parameters": parameters,
                }
                result.append({"type": "function", "function": function})
        return result

    async def execute(
        self,
        name: str,
        arguments: str | dict[str, Any] | None,
        *,
        timeout: float | None = None,
    ) -> str:
        """Call tool ``name`` with ``arguments`` (a JSON object, as text or dict); return its output as text.

        Every failure raises ``ToolExecutionError`` with a message meant for the model: unknown tool,
        malformed arguments, an error reported by the tool, a timeout, or a server that died.
        """
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        conn = self._tool_owner.get(name)
        if conn is None:
            known = ", ".join(sorted(self._tool_owner)) or "none"
            raise ToolExecutionError(name, f"unknown tool; the available tools are: {known}")
        if conn.dead or conn.closing or conn.client is None:
            state = "has stopped" if conn.dead else "is shutting down"
            raise ToolExecutionError(name, f"the MCP server {conn.key!r} that provides this tool {state}")
        args = _parse_arguments(name, arguments)
        limit = self.tool_timeout if timeout is None else timeout
        _check_positive("timeout", limit)

        import anyio

        try:
            with anyio.fail_after(limit):
                result = await conn.client.call_tool(name, args, read_timeout_seconds=limit)
        except TimeoutError:
            raise ToolExecutionError(name, f"timed out after {limit:g} s") from None
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise ToolExecutionError(name, f"timed out after {limit:g} s") from None
            if exc.code == CONNECTION_CLOSED and conn.closing:
                raise ToolExecutionError(name, "the MCP manager was closed during the call") from exc
            if exc.code == CONNECTION_CLOSED:
                self._mark_dead(conn, name, exc)
                raise ToolExecutionError(
                    name,
                    f"the MCP server {conn.key!r} closed the connection during the call "
                    "(it may have crashed); its tools are no longer available",
                ) from exc
            raise ToolExecutionError(
                name, f"the MCP server {conn.key!r} returned error {exc.code}: {exc}"
            ) from exc
        except Exception as exc:
            logger.error("MCP tool %r on server %r failed: %s", name, conn.key, _describe(exc))
            raise ToolExecutionError(name, f"the call failed: {_describe(exc)}") from exc

        text = _result_text(result)
        if result.is_error:
            raise ToolExecutionError(name, f"the tool reported an error: {text or '(no details)'}")
        return text

    def _mark_dead(self, conn: _Connection, name: str, exc: BaseException) -> None:
        """Record (and log, once) that a server went away mid-call."""
        if not conn.dead:
            conn.dead = True
            logger.error(
                "MCP server %r (%s) closed the connection during a call to tool %r (%s); "
                "its tools are unavailable",
                conn.key,
                conn.description,
                name,
                _describe(exc),
            )

    # --- closing ------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop every server (stdio subprocesses are terminated) and forget their tools; safe to call twice.

        May be awaited from any task of the loop that connected. The manager can be reused afterwards.
        """
        for conn in self._connections.values():
            conn.closing = True
            conn.stop.set()  # all servers wind down concurrently; the stack below waits for each
        stack, self._stack = self._stack, AsyncExitStack()
        try:
            await stack.aclose()
            if self._orphans:
                await asyncio.wait(set(self._orphans), timeout=_CLOSE_GRACE)
        finally:
            self._connections.clear()
            self._tool_owner.clear()

    async def _shutdown(self, conn: _Connection, graceful: bool) -> None:
        """Stop one server's task and wait for it, escalating to cancellation; never raises (but a cancel)."""
        task = conn.task
        conn.closing = True
        if task is None:
            return
        if graceful:
            conn.stop.set()
            await asyncio.wait({task}, timeout=_CLOSE_GRACE)
        if not task.done():
            conn.abort_scope.cancel()
            await asyncio.wait({task}, timeout=_ABORT_GRACE)
        if not task.done():
            logger.warning("MCP server %r did not shut down; abandoning its task", conn.key)


# --- helpers ----------------------------------------------------------------------------------------------


async def _list_all_tools(client: Client) -> list[Tool]:
    """Every tool the server lists, following cursors (bounded: a server may never end), deduplicated."""
    tools: dict[str, Tool] = {}
    cursor: str | None = None
    for _ in range(1000):
        page = await client.list_tools(cursor=cursor)
        for tool in page.tools:
            tools.setdefault(tool.name, tool)
        cursor = page.next_cursor
        if not cursor:
            break
    return list(tools.values())


def _parse_arguments(name: str, arguments: str | dict[str, Any] | None) -> dict[str, Any]:
    """The call's arguments as a dict: a JSON object (text or dict); nothing or blank text means none."""
    if arguments is None:
        return {}
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str):
        raise ToolExecutionError(name, f"arguments must be a JSON object, got {type(arguments).__name__}")
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError as exc:
        raise ToolExecutionError(name, f"arguments are not valid JSON ({exc}); send a JSON object") from None
    if not isinstance(value, dict):
        raise ToolExecutionError(name, f"arguments must be a JSON object, got JSON {type(value).__name__}")
    return value


def _result_text(result: CallToolResult) -> str:
    """Tool output as text: text blocks joined, other content named, structured content if no text."""
    texts: list[str] = []
    others: list[str] = []
    for block in result.content:
        text = _block_text(block)
        if text is not None:
            texts.append(text)
        else:
            others.append(_describe_block(block))
    if not texts and result.structured_content is not None:
        texts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    return "\n".join(texts + others)


def _block_text(block: ContentBlock) -> str | None:
    """The text a content block carries (a text block, or an embedded text resource), else None."""
    if block.type == "text":
        return block.text
    if block.type == "resource":
        text = getattr(block.resource, "text", None)
        return text if isinstance(text, str) else None
    return None


def _describe_block(block: ContentBlock) -> str:
    """A short placeholder for content a text-only model cannot see, e.g. ``[image/png content]``."""
    if block.type in ("image", "audio"):
        return f"[{block.mime_type} content]"
    if block.type == "resource_link":
        return f"[resource link: {block.uri}]"
    if block.type == "resource":
        mime = block.resource.mime_type or "binary"
        return f"[{mime} resource: {block.resource.uri}]"
    return f"[{block.type} content]"


def _client_info() -> Implementation:
    """How immagent introduces itself to servers (name and installed version)."""
    from importlib.metadata import PackageNotFoundError, version

    from mcp.types import Implementation

    try:
        installed = version("immagent")
    except PackageNotFoundError:
        installed = "0+unknown"
    return Implementation(name="immagent", version=installed)


def _connect_failure(cause: BaseException | None) -> str:
    """Why a connect failed, in words: a closed connection during the handshake gets a hint."""
    from mcp.shared.exceptions import MCPError
    from mcp_types import CONNECTION_CLOSED

    if cause is None:
        return "the connection ended before the MCP handshake"
    if isinstance(cause, MCPError) and cause.code == CONNECTION_CLOSED:
        return (
            "the server closed the connection before completing the MCP handshake "
            "(did it exit? a stdio server's stderr usually says why)"
        )
    return _describe(cause)


def _unwrap(exc: BaseException) -> BaseException:
    """The single leaf of nested one-exception groups (anyio task groups wrap errors), else ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, looking through single-exception groups."""
    leaf = _unwrap(exc)
    return f"{type(leaf).__name__}: {leaf}" if str(leaf) else type(leaf).__name__


def _safe_url(url: str) -> str:
    """The URL for messages and logs, without user info, query or fragment (they may carry credentials)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port is not None else host
    except ValueError:
        return "<invalid URL>"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _check_positive(field_name: str, value: float) -> None:
    """Reject a timeout that is not a positive number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValidationError(field_name, f"must be a positive number of seconds, got {value!r}")
