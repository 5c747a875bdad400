"""SimpleAgent: the in-memory agent, on the same pure core as PersistentAgent (the scripted OpenAI-compatible
server as the model, the weather MCP server for tools)."""

from __future__ import annotations

import pydantic
import pytest

from immagent import (
    LLMError,
    MCPManager,
    Message,
    PersistentAgent,
    SimpleAgent,
    Store,
    TextDelta,
    ToolCallFinished,
    TurnComplete,
    ValidationError,
)
from tests.support.openai_server import ScriptedOpenAIServer

MODEL = "gpt-4o-mini"


def simple(**overrides: object) -> SimpleAgent:
    fields: dict[str, object] = {"name": "helper", "system_prompt": "Be brief.", "model": MODEL, **overrides}
    return SimpleAgent(**fields)  # type: ignore[arg-type]


def test_a_fresh_agent_has_no_history() -> None:
    agent = simple(metadata={"team": "x"}, model_settings={"temperature": 0.2})
    assert agent.messages() == () and agent.get_messages() == ()
    assert agent.last_response() is None
    assert agent.token_usage() == (0, 0)
    assert agent.metadata == {"team": "x"} and agent.model_settings == {"temperature": 0.2}


async def test_advance_returns_a_new_agent_and_leaves_the_old_one_unchanged(
    llm: ScriptedOpenAIServer,
) -> None:
    agent = simple()
    llm.reply("first", input_tokens=7, output_tokens=2)
    one = await agent.advance("hello")
    llm.reply("second", input_tokens=12, output_tokens=3)
    two = await one.advance("again", temperature=0.5)

    assert agent.messages() == ()
    assert [m.content for m in one.messages()] == ["hello", "first"]
    assert [m.content for m in two.messages()] == ["hello", "first", "again", "second"]
    assert two.messages()[:2] == one.messages()  # shared, not copied or changed
    assert two.last_response() == "second" and one.last_response() == "first"
    assert two.token_usage() == (19, 5)
    assert llm.last_request["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "first"},
        {"role": "user", "content": "again"},
    ]
    assert llm.last_request["temperature"] == 0.5
    with pytest.raises(pydantic.ValidationError):
        two.name = "renamed"  # type: ignore[misc]


async def test_a_failed_model_call_raises_and_changes_nothing(llm: ScriptedOpenAIServer) -> None:
    agent = await simple().advance("hi")
    llm.fail(401, "bad key")
    with pytest.raises(LLMError):
        await agent.advance("again", max_retries=0)
    assert [m.content for m in agent.messages()] == ["hi", "echo: hi"]


async def test_clone_and_with_metadata(llm: ScriptedOpenAIServer) -> None:
    agent = await simple(metadata={"v": 1}).advance("hi")
    twin = agent.clone()
    assert twin == agent and twin.messages() == agent.messages()
    tagged = agent.with_metadata({"v": 2, "tags": ["a"]})
    assert tagged.metadata == {"v": 2, "tags": ["a"]} and agent.metadata == {"v": 1}
    assert tagged.messages() == agent.messages()
    with pytest.raises(ValidationError) as info:
        agent.with_metadata({"when": object()})
    assert info.value.field == "metadata"

    # The clone goes its own way; the original does not see it.
    later = await twin.advance("more")
    assert len(later.messages()) == 4 and len(agent.messages()) == 2


async def test_invalid_input_is_refused_before_any_model_call(llm: ScriptedOpenAIServer) -> None:
    with pytest.raises(ValidationError) as info:
        simple(name="")
    assert info.value.field == "name"
    with pytest.raises(ValidationError) as info:
        simple(model_settings={"api_key": "sk-secret"})
    assert info.value.field == "model_settings"
    agent = simple()
    with pytest.raises(ValidationError) as info:
        await agent.advance("x", max_tool_rounds=0)
    assert info.value.field == "max_tool_rounds"
    with pytest.raises(ValidationError):
        await agent.advance("x", temperature=9.0)
    assert llm.requests == []


async def test_advance_stream_yields_deltas_tool_events_and_the_new_agent(
    llm: ScriptedOpenAIServer, weather_tools: MCPManager
) -> None:
    agent = simple()
    llm.reply(None, tool_calls=[("w", "get_weather", '{"city": "Sydney"}')])
    llm.reply("Sydney is clear and 20°C.")
    events = [e async for e in agent.advance_stream("Sydney?", mcp=weather_tools)]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Sydney is clear and 20°C."
    [finished] = [e for e in events if isinstance(e, ToolCallFinished)]
    assert finished.result == "Sydney: 20°C, clear skies" and not finished.is_error
    complete = events[-1]
    assert isinstance(complete, TurnComplete) and isinstance(complete.agent, SimpleAgent)
    assert complete.agent.messages() == complete.messages
    assert [m.role for m in complete.messages] == ["user", "assistant", "tool", "assistant"]
    assert agent.messages() == ()


def _script(llm: ScriptedOpenAIServer) -> None:
    """One conversation: a plain turn, then a turn with two tool calls in one round."""
    llm.reply("Hello! Ask me about the weather.", input_tokens=20, output_tokens=8)
    llm.reply(
        None,
        tool_calls=[
            ("a", "get_weather", '{"city": "Paris"}'),
            ("b", "get_forecast", '{"city": "Paris", "days": 2}'),
        ],
        input_tokens=40,
        output_tokens=12,
    )
    llm.reply("Paris: 18°C and rain; drier later.", input_tokens=90, output_tokens=10)


async def test_simple_and_persistent_agents_give_the_same_messages_for_the_same_conversation(
    store: Store, llm: ScriptedOpenAIServer, weather_tools: MCPManager
) -> None:
    _script(llm)
    memory = simple()
    memory = await memory.advance("Hi")
    memory = await memory.advance("Paris today and tomorrow?", mcp=weather_tools)
    simple_requests = list(llm.requests)

    llm.reset()
    _script(llm)
    persistent: PersistentAgent = await store.create_agent(
        name="helper", system_prompt="Be brief.", model=MODEL
    )
    persistent = await persistent.advance("Hi")
    persistent = await persistent.advance("Paris today and tomorrow?", mcp=weather_tools)
    store.clear_cache()
    stored = await (await store.load_agent(persistent.id)).messages()

    def content(messages: tuple[Message, ...]) -> list[tuple[object, ...]]:
        return [
            (m.role, m.content, m.tool_calls, m.tool_call_id, m.input_tokens, m.output_tokens, m.depth)
            for m in messages
        ]

    assert len(stored) == 7
    assert content(memory.messages()) == content(stored)
    assert all(a.same_content(b) for a, b in zip(memory.messages(), stored, strict=True))
    assert llm.requests == simple_requests  # the model was asked exactly the same things
    assert memory.last_response() == await persistent.last_response()
    assert memory.token_usage() == await persistent.token_usage() == (150, 30)
