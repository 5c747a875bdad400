"""The tool loop of a turn against real MCP servers (the weather server over stdio and in-process HTTP),
with the scripted OpenAI-compatible server as the model and every store backend."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sys
import time
from typing import Any

import pytest

from immagent import (
    LLMError,
    MCPManager,
    PersistentAgent,
    SimpleAgent,
    Store,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnComplete,
)
from tests.support.db import InjectedFault, StatementFault, row_counts, snapshot
from tests.support.mcp import WEATHER_ARGS
from tests.support.openai_server import Reply, ScriptedOpenAIServer

MODEL = "gpt-4o-mini"
PROMPT = "You answer weather questions with the tools."


def assert_tool_calls_answered(messages: list[dict[str, Any]]) -> None:
    """What an OpenAI-style server checks: every assistant tool call is answered by a tool message right
    after it (one per call, matching ids), and no tool message answers anything else."""
    i = 0
    while i < len(messages):
        message = messages[i]
        assert message["role"] != "tool", f"tool message {i} answers no assistant tool call"
        i += 1
        if message["role"] == "assistant" and message.get("tool_calls"):
            ids = [call["id"] for call in message["tool_calls"]]
            answers = messages[i : i + len(ids)]
            assert [m["role"] for m in answers] == ["tool"] * len(ids), f"unanswered tool calls {ids}"
            assert [m["tool_call_id"] for m in answers] == ids
            i += len(ids)


async def new_agent(store: Store) -> PersistentAgent:
    return await store.create_agent(name="weather", system_prompt=PROMPT, model=MODEL)


async def test_one_tool_round_feeds_the_result_back_and_commits_the_whole_turn(
    store: Store, llm: ScriptedOpenAIServer, weather_tools: MCPManager
) -> None:
    agent = await new_agent(store)
    llm.reply(
        None, tool_calls=[("call_1", "get_weather", '{"city": "Paris"}')], input_tokens=30, output_tokens=7
    )
    llm.reply("It is 18°C with light rain in Paris.", input_tokens=52, output_tokens=11)
    before = await row_counts(store.engine)

    new = await agent.advance("What is the weather in Paris?", mcp=weather_tools)

    first, second = llm.requests
    assert [t["function"]["name"] for t in first["tools"]][:2] == ["get_weather", "get_forecast"]
    assert first["messages"] == [
        {"role": "system", "content": PROMPT},
        {"role": "user", "content": "What is the weather in Paris?"},
    ]
    # The second request: everything before, the assistant's tool call, then the tool's result.
    assistant, tool = second["messages"][2:]
    assert second["messages"][:2] == first["messages"]
    assert assistant["role"] == "assistant" and not assistant.get("content")
    assert assistant["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert tool == {"role": "tool", "content": "Paris: 18°C, light rain", "tool_call_id": "call_1"}
    assert second["tools"] == first["tools"]

    messages = await new.messages()
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1].tool_calls is not None and messages[1].tool_calls[0].name == "get_weather"
    assert (messages[1].input_tokens, messages[1].output_tokens) == (30, 7)
    assert messages[2].tool_call_id == "call_1" and messages[2].content == "Paris: 18°C, light rain"
    assert (messages[2].input_tokens, messages[2].output_tokens) == (None, None)
    assert [m.depth for m in messages] == [0, 1, 2, 3]
    assert all(m.parent_id == p.id for p, m in itertools.pairwise(messages))
    assert await new.last_response() == "It is 18°C with light rain in Paris."
    assert await new.token_usage() == (82, 18)

    # One turn, one new state: four messages and one agent, nothing else.
    after = await row_counts(store.engine)
    assert after["immagent_messages"] - before["immagent_messages"] == 4
    assert after["immagent_agents"] - before["immagent_agents"] == 1

    # Reloaded with a cold cache, the turn is exactly what advance() returned.
    store.clear_cache()
    reloaded = await store.load_agent(new.id)
    assert reloaded == new
    assert await reloaded.messages() == messages


async def test_tool_calls_of_one_round_run_concurrently_and_answer_in_call_order(
    store: Store, llm: ScriptedOpenAIServer, weather_tools: MCPManager
) -> None:
    agent = await new_agent(store)
    llm.reply(
        "Checking.",
        tool_calls=[
            ("slow_a", "slow", '{"seconds": 0.5}'),
            ("slow_b", "slow", '{"seconds": 0.5}'),
            ("fast", "get_weather", '{"city": "Cairo"}'),  # finishes first, answered last
        ],
    )
    llm.reply("All done.")
    started: dict[str, float] = {}
    finished: dict[str, float] = {}
    events: list[Any] = []
    async for event in agent.advance_stream("Go", mcp=weather_tools):
        events.append(event)
        if isinstance(event, ToolCallStarted):
            started[event.call.id] = time.monotonic()
        elif isinstance(event, ToolCallFinished):
            finished[event.call.id] = time.monotonic()
            assert not event.is_error, event.result

    elapsed = max(finished.values()) - min(started.values())
    assert 0.5 <= elapsed < 0.9, f"two 0.5 s calls took {elapsed:.2f} s: they did not overlap"

    kinds = [type(e).__name__ for e in events]
    assert kinds.index("ToolCallStarted") > kinds.index("TextDelta")
    assert kinds[-1] == "TurnComplete"
    complete = events[-1]
    assert isinstance(complete, TurnComplete)
    tools = [m for m in complete.messages if m.role == "tool"]
    assert [(m.tool_call_id, m.content) for m in tools] == [
        ("slow_a", "done"),
        ("slow_b", "done"),
        ("fast", "Cairo: 34°C, hot and dry"),
    ]
    assert [m["tool_call_id"] for m in llm.requests[1]["messages"] if m["role"] == "tool"] == [
        "slow_a",
        "slow_b",
        "fast",
    ]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Checking.All done."
    store.clear_cache()
    assert await (await store.load_agent(complete.agent.id)).messages() == await complete.agent.messages()


async def test_each_tool_failure_becomes_a_tool_message_and_the_turn_finishes(
    store: Store, llm: ScriptedOpenAIServer, weather_tools: MCPManager
) -> None:
    agent = await new_agent(store)
    llm.reply(
        None,
        tool_calls=[
            ("failing", "fail", '{"message": "the barometer exploded"}'),
            ("unknown", "get_wether", '{"city": "Paris"}'),
            ("bad_json", "get_weather", '{"city": Paris'),
            ("too_slow", "slow", '{"seconds": 5}'),
        ],
    )
    llm.reply("Sorry, the weather service is having trouble.")
    weather_tools.tool_timeout = 0.3
    try:
        started = time.monotonic()
        new = await agent.advance("Weather?", mcp=weather_tools)
        assert time.monotonic() - started < 4  # the slow call was cut at its timeout
    finally:
        weather_tools.tool_timeout = 10.0

    messages = await new.messages()
    assert [m.role for m in messages] == ["user", "assistant", "tool", "tool", "tool", "tool", "assistant"]
    results = {m.tool_call_id: m.content or "" for m in messages if m.role == "tool"}
    assert results["failing"].startswith("Error: tool 'fail': the tool reported an error")
    assert "the barometer exploded" in results["failing"]
    assert results["unknown"].startswith("Error: tool 'get_wether': unknown tool")
    assert "get_weather" in results["unknown"]  # the model is told what it can call instead
    assert results["bad_json"].startswith("Error: tool 'get_weather': arguments are not valid JSON")
    assert results["too_slow"] == "Error: tool 'slow': timed out after 0.3 s"

    # The model read every failure, in call order, and answered; the whole turn is committed.
    sent = llm.requests[1]["messages"]
    assert [(m["tool_call_id"], m["content"]) for m in sent if m["role"] == "tool"] == list(results.items())
    assert_tool_calls_answered(sent)
    assert await new.last_response() == "Sorry, the weather service is having trouble."
    store.clear_cache()
    assert await (await store.load_agent(new.id)).messages() == messages

    # None of it broke the connection: the next turn's tool call works.
    llm.reply(None, tool_calls=[("again", "get_weather", '{"city": "Berlin"}')])
    llm.reply("16°C.")
    newer = await new.advance("And Berlin?", mcp=weather_tools)
    assert (await newer.messages())[-2].content == "Berlin: 16°C, partly cloudy"


async def test_a_server_that_dies_mid_call_becomes_a_tool_message_and_is_logged(
    store: Store, llm: ScriptedOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    agent = await new_agent(store)
    llm.reply(None, tool_calls=[("boom", "crash", "{}")])
    llm.reply("The weather service went away.")
    async with MCPManager(tool_timeout=10.0) as mcp:
        await mcp.connect("weather", sys.executable, WEATHER_ARGS)
        with caplog.at_level(logging.ERROR, logger="immagent"):
            new = await agent.advance("Crash it", mcp=mcp)
        assert mcp.get_all_tools() == []  # its tools are no longer offered

    tool = (await new.messages())[2]
    assert tool.tool_call_id == "boom"
    assert tool.content is not None and tool.content.startswith(
        "Error: tool 'crash': the MCP server 'weather'"
    )
    assert "closed the connection during the call" in tool.content
    errors = [r.getMessage() for r in caplog.records if r.name == "immagent" and r.levelno == logging.ERROR]
    assert any("'weather'" in e and "'crash'" in e for e in errors), errors
    assert await new.last_response() == "The weather service went away."


@pytest.mark.parametrize("rounds", [1, 2])
async def test_max_tool_rounds_ends_the_turn_after_the_tool_results_with_a_warning(
    store: Store,
    llm: ScriptedOpenAIServer,
    weather_tools: MCPManager,
    caplog: pytest.LogCaptureFixture,
    rounds: int,
) -> None:
    agent = await new_agent(store)
    ids = itertools.count(1)
    # A model that never stops asking.
    llm.default = lambda request: Reply(
        None, tool_calls=((f"call_{next(ids)}", "get_weather", '{"city": "Tokyo"}'),)
    )
    with caplog.at_level(logging.WARNING, logger="immagent"):
        new = await agent.advance("Loop forever", mcp=weather_tools, max_tool_rounds=rounds)

    assert len(llm.requests) == rounds
    messages = await new.messages()
    assert [m.role for m in messages] == ["user"] + ["assistant", "tool"] * rounds
    assert messages[-1].content == "Tokyo: 26°C, humid, scattered clouds"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"max_tool_rounds={rounds}" in w for w in warnings), warnings
    assert await new.last_response() is None  # the model never answered in words

    # The history stays valid for the next turn: every tool call of it is answered.
    llm.default = None
    llm.reply("Tokyo is 26°C.")
    final = await new.advance("Just tell me.", mcp=weather_tools)
    sent = llm.last_request["messages"]
    assert sent[-1] == {"role": "user", "content": "Just tell me."}
    assert_tool_calls_answered(sent)
    assert await final.last_response() == "Tokyo is 26°C."
    store.clear_cache()
    assert await (await store.load_agent(final.id)).messages() == await final.messages()


async def test_a_model_failure_after_a_tool_round_aborts_the_turn_and_writes_nothing(
    store: Store, llm: ScriptedOpenAIServer, weather_tools: MCPManager
) -> None:
    agent = await new_agent(store)
    before = await snapshot(store.engine)
    llm.reply(None, tool_calls=[("c", "get_weather", '{"city": "London"}')])
    llm.fail(400, "context too long")
    with pytest.raises(LLMError, match="HTTP 400"):
        await agent.advance("Weather?", mcp=weather_tools)
    assert len(llm.requests) == 2  # the tool ran, the second model call failed
    assert await snapshot(store.engine) == before
    assert await agent.messages() == ()

    llm.reply(None, tool_calls=[("c", "get_weather", '{"city": "London"}')])
    llm.reply("14°C.")
    new = await agent.advance("Weather?", mcp=weather_tools)  # the same turn, retried, succeeds
    assert [m.role for m in await new.messages()] == ["user", "assistant", "tool", "assistant"]


@pytest.mark.parametrize("weather_tools", ["http"], indirect=True)  # the transport does not matter here
@pytest.mark.parametrize("at", [1, 2, "commit"], ids=["messages-insert", "agent-insert", "commit"])
async def test_a_tool_turn_is_written_in_one_transaction(
    store: Store, llm: ScriptedOpenAIServer, weather_tools: MCPManager, at: int | str
) -> None:
    """A write that fails at any statement of the turn's transaction leaves no message and no state."""
    agent = await new_agent(store)
    before = await snapshot(store.engine)
    for _ in range(2):
        llm.reply(None, tool_calls=[("w", "get_weather", '{"city": "Paris"}')])
        llm.reply("Rainy.")
    fault = StatementFault(store.engine, at=at)
    with fault.armed(), pytest.raises(InjectedFault):
        await agent.advance("Weather?", mcp=weather_tools)
    assert fault.fired
    assert await snapshot(store.engine) == before

    new = await agent.advance("Weather?", mcp=weather_tools)  # nothing half-written is in the way
    assert [m.role for m in await new.messages()] == ["user", "assistant", "tool", "assistant"]
    if at == "commit":  # the transaction held one INSERT for every message of the turn, one for the state
        assert [" ".join(s.split()[:3]) for s in fault.seen] == [
            "INSERT INTO immagent_messages",
            "INSERT INTO immagent_agents",
        ]


async def test_cancelling_a_turn_during_a_tool_call_propagates_and_writes_nothing(
    store: Store, llm: ScriptedOpenAIServer, weather_tools: MCPManager
) -> None:
    agent = await new_agent(store)
    before = await snapshot(store.engine)
    llm.reply(
        None, tool_calls=[("long", "slow", '{"seconds": 5}'), ("quick", "get_weather", '{"city": "Paris"}')]
    )
    turn = asyncio.create_task(agent.advance("Wait", mcp=weather_tools))
    async with asyncio.timeout(5):
        while not llm.requests:  # noqa: ASYNC110 - filled by the server's thread
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # the model has answered; the slow tool is running
    assert not turn.done()
    turn.cancel()
    with pytest.raises(asyncio.CancelledError):
        await turn
    assert await snapshot(store.engine) == before
    assert len(llm.requests) == 1
    assert await weather_tools.execute("get_weather", {"city": "Paris"}) == "Paris: 18°C, light rain"


class _BrokenProvider:
    """A user's own tool provider (the ToolProvider protocol, not MCP) whose tool raises a plain error."""

    def get_all_tools(self) -> list[dict[str, Any]]:
        parameters = {"type": "object", "properties": {}}
        return [
            {"type": "function", "function": {"name": "disk", "description": "d", "parameters": parameters}}
        ]

    async def execute(self, name: str, arguments: str | dict[str, Any] | None) -> str:
        raise RuntimeError(f"{name} is on fire")


async def test_any_exception_of_a_custom_tool_provider_becomes_a_tool_message(
    llm: ScriptedOpenAIServer,
) -> None:
    llm.reply(None, tool_calls=[("d", "disk", "{}")])
    llm.reply("The disk tool is broken.")
    events = [
        e
        async for e in SimpleAgent(name="a", system_prompt="p", model=MODEL).advance_stream(
            "Check the disk", mcp=_BrokenProvider()
        )
    ]
    [finished] = [e for e in events if isinstance(e, ToolCallFinished)]
    assert finished.is_error and finished.result == "Error: disk is on fire"
    complete = events[-1]
    assert isinstance(complete, TurnComplete)
    assert complete.agent.messages()[2].content == "Error: disk is on fire"
    assert complete.agent.last_response() == "The disk tool is broken."
    assert json.loads(json.dumps(llm.requests[0]["tools"]))[0]["function"]["name"] == "disk"


async def test_a_tool_call_without_tools_tells_the_model_none_are_available(
    llm: ScriptedOpenAIServer,
) -> None:
    llm.reply(None, tool_calls=[("x", "get_weather", '{"city": "Paris"}')])
    llm.reply("I cannot check.")
    agent = await SimpleAgent(name="a", system_prompt="p", model=MODEL).advance("Weather?")
    assert "tools" not in llm.requests[0]
    tool = agent.messages()[2]
    assert (
        tool.tool_call_id == "x" and tool.content == "Error: no tools are available; 'get_weather' cannot run"
    )
    assert agent.last_response() == "I cannot check."
