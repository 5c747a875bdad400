"""immagent._llm against the scripted OpenAI-compatible server, over real HTTP, through the real LiteLLM."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from immagent import _llm
from immagent._errors import LLMError
from immagent._llm import Completion, TextDelta
from immagent._messages import ToolCall
from tests.support.openai_server import Reply, ScriptedOpenAIServer

MODEL = "gpt-4o-mini"
HELLO = [{"role": "user", "content": "hi"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


async def complete(
    *,
    model: str = MODEL,
    messages: list[dict[str, Any]] | None = None,
    tools: list[dict[str, Any]] | None = None,
    settings: dict[str, Any] | None = None,
    timeout: float = 5.0,
    max_retries: int = 0,
) -> Completion:
    return await _llm.complete(
        model=model,
        messages=messages or HELLO,
        tools=tools,
        settings=settings or {},
        timeout=timeout,
        max_retries=max_retries,
    )


async def stream(
    *,
    tools: list[dict[str, Any]] | None = None,
    timeout: float = 5.0,
    max_retries: int = 0,
) -> list[_llm.StreamEvent]:
    return [
        event
        async for event in _llm.stream(
            model=MODEL, messages=HELLO, tools=tools, settings={}, timeout=timeout, max_retries=max_retries
        )
    ]


# -- replies ----------------------------------------------------------------------------------------------


async def test_text_reply_with_token_counts(llm: ScriptedOpenAIServer) -> None:
    llm.reply("Hello!", input_tokens=12, output_tokens=3)
    completion = await complete()
    assert completion == Completion(content="Hello!", tool_calls=(), input_tokens=12, output_tokens=3)
    assert llm.last_request["model"] == MODEL
    assert llm.last_request["messages"] == HELLO
    assert "tools" not in llm.last_request


async def test_default_reply_echoes_the_last_user_message(llm: ScriptedOpenAIServer) -> None:
    completion = await complete(model="openai/anything", messages=[{"role": "user", "content": "ping"}])
    assert completion.content == "echo: ping"
    assert llm.last_request["model"] == "anything"


async def test_tool_calls_are_parsed(llm: ScriptedOpenAIServer) -> None:
    llm.reply(
        None,
        tool_calls=[("call_1", "get_weather", '{"city": "Paris"}'), ("call_2", "get_weather", "{}")],
    )
    completion = await complete(tools=[WEATHER_TOOL])
    assert completion.content is None
    assert completion.tool_calls == (
        ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}'),
        ToolCall(id="call_2", name="get_weather", arguments="{}"),
    )
    assert llm.last_request["tools"] == [WEATHER_TOOL]


async def test_empty_tool_list_is_not_sent(llm: ScriptedOpenAIServer) -> None:
    await complete(tools=[])
    assert "tools" not in llm.last_request


async def test_settings_reach_the_request_body(llm: ScriptedOpenAIServer) -> None:
    await complete(settings={"temperature": 0.25, "max_tokens": 64, "top_p": 0.5})
    body = llm.last_request
    assert (body["temperature"], body["max_tokens"], body["top_p"]) == (0.25, 64, 0.5)


async def test_settings_cannot_override_what_the_wrapper_owns(llm: ScriptedOpenAIServer) -> None:
    llm.fail(500)
    with pytest.raises(LLMError):
        await complete(settings={"stream": True, "num_retries": 5, "max_retries": 5, "model": "other"})
    assert len(llm.requests) == 1
    assert llm.last_request["model"] == MODEL
    assert not llm.last_request.get("stream")


async def test_many_concurrent_calls_are_served_in_parallel(llm: ScriptedOpenAIServer) -> None:
    llm.default = lambda request: Reply(content="slow", delay=0.4)
    started = time.monotonic()
    results = await asyncio.gather(*(complete() for _ in range(64)))
    assert time.monotonic() - started < 3.0  # 25 s if the server served them one by one
    assert [r.content for r in results] == ["slow"] * 64
    assert len(llm.requests) == 64


# -- retries ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500])
async def test_one_attempt_is_one_http_request(llm: ScriptedOpenAIServer, status: int) -> None:
    """LiteLLM's and the OpenAI client's own retries are off: max_retries=0 means one request."""
    llm.fail(status, retry_after=0)
    with pytest.raises(LLMError) as info:
        await complete(max_retries=0)
    assert info.value.status_code == status
    assert info.value.model == MODEL
    assert len(llm.requests) == 1


async def test_rate_limit_then_success_is_retried(
    llm: ScriptedOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    llm.fail(429, "slow down", retry_after=0)
    llm.reply("made it")
    with caplog.at_level(logging.WARNING, logger="immagent"):
        completion = await complete(max_retries=1)
    assert completion.content == "made it"
    assert len(llm.requests) == 2
    retries = [r for r in caplog.records if r.name == "immagent" and "retry 1/1" in r.getMessage()]
    assert len(retries) == 1 and "HTTP 429" in retries[0].getMessage()


async def test_retry_after_is_honoured(llm: ScriptedOpenAIServer) -> None:
    llm.fail(503, retry_after=0.3)
    llm.reply("after the pause")
    started = time.monotonic()
    completion = await complete(max_retries=1)
    assert time.monotonic() - started >= 0.3
    assert completion.content == "after the pause"
    assert len(llm.requests) == 2


async def test_server_errors_exhaust_the_retries(llm: ScriptedOpenAIServer) -> None:
    llm.fail(500, "boom")
    llm.fail(500, "boom again")
    llm.reply("never reached")
    started = time.monotonic()
    with pytest.raises(LLMError) as info:
        await complete(max_retries=1)
    assert 0.2 <= time.monotonic() - started < 2.0  # one backoff of about 0.5 s (jittered)
    assert info.value.status_code == 500
    assert "boom again" in str(info.value)
    assert isinstance(info.value.__cause__, Exception)
    assert len(llm.requests) == 2


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_client_errors_are_not_retried(llm: ScriptedOpenAIServer, status: int) -> None:
    llm.fail(status, "bad request")
    with pytest.raises(LLMError) as info:
        await complete(max_retries=3)
    assert info.value.status_code == status
    assert info.value.hint is None
    assert len(llm.requests) == 1


async def test_connection_errors_are_retried() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    with pytest.raises(LLMError) as info:
        await complete(settings={"api_base": dead}, max_retries=1)
    assert info.value.status_code is None
    assert "connection error after 2 attempts" in str(info.value)


# -- failures that are mapped, not retried ------------------------------------------------------------------


async def test_timeout(llm: ScriptedOpenAIServer) -> None:
    llm.hang(3)
    started = time.monotonic()
    with pytest.raises(LLMError, match=r"timed out after 0\.3 s") as info:
        await complete(timeout=0.3, max_retries=2)
    assert time.monotonic() - started < 1.5
    assert info.value.status_code is None
    assert len(llm.requests) == 1


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"id": "x", "object": "chat.completion"}', b'{"id": "x", "choices": []}', b""],
    ids=["not-json", "no-choices-key", "empty-choices", "empty-body"],
)
async def test_malformed_body(llm: ScriptedOpenAIServer, body: bytes) -> None:
    llm.malformed(body)
    with pytest.raises(LLMError, match="malformed response") as info:
        await complete(max_retries=2)
    assert info.value.model == MODEL
    assert len(llm.requests) == 1


async def test_missing_api_key_names_the_variable(
    llm: ScriptedOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(LLMError) as info:
        await complete(max_retries=2)
    assert info.value.hint is not None and "OPENAI_API_KEY" in info.value.hint
    assert "OPENAI_API_KEY" in str(info.value)
    assert llm.requests == []


async def test_rejected_api_key_names_the_variable(llm: ScriptedOpenAIServer) -> None:
    llm.fail(401, "Incorrect API key provided")
    with pytest.raises(LLMError) as info:
        await complete(max_retries=2)
    assert info.value.status_code == 401
    assert info.value.hint is not None and "OPENAI_API_KEY" in info.value.hint
    assert len(llm.requests) == 1


async def test_cancellation_propagates_untouched(llm: ScriptedOpenAIServer) -> None:
    llm.hang(3)
    task = asyncio.create_task(complete(timeout=5, max_retries=2))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_importing_the_wrapper_does_not_import_litellm() -> None:
    code = "import sys, immagent._llm; print('litellm' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60, cwd=root
    )
    assert out.stdout.strip() == "False"


# -- streaming --------------------------------------------------------------------------------------------


async def test_stream_yields_deltas_then_the_completion(llm: ScriptedOpenAIServer) -> None:
    llm.reply("The weather in Paris is sunny today.", input_tokens=21, output_tokens=8)
    events = await stream()
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 3
    assert events[:-1] == deltas
    final = events[-1]
    assert isinstance(final, Completion)
    assert final.content == "".join(d.text for d in deltas) == "The weather in Paris is sunny today."
    assert (final.input_tokens, final.output_tokens) == (21, 8)
    assert final.tool_calls == ()
    assert llm.last_request["stream"] is True
    assert llm.last_request["stream_options"] == {"include_usage": True}


async def test_stream_assembles_tool_calls(llm: ScriptedOpenAIServer) -> None:
    llm.reply(
        "Let me check.",
        tool_calls=[
            ("call_a", "get_weather", '{"city": "Paris"}'),
            ("call_b", "get_weather", '{"city": "Oslo"}'),
        ],
    )
    events = await stream(tools=[WEATHER_TOOL])
    final = events[-1]
    assert isinstance(final, Completion)
    assert final.content == "Let me check."
    assert final.tool_calls == (
        ToolCall(id="call_a", name="get_weather", arguments='{"city": "Paris"}'),
        ToolCall(id="call_b", name="get_weather", arguments='{"city": "Oslo"}'),
    )
    assert [json.loads(c.arguments) for c in final.tool_calls] == [{"city": "Paris"}, {"city": "Oslo"}]


async def test_stream_retries_before_the_first_chunk(llm: ScriptedOpenAIServer) -> None:
    llm.fail(429, retry_after=0)
    llm.fail(503, retry_after=0)
    llm.reply("third time lucky")
    events = await stream(max_retries=2)
    assert isinstance(events[-1], Completion) and events[-1].content == "third time lucky"
    assert len(llm.requests) == 3


async def test_stream_errors_are_mapped(llm: ScriptedOpenAIServer) -> None:
    llm.fail(500, "down")
    with pytest.raises(LLMError) as info:
        await stream()
    assert info.value.status_code == 500
    assert len(llm.requests) == 1


async def test_stream_timeout_before_the_first_chunk(llm: ScriptedOpenAIServer) -> None:
    llm.hang(3)
    with pytest.raises(LLMError, match=r"timed out after 0\.3 s"):
        await stream(timeout=0.3, max_retries=1)
    assert len(llm.requests) == 1


async def test_stream_stalling_mid_way_times_out(llm: ScriptedOpenAIServer) -> None:
    llm.reply("one two three four", chunk_delay=1.0)
    deltas: list[str] = []
    with pytest.raises(LLMError, match="timed out"):
        async for event in _llm.stream(
            model=MODEL, messages=HELLO, tools=None, settings={}, timeout=0.3, max_retries=3
        ):
            if isinstance(event, TextDelta):
                deltas.append(event.text)
    assert deltas == []  # the stall came right after the first (role) chunk
    assert len(llm.requests) == 1  # no retry once the stream has started


async def test_stream_can_be_abandoned(llm: ScriptedOpenAIServer) -> None:
    llm.reply("one two three four five six", chunk_delay=0.05)
    events = _llm.stream(model=MODEL, messages=HELLO, tools=None, settings={}, timeout=5, max_retries=0)
    first = await anext(events)
    assert first == TextDelta("one ")
    await events.aclose()
    assert (await complete()).content == "echo: hi"  # the connection pool still works


async def test_stream_cancellation_propagates_untouched(llm: ScriptedOpenAIServer) -> None:
    llm.hang(3)
    task = asyncio.create_task(stream(timeout=5, max_retries=2))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(llm.requests) == 1


async def test_stream_of_a_malformed_body(llm: ScriptedOpenAIServer) -> None:
    llm.malformed(b"data: {broken\n\n")
    with pytest.raises(LLMError, match="malformed"):
        await stream(max_retries=2)
    assert len(llm.requests) == 1
