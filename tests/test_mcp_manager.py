"""MCPManager against real MCP servers: the example weather server as a stdio subprocess and in-process over
streamable HTTP (uvicorn on 127.0.0.1), plus a tiny second server for multi-server routing."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import psutil
import pytest
import pytest_asyncio

from immagent._errors import ImmAgentError, ToolExecutionError, ValidationError
from immagent._mcp import MCPManager
from tests.support.mcp import WEATHER, WEATHER_ARGS, Connector, HTTPWeather

# A second, different stdio server (tools that do not clash with the weather server's).
CALC_SERVER = """
from mcp.server.mcpserver import MCPServer

server = MCPServer("calc", log_level="WARNING")

@server.tool()
def add(a: int, b: int) -> str:
    '''Add two integers.'''
    return str(a + b)

server.run("stdio")
"""


def _children() -> dict[int, psutil.Process]:
    return {p.pid: p for p in psutil.Process().children(recursive=True)}


def _new_children(before: dict[int, psutil.Process]) -> list[psutil.Process]:
    return [p for pid, p in _children().items() if pid not in before and p.is_running()]


async def _assert_gone(proc: psutil.Process, timeout: float = 5.0) -> None:
    """The process has exited and been reaped (a zombie still counts as running).

    Normally it is reaped before close() returns. When a connect is cancelled while the process is being
    spawned, asyncio has already SIGKILLed it but reaps it a moment later, hence the short poll; it never
    uses waitpid itself, which would steal the exit status from asyncio's child watcher.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while proc.is_running():
        assert loop.time() < deadline, f"MCP server process {proc.pid} is still running"
        await asyncio.sleep(0.01)


async def _wait_for_child(before: dict[int, psutil.Process], timeout: float = 10.0) -> psutil.Process:
    async with asyncio.timeout(timeout):
        while True:
            found = _new_children(before)
            if found:
                return found[0]
            await asyncio.sleep(0.01)


@pytest_asyncio.fixture
async def manager() -> AsyncIterator[MCPManager]:
    async with MCPManager(tool_timeout=10.0) as mcp:
        yield mcp


# --- listing and calling ------------------------------------------------------------------------------------


async def test_tools_are_listed_in_openai_format(manager: MCPManager) -> None:
    await manager.connect("weather", sys.executable, [str(WEATHER)])  # no test tools: the documented example
    tools = manager.get_all_tools()
    assert [t["function"]["name"] for t in tools] == ["get_weather", "get_forecast"]
    for tool in tools:
        assert tool["type"] == "function"
        assert set(tool["function"]) == {"name", "description", "parameters"}
        assert tool["function"]["description"]
        assert tool["function"]["parameters"]["type"] == "object"
    weather, forecast = (t["function"]["parameters"] for t in tools)
    assert weather["properties"]["city"]["type"] == "string"
    assert weather["required"] == ["city"]
    assert forecast["properties"]["days"] == {"default": 3, "title": "Days", "type": "integer"}
    assert forecast["required"] == ["city"]
    json.dumps(tools)  # plain JSON, ready to send to a model

    # Fresh copies: a caller mutating them does not change what the next call returns.
    tools[0]["function"]["parameters"]["properties"].clear()
    assert manager.get_all_tools()[0]["function"]["parameters"]["properties"]

    assert await manager.execute("get_weather", '{"city": "Paris"}') == "Paris: 18°C, light rain"
    assert (
        await manager.execute("get_weather", {"city": "Atlantis"})
        == "No weather data available for 'Atlantis'."
    )
    forecast_text = await manager.execute("get_forecast", json.dumps({"city": "tokyo", "days": 2}))
    assert forecast_text.splitlines()[0] == "Tokyo forecast:"
    assert len(forecast_text.splitlines()) == 3


async def test_call_over_streamable_http_sends_headers(
    manager: MCPManager, http_weather: HTTPWeather
) -> None:
    await manager.connect_http("remote", http_weather.url, headers={"Authorization": "Bearer test-token"})
    assert await manager.execute("get_weather", {"city": "London"}) == "London: 14°C, overcast"
    assert "Paris forecast:" in await manager.execute("get_forecast", {"city": "Paris", "days": 1})
    assert any(h.get("authorization") == "Bearer test-token" for h in http_weather.headers_seen)


async def test_two_servers_under_two_keys(manager: MCPManager, http_weather: HTTPWeather) -> None:
    await manager.connect_http("weather", http_weather.url)
    await manager.connect("calc", sys.executable, ["-c", CALC_SERVER])
    names = [t["function"]["name"] for t in manager.get_all_tools()]
    assert names[-1] == "add"
    assert {"get_weather", "get_forecast", "fail", "slow", "add"} <= set(names)
    assert len(names) == len(set(names))
    assert await manager.execute("add", '{"a": 2, "b": 40}') == "42"
    assert await manager.execute("get_weather", '{"city": "Cairo"}') == "Cairo: 34°C, hot and dry"


async def test_non_text_results(manager: MCPManager, http_weather: HTTPWeather) -> None:
    await manager.connect_http("weather", http_weather.url)
    assert await manager.execute("image_result", None) == "[image/png content]"
    structured = json.loads(await manager.execute("structured_result", '{"city": "Sydney"}'))
    assert structured == {"city": "Sydney", "temperature_c": 20, "conditions": "clear skies"}


# --- refused connects ---------------------------------------------------------------------------------------


async def test_duplicate_tool_name_is_refused_and_first_server_keeps_working(
    manager: MCPManager, http_weather: HTTPWeather
) -> None:
    await manager.connect_http("remote", http_weather.url)
    before = _children()
    with pytest.raises(ValidationError) as info:
        await manager.connect("local", sys.executable, WEATHER_ARGS)
    assert info.value.field == "tools"
    message = str(info.value)
    assert "'local'" in message and "'remote'" in message and "'get_weather'" in message
    assert _new_children(before) == []  # the refused server was stopped again

    names = [t["function"]["name"] for t in manager.get_all_tools()]
    assert names.count("get_weather") == 1
    assert await manager.execute("get_weather", {"city": "Berlin"}) == "Berlin: 16°C, partly cloudy"

    with pytest.raises(ValidationError) as dup:
        await manager.connect_http("remote", http_weather.url)
    assert dup.value.field == "key"


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("/nonexistent/mcp-server", []),
        (sys.executable, ["-c", "import sys; sys.exit(3)"]),
    ],
    ids=["missing-executable", "exits-immediately"],
)
async def test_failed_connect_raises_and_leaks_nothing(
    http_weather: HTTPWeather, command: str, args: list[str]
) -> None:
    before = _children()
    mcp = MCPManager()
    await mcp.connect_http("good", http_weather.url)
    with pytest.raises(ImmAgentError) as info:
        await mcp.connect("bad", command, args)
    assert not isinstance(info.value, ValidationError)
    assert "'bad'" in str(info.value)
    assert await mcp.execute("get_weather", {"city": "Paris"}) == "Paris: 18°C, light rain"
    assert [t["function"]["name"] for t in mcp.get_all_tools()].count("get_weather") == 1
    await mcp.close()
    assert _new_children(before) == []
    # The key of a failed connect is free again.
    with pytest.raises(ImmAgentError):
        await mcp.connect("bad", command, args)
    await mcp.close()


async def test_handshake_timeout_stops_the_process() -> None:
    """A process that never speaks MCP: connect gives up after connect_timeout and the child is gone."""
    before = _children()
    mcp = MCPManager(connect_timeout=0.5)
    # Exits when its stdin closes, which is the first step of mcp's shutdown sequence.
    connecting = asyncio.create_task(
        mcp.connect("mute", sys.executable, ["-c", "import sys; sys.stdin.read()"])
    )
    child = await _wait_for_child(before)
    with pytest.raises(ImmAgentError, match=r"did not complete the MCP handshake within 0\.5 s"):
        await connecting
    await _assert_gone(child)
    await mcp.close()


async def test_cancelled_connect_is_cleaned_up_by_close() -> None:
    before = _children()
    mcp = MCPManager()
    connecting = asyncio.create_task(
        mcp.connect("slowpoke", sys.executable, ["-c", "import time; time.sleep(60)"])
    )
    child = await _wait_for_child(before)
    connecting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await connecting
    await mcp.close()  # waits for the aborted server (it ignores stdin EOF, so it is terminated)
    await _assert_gone(child)
    assert mcp.get_all_tools() == []


# --- execute failures ---------------------------------------------------------------------------------------


async def test_execute_failures(manager: MCPManager, connect_weather: Connector) -> None:
    await connect_weather(manager, "weather")

    with pytest.raises(ToolExecutionError) as unknown:
        await manager.execute("get_wether", {"city": "Paris"})
    assert unknown.value.tool_name == "get_wether"
    assert "unknown tool" in str(unknown.value) and "get_weather" in str(unknown.value)

    with pytest.raises(ToolExecutionError, match="not valid JSON"):
        await manager.execute("get_weather", '{"city": Paris}')
    for not_an_object in ('["Paris"]', '"Paris"', "42", "null"):
        with pytest.raises(ToolExecutionError, match="must be a JSON object"):
            await manager.execute("get_weather", not_an_object)

    with pytest.raises(ToolExecutionError) as failed:
        await manager.execute("fail", {"message": "the barometer exploded"})
    assert failed.value.tool_name == "fail"
    assert "reported an error" in str(failed.value) and "the barometer exploded" in str(failed.value)

    with pytest.raises(ToolExecutionError, match=r"(?s)reported an error.*city"):
        await manager.execute("get_weather", {"town": "Paris"})  # the server's argument validation

    with pytest.raises(ToolExecutionError, match=r"timed out after 0\.3 s"):
        await manager.execute("slow", {"seconds": 5}, timeout=0.3)
    manager.tool_timeout = 0.2  # the default when execute() gets no timeout
    with pytest.raises(ToolExecutionError, match=r"timed out after 0\.2 s"):
        await manager.execute("slow", '{"seconds": 5}')
    manager.tool_timeout = 10.0
    with pytest.raises(ValidationError):
        await manager.execute("slow", {"seconds": 0}, timeout=0)

    # Nothing above broke the connection.
    assert await manager.execute("slow", {"seconds": 0.01}) == "done"
    assert await manager.execute("get_weather", {"city": "New York"}) == "New York: 22°C, sunny"


async def test_crash_mid_call_raises_and_logs(manager: MCPManager, caplog: pytest.LogCaptureFixture) -> None:
    before = _children()
    await manager.connect("weather", sys.executable, WEATHER_ARGS)
    [child] = _new_children(before)
    with caplog.at_level(logging.ERROR, logger="immagent"), pytest.raises(ToolExecutionError) as info:
        await manager.execute("crash", None)
    assert info.value.tool_name == "crash"
    assert "closed the connection during the call" in str(info.value)
    errors = [r for r in caplog.records if r.name == "immagent" and r.levelno == logging.ERROR]
    assert len(errors) == 1 and "'weather'" in errors[0].getMessage()

    await _assert_gone(child)
    with pytest.raises(ToolExecutionError, match="'weather' that provides this tool has stopped"):
        await manager.execute("get_weather", {"city": "Paris"})
    assert manager.get_all_tools() == []  # a dead server's tools are no longer offered
    await manager.close()


# --- closing ------------------------------------------------------------------------------------------------


async def test_close_terminates_the_subprocess() -> None:
    before = _children()
    mcp = MCPManager()
    await mcp.connect("weather", sys.executable, WEATHER_ARGS)
    [child] = _new_children(before)
    assert "weather_server.py" in " ".join(child.cmdline())
    await mcp.close()
    await _assert_gone(child)
    assert mcp.get_all_tools() == []
    with pytest.raises(ToolExecutionError, match="unknown tool"):
        await mcp.execute("get_weather", {"city": "Paris"})
    await mcp.close()  # idempotent


async def test_connect_call_and_close_from_different_tasks() -> None:
    """Each server lives in its own task, so close() need not run in the task that connected."""
    before = _children()
    mcp = MCPManager()
    await asyncio.create_task(mcp.connect("weather", sys.executable, WEATHER_ARGS))
    [child] = _new_children(before)
    results = await asyncio.gather(
        *(asyncio.create_task(mcp.execute("get_weather", {"city": c})) for c in ("Paris", "Tokyo", "Mars"))
    )
    assert results[:2] == ["Paris: 18°C, light rain", "Tokyo: 26°C, humid, scattered clouds"]
    await asyncio.create_task(mcp.close())
    await _assert_gone(child)


def test_import_does_not_load_mcp() -> None:
    code = "import sys, immagent._mcp; assert 'mcp' not in sys.modules and 'anyio' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": str(WEATHER.parents[1])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=30)


def test_timeouts_must_be_positive() -> None:
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValidationError) as info:
            MCPManager(tool_timeout=bad)
        assert info.value.field == "tool_timeout"
    with pytest.raises(ValidationError):
        MCPManager(connect_timeout=0)
