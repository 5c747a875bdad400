"""Pydantic AI message history on immagent threads, with a real ``pydantic_ai.Agent`` driven by its offline
``FunctionModel`` over several turns with tools and thinking parts, on every backend: what is loaded is
exactly what was saved, each run is one state, bad input writes nothing."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

from immagent import ConflictError, Message, Store, Thread, ToolCall, ValidationError
from immagent.cli._common import message_lines
from immagent.integrations.pydantic_ai import FORMAT, load_history, save_run
from tests.support.db import row_counts, snapshot


class Weather:
    """A FunctionModel script: think (with a signature), call ``forecast``, then answer with its result.
    It records how many messages each request carried, so a test sees the history reach the model."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.seen.append(len(messages))
        last = messages[-1]
        assert isinstance(last, ModelRequest)
        returned = [p for p in last.parts if isinstance(p, ToolReturnPart)]
        turn = sum(isinstance(p, UserPromptPart) for m in messages for p in getattr(m, "parts", ()))
        usage = RequestUsage(input_tokens=10 * turn + len(messages), output_tokens=turn)
        if returned:
            answer = f"Turn {turn}: {returned[0].content}"
            return ModelResponse(parts=[TextPart(answer)], usage=usage, model_name="weather-script")
        city = ["Paris", "Oslo", "Lima", "Kyiv"][turn % 4]
        return ModelResponse(
            parts=[
                ThinkingPart(
                    f"The user asks about {city}.", signature=f"sig-{turn}-é", provider_name="scripted"
                ),
                ToolCallPart("forecast", {"city": city, "days": [1, 2]}, tool_call_id=f"call_{turn}"),
            ],
            usage=usage,
            model_name="weather-script",
            provider_details={"finish": "tool_use", "scores": [0.5, 1e-7, 1e16, -0.0], "z": 1, "a": 2},
            provider_response_id=f"resp-{turn}",
        )


def weather_agent(script: Weather) -> Agent[None, str]:
    agent = Agent(FunctionModel(script), instructions="Answer about the weather.")

    @agent.tool_plain
    def forecast(city: str, days: list[int]) -> dict[str, Any]:
        """The forecast for ``city``."""
        return {"city": city, "days": days, "sky": "clear"}

    return agent


def as_json(messages: list[ModelMessage]) -> bytes:
    return ModelMessagesTypeAdapter.dump_json(messages)


async def chat(store: Store, turns: int) -> tuple[Thread, list[ModelMessage], Weather]:
    """``turns`` runs of the weather agent on one thread, each saved as one state."""
    root = await store.create_agent(name="pydantic-ai", system_prompt="(Pydantic AI)", model="weather-script")
    thread = await store.create_thread("weather", root)
    script = Weather()
    agent = weather_agent(script)
    everything: list[ModelMessage] = []
    for turn in range(turns):
        history = await load_history(thread)
        assert as_json(history) == as_json(everything)
        result = await agent.run(f"Weather, question {turn}?", message_history=history)
        thread = await save_run(thread, result.new_messages())
        everything = result.all_messages()
    return thread, everything, script


async def test_runs_of_a_real_agent_load_back_exactly_as_they_were_saved(store: Store) -> None:
    thread, everything, script = await chat(store, 3)
    assert len(everything) == 12 and script.seen == [1, 3, 5, 7, 9, 11]  # the history reached the model
    assert thread.position == 3
    assert as_json(await load_history(thread)) == as_json(everything)

    store.clear_cache()  # from the database this time, through a new view of the thread
    reread = await load_history(await store.load_thread("weather"))
    assert as_json(reread) == as_json(everything)
    assert reread == everything
    thinking = reread[1].parts[0]
    assert isinstance(thinking, ThinkingPart) and thinking.signature == "sig-1-é"
    assert isinstance(reread[1], ModelResponse) and reread[1].usage.input_tokens == 11
    assert reread[1].timestamp == everything[1].timestamp
    assert reread[0].parts[0].timestamp == everything[0].parts[0].timestamp  # type: ignore[union-attr]


async def test_each_run_is_one_state_and_every_message_stays_readable(store: Store) -> None:
    thread, _, _ = await chat(store, 2)
    states = [move.agent_id for move in await thread.log()]
    assert len(states) == 3 and (await row_counts(store.engine))["immagent_agents"] == 3
    history = await (await thread.head()).messages()
    assert [m.role for m in history] == ["user", "assistant", "tool", "assistant"] * 2
    assert all(m.native is not None and m.native.format == FORMAT for m in history)
    user, call, tool, answer = history[4:]
    assert user.content == "Weather, question 1?"
    assert call.content is None and call.tool_calls == (
        ToolCall(id="call_2", name="forecast", arguments='{"city":"Lima","days":[1,2]}'),
    )
    assert (call.input_tokens, call.output_tokens) == (25, 2)
    assert (tool.tool_call_id, tool.content) == ("call_2", '{"city":"Lima","days":[1,2],"sky":"clear"}')
    assert answer.content == "Turn 2: " + str({"city": "Lima", "days": [1, 2], "sky": "clear"})
    assert message_lines(1, call) == [
        '[1] assistant -> forecast({"city":"Lima","days":[1,2]})  [call call_2]  '
        "[tokens in 25, out 2]  [pydantic-ai/message]"
    ]


async def test_a_stale_thread_conflicts_and_writes_nothing(store: Store) -> None:
    thread, _, _ = await chat(store, 1)
    stale = thread
    moved = await save_run(thread, [ModelRequest(parts=[UserPromptPart("from another writer")])])
    before = await snapshot(store.engine)
    with pytest.raises(ConflictError) as caught:
        await save_run(stale, [ModelRequest(parts=[UserPromptPart("late")])])
    assert caught.value.current == moved
    assert await snapshot(store.engine) == before


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"in": value}
    return value


BAD_RUNS: list[tuple[Any, str]] = [
    (["not a message"], "messages[0]"),
    ([ModelRequest(parts=[UserPromptPart("ok")]), {"kind": "request", "parts": []}], "messages[1]"),
    ([ModelResponse(parts=[ToolCallPart("f", {"arg": object()})])], "messages[0]"),
    ([ModelRequest(parts=[UserPromptPart("nul \x00 inside")])], "messages[0].native.data"),
    ([ModelRequest(parts=[UserPromptPart("lone \udc80")])], "messages[0].native.data"),
    ([ModelResponse(parts=[TextPart("x")], provider_details=nested(40))], "messages[0].native.data"),
    (ModelRequest(parts=[UserPromptPart("not in a list")]), "messages"),
    ("text", "messages"),
    ([], "messages"),
]


@pytest.mark.parametrize(
    ("messages", "field"), BAD_RUNS, ids=[f"{i}-{f}" for i, (_, f) in enumerate(BAD_RUNS)]
)
async def test_bad_input_is_a_validation_error_naming_it_and_nothing_is_written(
    store: Store, messages: Any, field: str
) -> None:
    thread = await store.create_thread("t", await store.create_agent(name="a", system_prompt="p", model="m"))
    before = await snapshot(store.engine)
    with pytest.raises(ValidationError) as caught:
        await save_run(thread, messages)
    assert caught.value.field == field
    assert await snapshot(store.engine) == before
    with pytest.raises(ValidationError, match="thread"):
        await save_run(await thread.head(), [])  # type: ignore[arg-type]


async def test_a_conversation_immagent_wrote_continues_under_pydantic_ai(store: Store) -> None:
    """Messages without a Pydantic AI form load from their readable projection."""
    root = await store.create_agent(name="mixed", system_prompt="p", model="m")
    call = ToolCall(id="c1", name="forecast", arguments='{"city": "Rome", "days": [1]}')
    state = await root.extend(
        [
            Message(role="user", content="Rome?"),
            Message(role="assistant", tool_calls=(call,), input_tokens=4, output_tokens=2),
            Message(role="tool", content="sunny", tool_call_id="c1"),
            Message(role="assistant", content="Sunny in Rome."),
        ]
    )
    history = await load_history(state)
    assert [type(m).__name__ for m in history] == [
        "ModelRequest",
        "ModelResponse",
        "ModelRequest",
        "ModelResponse",
    ]
    assert history[0].parts[0] == UserPromptPart("Rome?", timestamp=history[0].parts[0].timestamp)  # type: ignore[union-attr]
    tool_call = history[1].parts[0]
    assert isinstance(tool_call, ToolCallPart) and tool_call.args_as_dict() == {"city": "Rome", "days": [1]}
    returned = history[2].parts[0]
    assert isinstance(returned, ToolReturnPart) and (returned.tool_name, returned.content) == (
        "forecast",
        "sunny",
    )
    assert isinstance(history[3], ModelResponse) and history[3].text == "Sunny in Rome."

    thread = await store.create_thread("mixed", state)
    script = Weather()
    result = await weather_agent(script).run("And Oslo?", message_history=history)
    thread = await save_run(thread, result.new_messages())
    assert script.seen[0] == 5
    assert len(await (await thread.head()).messages()) == 8


def test_importing_immagent_loads_no_pydantic_ai_and_the_module_names_its_extra() -> None:
    code = "import sys, immagent, immagent.integrations; print('pydantic_ai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    blocked = "import sys; sys.modules['pydantic_ai'] = None; import immagent.integrations.pydantic_ai"
    failed = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, check=False)
    assert failed.returncode == 1
    assert "ImportError: immagent.integrations.pydantic_ai needs Pydantic AI" in failed.stderr
    assert "pip install 'immagent[pydantic-ai]'" in failed.stderr
