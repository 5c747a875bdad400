"""A small, deterministic MCP weather server (no network) for immagent's docs, demo and tests.

Run it (``examples/weather_server.py`` in the repository is a thin runnable wrapper of this module):

    python -m immagent.examples.weather_server                     # stdio (what MCPManager.connect() spawns)
    python -m immagent.examples.weather_server --http --port 8765  # streamable HTTP on 127.0.0.1:8765/mcp

Tools (always present):

    get_weather(city)            canned current weather, e.g. "Paris: 18°C, light rain"
    get_forecast(city, days=3)   a canned day-by-day forecast (1 to 7 days)

Test-only tools, registered only with ``--with-test-tools`` (or ``IMMAGENT_WEATHER_TEST_TOOLS=1`` in the
environment), so the documented example stays clean:

    fail(message)     returns an MCP tool error (``isError``) whose text is ``message``
    slow(seconds)     sleeps, then returns "done" (exercises client timeouts)
    crash()           kills the server process mid-call with ``os._exit(1)``
    image_result()    returns one PNG image content block and no text
    structured_result(city)   returns only structured content (JSON), no text blocks

In-process use (tests): ``create_server(test_tools=True)`` returns the ``MCPServer`` and
``http_app(test_tools=True)`` the Starlette ASGI app to run with uvicorn (MCP endpoint at ``/mcp``). An
in-process server never registers ``crash`` (it would kill the host process, e.g. pytest) unless
``allow_crash=True`` is passed explicitly.

Written against mcp 2.x, where v1's ``FastMCP`` is ``mcp.server.mcpserver.MCPServer``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import TYPE_CHECKING

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ImageContent

if TYPE_CHECKING:
    from starlette.applications import Starlette

TEST_TOOLS_ENV = "IMMAGENT_WEATHER_TEST_TOOLS"

_CURRENT: dict[str, tuple[int, str]] = {
    "paris": (18, "light rain"),
    "london": (14, "overcast"),
    "new york": (22, "sunny"),
    "tokyo": (26, "humid, scattered clouds"),
    "sydney": (20, "clear skies"),
    "berlin": (16, "partly cloudy"),
    "cairo": (34, "hot and dry"),
}

_OUTLOOK = ("sunny", "partly cloudy", "showers", "overcast", "windy", "clear", "light rain")
_DAY_NAMES = ("Day 1", "Day 2", "Day 3", "Day 4", "Day 5", "Day 6", "Day 7")


def _lookup(city: str) -> tuple[str, int, str] | None:
    """Return (display name, °C, conditions) for a known city, case- and whitespace-insensitively."""
    key = " ".join(city.split()).lower()
    if key not in _CURRENT:
        return None
    temp, conditions = _CURRENT[key]
    return key.title(), temp, conditions


def get_weather(city: str) -> str:
    """Get the current weather for a city (canned data, no network)."""
    found = _lookup(city)
    if found is None:
        return f"No weather data available for {city!r}."
    name, temp, conditions = found
    return f"{name}: {temp}°C, {conditions}"


def get_forecast(city: str, days: int = 3) -> str:
    """Get a day-by-day weather forecast for a city, for 1 to 7 days (canned data, no network)."""
    if not 1 <= days <= 7:
        raise ToolError(f"days must be between 1 and 7, got {days}")
    found = _lookup(city)
    if found is None:
        return f"No forecast data available for {city!r}."
    name, temp, _ = found
    offset = sum(map(ord, name)) % len(_OUTLOOK)
    lines = [
        f"{_DAY_NAMES[i]}: {temp + (i % 3) - 1}°C, {_OUTLOOK[(offset + i) % len(_OUTLOOK)]}"
        for i in range(days)
    ]
    return f"{name} forecast:\n" + "\n".join(lines)


# --- test-only tools -------------------------------------------------------------------------------------


def fail(message: str) -> str:
    """TEST ONLY: fail with the given message (the client receives an isError result)."""
    raise ToolError(message)


async def slow(seconds: float) -> str:
    """TEST ONLY: sleep for the given number of seconds, then return "done"."""
    await asyncio.sleep(seconds)
    return "done"


def crash() -> str:
    """TEST ONLY: kill the server process immediately, mid-call."""
    os._exit(1)


# A 1x1 transparent PNG.
_PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="


def image_result() -> CallToolResult:
    """TEST ONLY: return a single image content block (no text)."""
    return CallToolResult(content=[ImageContent(data=_PIXEL_PNG, mime_type="image/png")])


def structured_result(city: str) -> CallToolResult:
    """TEST ONLY: return structured content only (no text blocks)."""
    found = _lookup(city)
    if found is None:
        raise ToolError(f"unknown city {city!r}")
    name, temp, conditions = found
    return CallToolResult(
        content=[], structured_content={"city": name, "temperature_c": temp, "conditions": conditions}
    )


# --- construction ----------------------------------------------------------------------------------------


def create_server(*, test_tools: bool = False, allow_crash: bool = True) -> MCPServer:
    """Build the weather MCPServer; ``test_tools`` adds the test-only tools (crash if ``allow_crash``)."""
    server: MCPServer = MCPServer(
        "weather", instructions="Canned weather data for a few cities.", log_level="WARNING"
    )
    server.add_tool(get_weather, structured_output=False)
    server.add_tool(get_forecast, structured_output=False)
    if test_tools:
        server.add_tool(fail, structured_output=False)
        server.add_tool(slow, structured_output=False)
        server.add_tool(image_result)
        server.add_tool(structured_result)
        if allow_crash:
            server.add_tool(crash, structured_output=False)
    return server


def http_app(*, test_tools: bool = False, allow_crash: bool = False) -> Starlette:
    """The streamable-HTTP ASGI app (endpoint ``/mcp``) for running in-process, e.g. under uvicorn.

    ``crash`` is left out by default: in-process it would kill the host process, not just the server.
    """
    return create_server(test_tools=test_tools, allow_crash=allow_crash).streamable_http_app()


def main(argv: list[str] | None = None) -> None:
    """Command line entry point: stdio by default, streamable HTTP with ``--http``."""
    parser = argparse.ArgumentParser(description="Deterministic MCP weather server (immagent example).")
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    parser.add_argument(
        "--with-test-tools",
        action="store_true",
        default=os.environ.get(TEST_TOOLS_ENV, "") not in ("", "0"),
        help=f"also register the test-only tools fail/slow/crash (or set {TEST_TOOLS_ENV}=1)",
    )
    args = parser.parse_args(argv)
    server = create_server(test_tools=args.with_test_tools)
    if args.http:
        server.run("streamable-http", host=args.host, port=args.port)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
