"""immagent.testing.ScriptedModel: the offline model, reached through LiteLLM's custom-provider path (the
``scripted_model`` and ``immagent_store`` fixtures come from immagent's own pytest plugin)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from immagent import (
    LLMError,
    MCPManager,
    SimpleAgent,
    Store,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    TurnComplete,
)
from immagent.testing import ScriptedModel, ScriptedReply


def agent_for(model: ScriptedModel) -> SimpleAgent:
    return SimpleAgent(name="t", system_prompt="You are a test.", model=model.model)


async def test_queued_replies_come_in_order_then_the_default_echo(scripted_model: ScriptedModel) -> None:
    assert scripted_model.model == "immagent/scripted"
    scripted_model.reply("one", input_tokens=3, output_tokens=1).reply("two", input_tokens=4, output_tokens=2)
    assert scripted_model.pending == 2
    agent = await agent_for(scripted_model).advance("a")
    agent = await agent.advance("b")
    assert scripted_model.pending == 0
    agent = await agent.advance("c")  # the queue is empty: the responder answers
    assert [m.content for m in agent.messages() if m.role == "assistant"] == ["one", "two", "echo: c"]
    assert [(m.input_tokens, m.output_tokens) for m in agent.messages() if m.role == "assistant"] == [
        (3, 1),
        (4, 2),
        (10, 5),
    ]
    assert agent.token_usage() == (17, 8)


async def test_every_request_is_recorded_with_its_messages_and_settings(
    scripted_model: ScriptedModel,
) -> None:
    agent = await agent_for(scripted_model).advance("first")
    await agent.advance("second", temperature=0.25, max_tokens=64)
    first, second = scripted_model.requests
    assert first.messages == [
        {"role": "system", "content": "You are a test."},
        {"role": "user", "content": "first"},
    ]
    assert second.messages[-3:] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "echo: first"},
        {"role": "user", "content": "second"},
    ]
    assert second.params["temperature"] == 0.25 and second.params["max_tokens"] == 64
    assert "temperature" not in first.params
    scripted_model.reset()
    assert scripted_model.requests == [] and scripted_model.pending == 0


async def test_scripted_tool_calls_run_real_tools(
    scripted_model: ScriptedModel, weather_tools: MCPManager
) -> None:
    scripted_model.reply(
        None,
        tool_calls=[("t1", "get_weather", '{"city": "London"}'), ("t2", "get_weather", '{"city": "Mars"}')],
        input_tokens=25,
        output_tokens=9,
    ).reply("London is overcast.")
    agent = await agent_for(scripted_model).advance("London?", mcp=weather_tools)
    roles = [m.role for m in agent.messages()]
    assert roles == ["user", "assistant", "tool", "tool", "assistant"]
    assistant = agent.messages()[1]
    assert assistant.tool_calls is not None
    assert [(c.id, c.name, c.arguments) for c in assistant.tool_calls] == [
        ("t1", "get_weather", '{"city": "London"}'),
        ("t2", "get_weather", '{"city": "Mars"}'),
    ]
    assert (assistant.input_tokens, assistant.output_tokens) == (25, 9)
    assert [m.content for m in agent.messages()[2:4]] == [
        "London: 14°C, overcast",
        "No weather data available for 'Mars'.",
    ]
    first, second = scripted_model.requests
    assert "get_weather" in [t["function"]["name"] for t in first.params["tools"]]
    assert [m["role"] for m in second.messages] == ["system", "user", "assistant", "tool", "tool"]
    assert [m["tool_call_id"] for m in second.messages[3:]] == ["t1", "t2"]
    assert agent.last_response() == "London is overcast."


async def test_fail_raises_llm_error_with_its_status(scripted_model: ScriptedModel) -> None:
    agent = agent_for(scripted_model)
    scripted_model.fail(503)
    with pytest.raises(LLMError) as info:
        await agent.advance("x", max_retries=0)
    assert info.value.status_code == 503
    scripted_model.fail(400)
    with pytest.raises(LLMError, match="HTTP 400") as bad:
        await agent.advance("x", max_retries=3)
    assert bad.value.status_code == 400
    assert len(scripted_model.requests) == 2  # a 400 is not retried

    # A rate limit is retried like a real provider's, and the turn then succeeds.
    scripted_model.fail(429).reply("after the retry")
    new = await agent.advance("x", max_retries=1)
    assert new.last_response() == "after the retry"
    assert len(scripted_model.requests) == 4


async def test_a_slow_reply_hits_the_timeout(scripted_model: ScriptedModel) -> None:
    scripted_model.reply("late", delay=5)
    with pytest.raises(LLMError, match="timed out"):
        await agent_for(scripted_model).advance("x", timeout=0.3, max_retries=0)


async def test_streaming_through_the_scripted_model(
    scripted_model: ScriptedModel, weather_tools: MCPManager
) -> None:
    scripted_model.reply("Let me look.", tool_calls=[("s1", "get_forecast", '{"city": "Berlin", "days": 1}')])
    scripted_model.reply("Berlin will be fine tomorrow.", input_tokens=31, output_tokens=6)
    events = [e async for e in agent_for(scripted_model).advance_stream("Berlin?", mcp=weather_tools)]
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 2  # word by word
    assert "".join(deltas) == "Let me look.Berlin will be fine tomorrow."
    [started] = [e for e in events if isinstance(e, ToolCallStarted)]
    assert started.call.arguments == '{"city": "Berlin", "days": 1}'
    [finished] = [e for e in events if isinstance(e, ToolCallFinished)]
    assert finished.result.startswith("Berlin forecast:")
    complete = events[-1]
    assert isinstance(complete, TurnComplete)
    final = complete.agent.messages()[-1]
    assert (final.content, final.input_tokens, final.output_tokens) == (
        "Berlin will be fine tomorrow.",
        31,
        6,
    )
    assert all(r.params.get("stream") is True for r in scripted_model.requests)


async def test_a_responder_decides_when_nothing_is_queued() -> None:
    def shout(messages: Sequence[dict[str, Any]]) -> ScriptedReply:
        return ScriptedReply(content=str(messages[-1]["content"]).upper(), input_tokens=1, output_tokens=1)

    loud = ScriptedModel("loud", responder=shout).install()
    try:
        agent = await agent_for(loud).advance("hello")
        assert loud.model == "immagent/loud"
        assert agent.last_response() == "HELLO" and agent.token_usage() == (1, 1)
    finally:
        loud.uninstall()
    with pytest.raises(LLMError, match="no scripted model named 'loud'"):
        await agent.advance("again", max_retries=0)


async def test_a_persistent_agent_on_the_plugin_store(
    immagent_store: Store, scripted_model: ScriptedModel
) -> None:
    scripted_model.reply("Stored.", input_tokens=8, output_tokens=2)
    agent = await immagent_store.create_agent(name="p", system_prompt="s", model=scripted_model.model)
    new = await agent.advance("Keep this")
    immagent_store.clear_cache()
    reloaded = await immagent_store.load_agent(new.id)
    assert await reloaded.messages() == await new.messages()
    assert await reloaded.token_usage() == (8, 2)
    assert immagent_store.engine.dialect.name == "sqlite"
