"""Real MCP servers for tests: the example weather server as a stdio subprocess and in-process over HTTP.

Loaded as a plugin by tests/conftest.py, so its fixtures are shared by every test module:

- ``http_weather`` (session): the weather server, test tools included (never ``crash``), under uvicorn on
  127.0.0.1; its ``url`` is the MCP endpoint and ``headers_seen`` records request headers.
- ``connect_weather`` (per test, parametrised stdio/http): a function that connects the weather server over
  that transport to a given MCPManager under a given key.
- ``weather_tools`` (session, parametrised stdio/http): an MCPManager already connected to the weather server
  over that transport, shared by tests that only call tools (starting a stdio server costs seconds). A test
  that changes it (``tool_timeout``) restores it; a test that kills its server must use its own manager.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import pytest_asyncio

from immagent._mcp import MCPManager

__all__ = [
    "TRANSPORTS",
    "WEATHER",
    "WEATHER_ARGS",
    "Connector",
    "HTTPWeather",
    "connect_weather",
    "http_weather",
    "load_weather_module",
    "weather_tools",
]

WEATHER = Path(__file__).resolve().parents[2] / "examples" / "weather_server.py"
WEATHER_ARGS = [str(WEATHER), "--with-test-tools"]
TRANSPORTS = ("stdio", "http")

Connector = Callable[[MCPManager, str], Awaitable[None]]


def load_weather_module() -> ModuleType:
    """examples/weather_server.py as a module (what a user running the example file gets)."""
    spec = importlib.util.spec_from_file_location("immagent_example_weather_server", WEATHER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class HTTPWeather:
    url: str
    headers_seen: list[dict[str, str]] = field(default_factory=list)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def http_weather() -> AsyncIterator[HTTPWeather]:
    """The weather server (with fail/slow, never crash) under uvicorn on 127.0.0.1, a free port."""
    import uvicorn

    inner = load_weather_module().http_app(test_tools=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    state = HTTPWeather(url=f"http://127.0.0.1:{port}/mcp")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        # Records request headers, so a test can check that connect_http() sends the configured ones.
        if scope["type"] == "http":
            state.headers_seen.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
        await inner(scope, receive, send)

    config = uvicorn.Config(app, log_level="warning", lifespan="on", ws="none", http="h11")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield state
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture(params=TRANSPORTS)
def connect_weather(request: pytest.FixtureRequest, http_weather: HTTPWeather) -> Connector:
    """Connects the weather server (with its test tools) over each transport in turn."""
    if request.param == "stdio":

        async def via_stdio(mcp: MCPManager, key: str) -> None:
            await mcp.connect(key, sys.executable, WEATHER_ARGS)

        return via_stdio

    async def via_http(mcp: MCPManager, key: str) -> None:
        await mcp.connect_http(key, http_weather.url)

    return via_http


@pytest_asyncio.fixture(scope="session", loop_scope="session", params=TRANSPORTS)
async def weather_tools(
    request: pytest.FixtureRequest, http_weather: HTTPWeather
) -> AsyncIterator[MCPManager]:
    """A session-wide MCPManager connected to the weather server over stdio, then over HTTP."""
    async with MCPManager(tool_timeout=10.0) as mcp:
        if request.param == "stdio":
            await mcp.connect("weather", sys.executable, WEATHER_ARGS)
        else:
            await mcp.connect_http("weather", http_weather.url)
        yield mcp
