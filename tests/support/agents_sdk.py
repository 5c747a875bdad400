"""The differential harness of the OpenAI Agents SDK integration: one sequence of session calls played on
the SDK's own ``SQLiteSession`` (in memory, the reference) and on an ``ImmagentSession``, every answer
compared; plus realistic items and a scripted multi-turn agent with function tools.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any

from agents import Agent, RunConfig, Runner, SQLiteSession, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from openai.types.responses import ResponseReasoningItem
from openai.types.responses.response_reasoning_item import Summary

from immagent.integrations.openai_agents import ImmagentSession

#: Nothing leaves the machine: no trace is exported (tracing needs no key and reaches no server).
OFFLINE = RunConfig(tracing_disabled=True)

#: Items of every kind a session holds, in the forms the SDK writes and reads back (JSON dicts).
ITEMS: list[dict[str, Any]] = [
    {"role": "user", "content": "What's the weather in Paris?"},
    {"role": "user", "content": [{"type": "input_text", "text": "Et à Lyon ? 🌦️"}]},
    {"role": "system", "content": "Answer in one sentence."},
    {"role": "developer", "content": "Prefer metric units."},
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [
            {
                "type": "output_text",
                "text": "It is 18°C (source).",
                "annotations": [
                    {
                        "type": "url_citation",
                        "url": "https://example.org/w",
                        "title": "W",
                        "start_index": 12,
                        "end_index": 20,
                    }
                ],
                "logprobs": [{"token": "It", "logprob": -0.25, "bytes": [73, 116], "top_logprobs": []}],
            }
        ],
    },
    {
        "id": "msg_2",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "refusal", "refusal": "I can't help with that."}],
    },
    {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    },
    {"type": "function_call_output", "call_id": "call_1", "output": "18°C, light rain"},
    {
        "type": "function_call_output",
        "call_id": "call_2",
        "output": [{"type": "input_text", "text": "a list output"}],
    },
    {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "Look up the weather first."}],
        "encrypted_content": "gAAAAB" + "x" * 200,
    },
    {"type": "reasoning", "id": "rs_2", "summary": []},
    {
        "type": "web_search_call",
        "id": "ws_1",
        "status": "completed",
        "action": {"type": "search", "query": "weather Paris"},
    },
    {"type": "item_reference", "id": "msg_0"},
    {"role": "user", "content": "numbers: 0.1 + 0.2, 1e-7, 12345678901234567890, -0.0, '\"quotes\"'"},
]


def random_ops(rng: random.Random, length: int) -> list[tuple[str, Any]]:
    """A random sequence of session calls: add (1 to 4 items), get with a random limit, pop, clear."""
    ops: list[tuple[str, Any]] = []
    for _ in range(length):
        kind = rng.choices(["add", "get", "pop", "clear"], weights=[5, 3, 2, 0.5])[0]
        if kind == "add":
            ops.append(("add", [copy.deepcopy(rng.choice(ITEMS)) for _ in range(rng.randint(1, 4))]))
        elif kind == "get":
            ops.append(("get", rng.choice([None, None, 0, 1, 2, 3, 5, 50, -1])))
        else:
            ops.append((kind, None))
    return ops


@dataclass
class Differential:
    """Plays each call on both sessions and asserts equal answers, then equal whole histories."""

    reference: SQLiteSession
    ours: ImmagentSession
    calls: int = 0
    items_compared: int = 0
    log: list[tuple[str, Any]] = field(default_factory=list)

    async def play(self, ops: list[tuple[str, Any]]) -> None:
        for op in ops:
            await self.apply(*op)

    async def apply(self, kind: str, arg: Any) -> None:
        self.log.append((kind, arg))
        where = f"after {self.log}"
        if kind == "add":
            await self.reference.add_items(copy.deepcopy(arg))
            await self.ours.add_items(copy.deepcopy(arg))
        elif kind == "get":
            expected = await self.reference.get_items(arg)
            assert await self.ours.get_items(arg) == expected, where
            self.items_compared += len(expected)
        elif kind == "pop":
            assert await self.ours.pop_item() == await self.reference.pop_item(), where
        elif kind == "clear":
            await self.reference.clear_session()
            await self.ours.clear_session()
        else:  # pragma: no cover - a typo in a test
            raise ValueError(kind)
        self.calls += 1
        expected = await self.reference.get_items()
        assert await self.ours.get_items() == expected, where
        self.items_compared += len(expected)


# ---------------------------------------------------------------------- a scripted agent with tools


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city (a fixed answer: the tests are offline)."""
    return {"Paris": "18°C, light rain", "Lyon": "21°C, sunny"}.get(city, "unknown")


@function_tool
def convert(celsius: float) -> str:
    """Celsius to Fahrenheit."""
    return f"{celsius * 9 / 5 + 32:.1f}°F"


def _reasoning(n: int) -> ResponseReasoningItem:
    return ResponseReasoningItem(
        id=f"rs_{n}",
        type="reasoning",
        summary=[Summary(type="summary_text", text=f"step {n}: call a tool")],
        encrypted_content=f"opaque-{n}",
    )


#: Four turns: two tool calls in parallel, then a chained one, then a plain answer, then a correction.
SCRIPT: list[list[Any]] = [
    [
        _reasoning(1),
        function_call("get_weather", {"city": "Paris"}, call_id="call_1"),
        function_call("get_weather", {"city": "Lyon"}, call_id="call_2"),
    ],
    [assistant_message("Paris: 18°C and rain; Lyon: 21°C and sun.", item_id="msg_1")],
    [_reasoning(2), function_call("convert", {"celsius": 21}, call_id="call_3")],
    [assistant_message("That is 69.8°F.", item_id="msg_2")],
    [assistant_message("You're welcome!", item_id="msg_3")],
    [assistant_message("Lyon is warmer.", item_id="msg_4")],
]
TURNS = ["Weather in Paris and Lyon?", "And Lyon in Fahrenheit?", "Thanks!", "Which city is warmer?"]


def scripted_agent() -> tuple[Agent[Any], ScriptedModel]:
    """An SDK agent with two function tools, on a model that plays SCRIPT (a fresh copy each call)."""
    model = ScriptedModel(copy.deepcopy(SCRIPT))
    return Agent(name="weather", instructions="Be brief.", model=model, tools=[get_weather, convert]), model


async def run_turns(session: Any, *, correct_last: bool = True) -> tuple[list[str], ScriptedModel]:
    """Play TURNS through ``Runner.run`` on ``session``; before the last, undo the one before it (the
    SDK's correction pattern: pop the assistant's answer and the user's question, ask again)."""
    agent, model = scripted_agent()
    outputs = []
    for n, text in enumerate(TURNS):
        if correct_last and n == len(TURNS) - 1:
            await session.pop_item()
            await session.pop_item()
        result = await Runner.run(agent, text, session=session, run_config=OFFLINE)
        outputs.append(str(result.final_output))
    return outputs, model
