"""immagent.testing.ScriptedModel: the offline model, reached through LiteLLM's custom-provider path (the
``scripted_model`` and ``immagent_store`` fixtures come from immagent's own pytest plugin)."""

from __future__ import annotations

import re
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
from immagent.testing import ScriptedModel, ScriptedReply, ScriptedRequest, echo


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


async def test_reply_takes_a_scripted_reply_as_it_is(
    scripted_model: ScriptedModel, weather_tools: MCPManager
) -> None:
    call = ("r1", "get_weather", '{"city": "Cairo"}')
    scripted_model.reply(ScriptedReply(content=None, tool_calls=[call], input_tokens=7, output_tokens=2))
    scripted_model.reply(ScriptedReply("Hot and dry.", input_tokens=9, output_tokens=3))
    agent = await agent_for(scripted_model).advance("Cairo?", mcp=weather_tools)
    asked, result, final = agent.messages()[1:]
    assert [(c.id, c.name, c.arguments) for c in asked.tool_calls or ()] == [call]
    assert result.content == "Cairo: 34°C, hot and dry"
    assert (final.content, final.input_tokens, final.output_tokens) == ("Hot and dry.", 9, 3)
    assert agent.token_usage() == (16, 5)


BAD_CALLS: list[tuple[str, Any, type[Exception], str]] = [
    ("a number as the text", lambda m: m.reply(42), TypeError, "reply() takes the reply's text (a str"),
    (
        "an OpenAI message as the text",
        lambda m: m.reply({"role": "assistant", "content": "hi"}),
        TypeError,
        "or a ScriptedReply, got dict",
    ),
    (
        "a ScriptedReply with keywords beside it",
        lambda m: m.reply(ScriptedReply("hi"), input_tokens=3),
        TypeError,
        "reply() takes a ScriptedReply alone",
    ),
    (
        "tool arguments as a dict",
        lambda m: m.reply(None, tool_calls=[("c1", "get_weather", {"city": "Paris"})]),
        TypeError,
        "(the arguments are JSON text: json.dumps(...))",
    ),
    (
        "one tool call not in a list",
        lambda m: m.reply(None, tool_calls=("c1", "get_weather", "{}")),
        TypeError,
        "tool_calls: each call is one of (id, name, arguments_json) tuples of str",
    ),
    (
        "tool calls as a string",
        lambda m: m.reply(None, tool_calls='[["c1", "get_weather", "{}"]]'),
        TypeError,
        "tool_calls: a list of (id, name, arguments_json)",
    ),
    ("tokens as text", lambda m: m.reply("x", input_tokens="3"), TypeError, "input_tokens: a whole number"),
    ("negative tokens", lambda m: m.reply("x", output_tokens=-1), ValueError, "output_tokens: must be >= 0"),
    ("a delay as text", lambda m: m.reply("x", delay="1"), TypeError, "delay: seconds as a number"),
    ("a negative delay", lambda m: m.reply("x", delay=-1), ValueError, "delay: seconds must be finite"),
    ("a NaN delay", lambda m: m.reply("x", delay=float("nan")), ValueError, "delay: seconds must be finite"),
    ("a status as text", lambda m: m.fail("500"), TypeError, "status: an HTTP error status as an int"),
    ("a success status", lambda m: m.fail(200), ValueError, "from 400 to 599, e.g. fail(503), got 200"),
    ("a bool status", lambda m: m.fail(True), TypeError, "status: an HTTP error status as an int"),
    (
        "a responder that is not callable",
        lambda m: setattr(m, "responder", "echo"),
        TypeError,
        "responder: a function fn(messages) -> ScriptedReply, got str",
    ),
]


@pytest.mark.parametrize(("case", "call", "error", "message"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_a_misused_helper_fails_at_the_call_naming_the_right_usage(
    scripted_model: ScriptedModel, case: str, call: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        call(scripted_model)
    assert message in str(info.value), str(info.value)
    assert scripted_model.pending == 0  # nothing half-queued
    assert scripted_model.responder is echo


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: ScriptedModel(echo), TypeError, "(pass a responder as ScriptedModel(responder=fn))"),
        (lambda: ScriptedModel(""), ValueError, "name: a non-empty name"),
        (lambda: ScriptedModel(responder="echo"), TypeError, "responder: a function fn(messages)"),
        (lambda: ScriptedReply(content=3), TypeError, "content: the reply's text must be a str"),
        (lambda: ScriptedReply(error=700), ValueError, "status: an HTTP error status from 400 to 599"),
        (lambda: ScriptedReply(tool_calls=[("only", "two")]), TypeError, "tool_calls: each call is one of"),
    ],
)
def test_a_misbuilt_model_or_reply_fails_where_it_is_made(
    make: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        make()


def test_a_scripted_reply_keeps_a_list_of_tool_calls_as_a_tuple() -> None:
    reply = ScriptedReply(None, tool_calls=[["c1", "get_weather", "{}"]])
    assert reply.tool_calls == (("c1", "get_weather", "{}"),)
    assert hash(reply) == hash(ScriptedReply(None, tool_calls=(("c1", "get_weather", "{}"),)))


async def test_a_responder_that_returns_no_scripted_reply_is_named_in_the_error() -> None:
    sloppy = ScriptedModel("sloppy", responder=lambda messages: "plain text").install()  # type: ignore[arg-type,return-value]
    try:
        with pytest.raises(LLMError) as info:
            await agent_for(sloppy).advance("hi", max_retries=2)
    finally:
        sloppy.uninstall()
    assert "the responder of ScriptedModel('sloppy') returned str, not a ScriptedReply" in str(info.value)
    assert len(sloppy.requests) == 1  # a mistake in the test is not retried like a provider's failure


async def test_a_subclass_answers_from_the_whole_request(weather_tools: MCPManager) -> None:
    class ToolLister(ScriptedModel):
        def respond(self, request: ScriptedRequest) -> ScriptedReply:
            names = sorted(t["function"]["name"] for t in request.tools)
            return ScriptedReply(f"{len(request.messages)} messages; tools: {', '.join(names) or 'none'}")

    lister = ToolLister("lister").install()
    try:
        with_tools = await agent_for(lister).advance("which tools?", mcp=weather_tools)
        without = await agent_for(lister).advance("and now?")
    finally:
        lister.uninstall()
    offered = sorted(t["function"]["name"] for t in weather_tools.get_all_tools())
    assert "get_weather" in offered
    assert with_tools.last_response() == f"2 messages; tools: {', '.join(offered)}"
    assert without.last_response() == "2 messages; tools: none"
