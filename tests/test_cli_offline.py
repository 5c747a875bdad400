"""The CLI's offline model: canned replies chosen by the words of the message (not substrings), and a call
to an offered tool that fits the question, run through LiteLLM against the real weather MCP server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from immagent import MCPManager, SimpleAgent
from immagent.cli import _offline
from immagent.testing import ScriptedModel


@pytest.fixture
def offline() -> Iterator[ScriptedModel]:
    model = _offline.install("immagent/offline-test")
    yield model
    model.uninstall()


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": text}]


def tool(name: str, description: str, **parameters: str) -> dict[str, Any]:
    properties = {p: {"type": kind} for p, kind in parameters.items()}
    schema = {"type": "object", "properties": properties, "required": list(parameters)}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": schema}}


WEATHER = tool("get_weather", "Get the current weather for a city.", city="string")
FORECAST = tool("get_forecast", "Get a day-by-day weather forecast for a city.", city="string")


async def test_a_weather_question_calls_the_offered_tool_and_answers_from_its_result(
    offline: ScriptedModel, weather_tools: MCPManager
) -> None:
    agent = SimpleAgent(name="t", system_prompt="You are helpful.", model=offline.model)
    agent = await agent.advance("What's the weather in Tokyo?", mcp=weather_tools)
    question, asked, result, final = agent.messages()
    assert question.content == "What's the weather in Tokyo?"
    assert [(c.name, c.arguments) for c in asked.tool_calls or ()] == [("get_weather", '{"city": "Tokyo"}')]
    assert result.content == "Tokyo: 26°C, humid, scattered clouds"
    assert final.content == "The weather tool says: Tokyo: 26°C, humid, scattered clouds"
    first_request = offline.requests[0]
    assert {t["function"]["name"] for t in first_request.tools} >= {"get_weather", "get_forecast"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Where should we eat tonight?", "For dinner"),
        ("Any museums worth a rainy afternoon?", "On a rainy day"),
        ("What should I pack?", "Pack light layers"),
        ("What's the weather in Paris?", "I can't look that up offline without a tool"),
        ("Is the theatre open?", "(offline model) I heard: Is the theatre open?"),  # "eat" is in "theatre"
        ("Hi!", "Hello!"),
        ("this is high praise", "(offline model) I heard"),  # "hi" is in "this" and "high"
    ],
)
def test_canned_replies_are_chosen_by_whole_words(text: str, expected: str) -> None:
    reply = _offline.answer(user(text))
    assert reply.content is not None and reply.content.startswith(expected), reply.content
    assert reply.tool_calls == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What's the weather in Paris?", ("get_weather", '{"city": "Paris"}')),
        ("and the forecast for New York?", ("get_forecast", '{"city": "New York"}')),
        ("Weather in Reykjavik today?", ("get_weather", '{"city": "Reykjavik"}')),  # a place not known
    ],
)
def test_the_tool_whose_name_fits_is_called_with_the_place_asked_about(
    text: str, expected: tuple[str, str]
) -> None:
    reply = _offline.answer(user(text), [WEATHER, FORECAST])
    assert reply.content is None
    [(_, name, arguments)] = reply.tool_calls
    assert (name, arguments) == expected


def test_a_tool_that_fits_only_by_its_description_needs_two_shared_words() -> None:
    lookup = tool("lookup", "Current weather conditions for a city.", city="string")
    assert _offline.answer(user("weather in Paris?"), [lookup]).tool_calls == ()  # one shared word
    [(_, name, _)] = _offline.answer(user("current weather in Paris?"), [lookup]).tool_calls
    assert name == "lookup"


def test_tools_that_do_not_fit_or_cannot_be_filled_are_not_called() -> None:
    counter = tool("count_words", "Count the words of a text.", text="string", limit="integer")
    assert _offline.answer(user("Please count words here"), [counter]).tool_calls == ()  # an int it lacks
    reply = _offline.answer(user("Where should we eat?"), [WEATHER, FORECAST])
    assert reply.tool_calls == () and reply.content is not None and reply.content.startswith("For dinner")


def test_a_missing_place_is_asked_for_then_taken_from_the_answer() -> None:
    question = _offline.answer(user("What's the weather like?"), [WEATHER])
    assert question.content == "Which city? Tell me and I'll ask get_weather."
    history = [
        *user("What's the weather like?"),
        {"role": "assistant", "content": question.content},
        {"role": "user", "content": "Berlin"},
    ]
    [(_, name, arguments)] = _offline.answer(history, [WEATHER]).tool_calls
    assert (name, arguments) == ("get_weather", '{"city": "Berlin"}')
