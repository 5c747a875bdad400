"""The pure core of a turn: history + input -> new messages. No database, no store, no ORM.

``run_turn`` calls the model (through ``immagent._llm``), runs the tool calls it asks for (concurrently,
through any object with ``get_all_tools()`` and ``execute()``, such as MCPManager), feeds the results
back, and ends on a reply without tool calls or after ``max_tool_rounds`` rounds. It yields events as it
goes and finally a ``TurnResult`` with every new message, already linked (ids, ``parent_id``, ``depth``)
so that whoever persists them only has to insert.

A round is one model reply with tool calls plus one tool message per call, in call order. After
``max_tool_rounds`` rounds the turn ends with that round's tool results last (the model is not asked
again) and a warning is logged: every tool call is answered, so the history is valid for the next turn.
Any exception from a tool becomes an ``Error: ...`` tool message the model can read; only model errors
(``LLMError``) and cancellation abort a turn.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from immagent import _llm
from immagent._errors import LLMError
from immagent._llm import Completion, TextDelta
from immagent._messages import LITELLM_FORMAT, Message, NativeForm, ToolCall

logger = logging.getLogger("immagent")

__all__ = [
    "TextDelta",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolProvider",
    "Turn",
    "TurnComplete",
    "TurnEvent",
    "TurnOptions",
    "TurnResult",
    "advance",
    "run_turn",
    "wire_forms",
]


@runtime_checkable
class ToolProvider(Protocol):
    """What the tool loop needs from a tool source; MCPManager is one."""

    def get_all_tools(self) -> list[dict[str, Any]]: ...

    async def execute(self, name: str, arguments: str | dict[str, Any] | None) -> str: ...


@dataclass(frozen=True, slots=True)
class TurnOptions:
    """How a turn runs, as the caller asked: tools, retries, timeout, tool rounds, sampling overrides."""

    mcp: ToolProvider | None = None
    max_retries: int = 3
    timeout: float = 120.0
    max_tool_rounds: int = 10
    overrides: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Turn:
    """Everything the pure core needs for one turn: data in, nothing read from anywhere.

    ``history_wire`` is the history in the model's wire format (``wire_forms(history)``), when the caller
    kept it from an earlier turn (a ``TurnResult``): a turn then builds its request without a step per
    message of the history. It is never mutated, and must match ``history`` exactly.
    """

    history: tuple[Message, ...]
    system_prompt: str
    text: str
    model: str
    settings: Mapping[str, Any]
    options: TurnOptions = field(default_factory=TurnOptions)
    history_wire: Sequence[dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """The model asked for a tool call; it is about to run."""

    call: ToolCall


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    """A tool call ended; ``result`` is what the model will read, ``is_error`` tells failures apart."""

    call: ToolCall
    result: str
    is_error: bool


@dataclass(frozen=True, slots=True)
class TurnResult:
    """The pure core's last event: every message the turn made, in order (user first), and the wire
    form of the whole new history (history + messages), for the caller to keep for the next turn."""

    messages: tuple[Message, ...]
    history_wire: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TurnComplete:
    """The last event of ``advance_stream``: the new agent state (PersistentAgent or SimpleAgent), and
    for ``Thread.advance_stream`` the moved thread."""

    agent: Any
    messages: tuple[Message, ...]
    thread: Any = None


TurnEvent = TextDelta | ToolCallStarted | ToolCallFinished | TurnResult | TurnComplete


def wire_forms(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """Messages in the model's wire format; each form is computed once per message, then shared."""
    return [m.llm_form() for m in messages]


def _chat(
    system_prompt: str, history: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The request body's messages: system prompt, whole history, then this turn's messages, all in
    wire form already (a copy of two lists of references, not a conversion per message)."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}]
    out += history
    out += new
    return out


def _next(previous: Message | None, **fields: Any) -> Message:
    """A message linked after ``previous`` in the tree."""
    if previous is None:
        return Message(parent_id=None, depth=0, **fields)
    return Message(parent_id=previous.id, depth=previous.depth + 1, **fields)


def _kept(fields: dict[str, Any] | None) -> NativeForm | None:
    """The native form that keeps a reply's provider fields (None when there are none, or when they
    cannot be stored: a turn is never lost over them)."""
    if not fields:
        return None
    try:
        return NativeForm(format=LITELLM_FORMAT, data=fields)
    except ValueError as exc:  # pydantic's ValidationError: NUL, too large, too deep
        logger.warning("the reply's provider fields are not kept: %s", exc)
        return None


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable(text: str | None) -> str | None:
    """Why ``text`` cannot be stored as-is (NUL, which PostgreSQL refuses; a lone surrogate, which
    UTF-8 cannot encode), or None when it can."""
    if text is None:
        return None
    if "\x00" in text:
        return "a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate"
    return None


def _storable(text: str) -> str:
    """A tool result made storable: NUL and lone surrogates become U+FFFD (the model reads the rest)."""
    if _unstorable(text) is None:
        return text
    return _UNSTORABLE.sub("\ufffd", text)


def _check_reply(completion: Completion, model: str) -> None:
    """A reply we could not store exactly is a malformed response: the turn fails and writes nothing."""
    texts = [completion.content, *(c.arguments for c in completion.tool_calls)]
    for text in texts:
        problem = _unstorable(text)
        if problem is not None:
            message = f"LLM call to {model!r} got a malformed response: the text holds {problem}"
            raise LLMError(message, model=model)


async def _run_tool(tools: ToolProvider, call: ToolCall) -> tuple[str, bool]:
    """Run one tool call; any failure becomes text for the model (a cancellation still propagates)."""
    try:
        return _storable(await tools.execute(call.name, call.arguments)), False
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a tool's failure is information for the model, not a failed turn
        logger.info("tool %s failed: %s", call.name, exc)
        return f"Error: {exc}", True


async def run_turn(turn: Turn, *, stream: bool = False) -> AsyncIterator[TurnEvent]:
    """One turn as a stream of events, ending with a TurnResult. Raises LLMError when the model fails."""
    history, options, model, settings = turn.history, turn.options, turn.model, turn.settings
    tools, timeout, max_retries = options.mcp, options.timeout, options.max_retries
    known = turn.history_wire
    history_wire = known if known is not None and len(known) == len(history) else wire_forms(history)
    last = history[-1] if history else None
    new: list[Message] = [_next(last, role="user", content=turn.text)]
    new_wire = [new[0].llm_form()]
    schemas = tools.get_all_tools() if tools is not None else []
    rounds = 0
    while True:
        request = _chat(turn.system_prompt, history_wire, new_wire)
        completion: Completion | None = None
        if stream:
            async for event in _llm.stream(
                model=model,
                messages=request,
                tools=schemas or None,
                settings=settings,
                timeout=timeout,
                max_retries=max_retries,
            ):
                if isinstance(event, Completion):
                    completion = event
                else:
                    yield event
            assert completion is not None, "stream ended without a completion"
        else:
            completion = await _llm.complete(
                model=model,
                messages=request,
                tools=schemas or None,
                settings=settings,
                timeout=timeout,
                max_retries=max_retries,
            )
        _check_reply(completion, model)
        reply = _next(
            new[-1],
            role="assistant",
            content=completion.content,
            tool_calls=completion.tool_calls or None,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            native=_kept(completion.provider_fields),
        )
        new.append(reply)
        new_wire.append(reply.llm_form())
        if not completion.tool_calls:
            break
        calls = completion.tool_calls
        for call in calls:
            yield ToolCallStarted(call)
        if tools is None:
            outcomes = [(f"Error: no tools are available; {call.name!r} cannot run", True) for call in calls]
        else:
            outcomes = list(await asyncio.gather(*(_run_tool(tools, call) for call in calls)))
        for call, (result, is_error) in zip(calls, outcomes, strict=True):
            yield ToolCallFinished(call, result, is_error)
            new.append(_next(new[-1], role="tool", content=result, tool_call_id=call.id))
            new_wire.append(new[-1].llm_form())
        rounds += 1
        if rounds >= options.max_tool_rounds:
            logger.warning(
                "turn stopped after max_tool_rounds=%d tool rounds; committing what it has",
                options.max_tool_rounds,
            )
            break
    yield TurnResult(tuple(new), [*history_wire, *new_wire])


async def advance(turn: Turn) -> TurnResult:
    """One whole turn without streaming: the new messages (user message first) and the new history's
    wire form."""
    async for event in run_turn(turn):
        if isinstance(event, TurnResult):
            return event
    raise AssertionError("run_turn ended without a result")  # pragma: no cover
