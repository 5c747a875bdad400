"""Tool faults through a real MCP server (examples/weather_server.py over stdio, with its test-only tools).

A tool failure is information for the model, not a failed turn: it becomes a tool message, the model
answers it, and the whole turn commits. The stored turn reloads equal to the one returned.
"""

from __future__ import annotations

import sys

import pytest

from immagent import MCPManager, Store
from tests.reliability._support import Tally
from tests.reliability.conftest import WEATHER
from tests.support.openai_server import ScriptedOpenAIServer

MODEL = "gpt-4o-mini"

#: fault name -> (tool name, JSON arguments as the model wrote them, text the tool message must contain)
TOOL_FAULTS: dict[str, tuple[str, str, str]] = {
    "tool_reports_error": ("fail", '{"message": "the sky fell"}', "the sky fell"),
    "tool_raises_on_bad_value": ("get_forecast", '{"city": "Paris", "days": 99}', "between 1 and 7"),
    "tool_times_out": ("slow", '{"seconds": 5}', "timed out"),
    "unknown_tool": ("no_such_tool", "{}", "unknown tool"),
    "empty_tool_name": ("", "{}", "unknown tool"),
    "arguments_not_json": ("get_weather", '{"city": "Paris"', "not valid JSON"),
    "arguments_json_array": ("get_weather", '["Paris"]', "must be a JSON object"),
    "arguments_json_string": ("get_weather", '"Paris"', "must be a JSON object"),
    "arguments_wrong_type": ("get_forecast", '{"city": "Paris", "days": "many"}', "Error"),
    "arguments_missing": ("get_weather", "{}", "Error"),
    "arguments_unexpected_key": ("get_weather", '{"town": "Paris"}', "Error"),
    "arguments_nul_escape": ("get_weather", '{"city": "Pa\\u0000ris"}', "No weather data"),
}


async def _turn_with_tool_call(
    store: Store, llm: ScriptedOpenAIServer, mcp: MCPManager, name: str, arguments: str, *, good: bool = True
) -> tuple[str, str]:
    """One turn in which the model calls ``name(arguments)`` (next to a good call when ``good``), then
    answers. Returns the failed call's tool message and the final answer, after checking the stored turn."""
    root = await store.create_agent(name="tools", system_prompt="p", model=MODEL)
    calls = [("bad", name, arguments)] + ([("good", "get_weather", '{"city": "Tokyo"}')] if good else [])
    llm.reply(None, tool_calls=calls)
    llm.reply("handled it")
    new = await root.advance("use the tools", mcp=mcp, max_retries=0, timeout=10.0)

    history = await new.messages()
    assert [m.role for m in history] == ["user", "assistant", *["tool"] * len(calls), "assistant"]
    tool_messages = {m.tool_call_id: m.content for m in history if m.role == "tool"}
    if good:
        assert tool_messages["good"] == "Tokyo: 26°C, humid, scattered clouds"
    # the model saw every result before answering
    sent = llm.last_request["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", *["tool"] * len(calls)]

    store.clear_cache()  # what was committed is what was returned
    assert await (await store.load_agent(new.id)).messages() == history
    assert new.parent_id == root.id
    return str(tool_messages["bad"]), str(await new.last_response())


@pytest.mark.parametrize("fault", sorted(TOOL_FAULTS))
async def test_a_tool_fault_becomes_a_tool_message_and_the_turn_commits(
    store: Store, llm: ScriptedOpenAIServer, weather: MCPManager, tally: Tally, fault: str
) -> None:
    name, arguments, expected = TOOL_FAULTS[fault]
    if name == "slow":
        weather.tool_timeout = 0.5
    try:
        message, answer = await _turn_with_tool_call(store, llm, weather, name, arguments)
    finally:
        weather.tool_timeout = 5.0
    assert expected in message
    assert answer == "handled it"
    tally.add("tool faults injected")
    tally.add("tool faults survived")


async def test_a_tool_server_crash_mid_call_becomes_a_tool_message_and_the_next_turn_works(
    store: Store, llm: ScriptedOpenAIServer, tally: Tally
) -> None:
    async with MCPManager(tool_timeout=5.0) as mcp:
        await mcp.connect("doomed", sys.executable, [str(WEATHER), "--with-test-tools"])
        message, answer = await _turn_with_tool_call(store, llm, mcp, "crash", "{}", good=False)
        assert "closed the connection" in message
        assert answer == "handled it"
        assert mcp.get_all_tools() == []  # a dead server's tools are no longer offered

        agent = await store.create_agent(name="after", system_prompt="p", model=MODEL)
        llm.reply(None, tool_calls=[("again", "get_weather", '{"city": "Paris"}')])
        llm.reply("still here")
        new = await agent.advance("and now?", mcp=mcp, max_retries=0)
        tool = next(m for m in await new.messages() if m.role == "tool")
        assert "has stopped" in (tool.content or "")
        assert await new.last_response() == "still here"
    tally.add("tool faults injected")
    tally.add("tool faults survived")


async def test_a_tool_call_without_any_tool_provider_is_answered_not_raised(
    store: Store, llm: ScriptedOpenAIServer, tally: Tally
) -> None:
    root = await store.create_agent(name="no tools", system_prompt="p", model=MODEL)
    llm.reply(None, tool_calls=[("c1", "get_weather", '{"city": "Paris"}')])
    llm.reply("fine")
    new = await root.advance("hi", max_retries=0)
    tool = next(m for m in await new.messages() if m.role == "tool")
    assert "no tools are available" in (tool.content or "")
    tally.add("tool faults injected")
    tally.add("tool faults survived")
