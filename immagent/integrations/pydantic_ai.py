"""Pydantic AI message history on an immagent thread: every run one immutable state, nothing lost.

Pydantic AI keeps no history of its own: a run takes ``message_history=`` and gives back its new messages.
Here they live on a thread::

    from pydantic_ai import Agent
    from immagent.integrations.pydantic_ai import load_history, save_run

    agent = Agent("openai:gpt-4o", instructions="Be brief.")
    thread = await store.load_thread("support/42")
    result = await agent.run("Where is my order?", message_history=await load_history(thread))
    thread = await save_run(thread, result.new_messages())  # one state, one transaction

Each ``ModelMessage`` becomes one immagent message: its native form is the message as
``ModelMessagesTypeAdapter`` dumps it (JSON), so ``load_history`` gives back exactly what was saved
(thinking parts and their signatures, tool calls and returns, usage, timestamps, provider fields), and
its readable projection (role, content, tool calls, tokens) is what ``immagent show``, ``export`` and the
inspector display. Messages immagent's own loop wrote (no native form) are loaded from that projection,
so a Pydantic AI agent can take over a conversation immagent started.

Install with ``pip install 'immagent[pydantic-ai]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

try:
    from pydantic_ai.messages import (
        ModelMessage,
        ModelMessagesTypeAdapter,
        ModelRequest,
        ModelResponse,
        ToolCallPart,
        ToolReturnPart,
        UserPromptPart,
    )
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without the extra
    raise ImportError(
        "immagent.integrations.pydantic_ai needs Pydantic AI: pip install 'immagent[pydantic-ai]'"
    ) from exc
from pydantic_core import PydanticSerializationError

from immagent import _validation as check
from immagent._errors import ValidationError
from immagent._messages import Message, NativeForm, ToolCall
from immagent._views import PersistentAgent, Thread

__all__ = ["FORMAT", "from_messages", "load_history", "save_run", "to_messages"]

#: The ``NativeForm.format`` of a message this module stored: one ``ModelMessage`` as JSON.
FORMAT = "pydantic-ai/message"


async def load_history(source: Thread | PersistentAgent) -> list[ModelMessage]:
    """The history of a thread's head (or of a state) as Pydantic AI messages, for ``message_history=``."""
    head = await source.head() if isinstance(source, Thread) else source
    return from_messages(await head.messages())


async def save_run(thread: Thread, messages: Sequence[ModelMessage]) -> Thread:
    """Append a run's new messages (``result.new_messages()``) to the thread as ONE new state, and move
    the thread to it, in one transaction. Returns the moved thread; ConflictError (nothing written) when
    another writer moved the thread since ``thread`` was read, ValidationError (nothing written) for a
    message that is not a Pydantic AI ``ModelMessage`` or cannot be stored as JSON."""
    if not isinstance(thread, Thread):
        raise ValidationError("thread", f"must be an immagent Thread, not {type(thread).__name__}")
    return await thread.extend(to_messages(messages))


def to_messages(messages: Sequence[ModelMessage]) -> list[Message]:
    """Pydantic AI messages as immagent messages (native form + readable projection), checked: a value
    that is not a ``ModelMessage`` or cannot be serialised is a ValidationError naming it."""
    if isinstance(messages, str | bytes | dict | ModelRequest | ModelResponse) or not isinstance(
        messages, Sequence
    ):
        raise ValidationError("messages", f"must be a list of ModelMessages, not {type(messages).__name__}")
    return [_to_message(f"messages[{i}]", message) for i, message in enumerate(messages)]


def from_messages(messages: Sequence[Message]) -> list[ModelMessage]:
    """immagent messages as Pydantic AI messages: the native form when this module stored it, else one
    rebuilt from the readable projection. All validated by ``ModelMessagesTypeAdapter`` in one call."""
    names: dict[str, str] = {}  # tool call id -> tool name, for projections of tool messages
    dumped: list[Any] = []
    for message in messages:
        for call in message.tool_calls or ():
            names[call.id] = call.name
        if message.native is not None and message.native.format == FORMAT:
            dumped.append(message.native.data)
        else:
            dumped.append(_from_projection(message, names))
    return ModelMessagesTypeAdapter.validate_python(dumped)


# ---------------------------------------------------------------------------------------------- saving


def _to_message(field: str, message: object) -> Message:
    if not isinstance(message, ModelRequest | ModelResponse):
        kind = type(message).__name__
        raise ValidationError(
            field, f"must be a Pydantic AI ModelMessage (ModelRequest or ModelResponse), not {kind}"
        )
    try:
        [data] = ModelMessagesTypeAdapter.dump_python([message], mode="json")
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        raise ValidationError(field, f"cannot be serialised as JSON: {exc}") from exc
    native = NativeForm.model_construct(format=FORMAT, data=check.json_value(f"{field}.native.data", data))
    if isinstance(message, ModelResponse):
        return _response(message, native)
    return _request(message, native)


def _response(message: ModelResponse, native: NativeForm) -> Message:
    """An assistant message: its text as content, its tool calls, its usage."""
    calls = tuple(
        ToolCall(id=part.tool_call_id, name=part.tool_name, arguments=part.args_as_json_str())
        for part in message.parts
        if isinstance(part, ToolCallPart)
    )
    return Message(
        role="assistant",
        content=message.text,  # the framework's own reading of its text parts
        tool_calls=calls or None,
        input_tokens=message.usage.input_tokens,
        output_tokens=message.usage.output_tokens,
        native=native,
    )


def _request(message: ModelRequest, native: NativeForm) -> Message:
    """A tool message when the request returns tool results (the first call's id; every result in the
    content), else a user message with the prompt's text."""
    returns = [part for part in message.parts if isinstance(part, ToolReturnPart)]
    if returns:
        content = "\n".join(part.model_response_str() for part in returns)
        return Message(role="tool", content=content, tool_call_id=returns[0].tool_call_id, native=native)
    prompts = [_prompt_text(part) for part in message.parts if isinstance(part, UserPromptPart)]
    return Message(role="user", content="\n".join(prompts) if prompts else None, native=native)


def _prompt_text(part: UserPromptPart) -> str:
    """A user prompt's text (its text items; other content, such as images, is named)."""
    if isinstance(part.content, str):
        return part.content
    return "\n".join(item if isinstance(item, str) else f"[{type(item).__name__}]" for item in part.content)


# --------------------------------------------------------------------------------------------- loading


def _from_projection(message: Message, names: dict[str, str]) -> dict[str, Any]:
    """A Pydantic AI message (as JSON) rebuilt from a message with no Pydantic AI form."""
    if message.role == "assistant":
        parts: list[dict[str, Any]] = []
        if message.content:
            parts.append({"part_kind": "text", "content": message.content})
        for call in message.tool_calls or ():
            parts.append(
                {
                    "part_kind": "tool-call",
                    "tool_name": call.name,
                    "args": call.arguments,
                    "tool_call_id": call.id,
                }
            )
        usage = {"input_tokens": message.input_tokens or 0, "output_tokens": message.output_tokens or 0}
        return {"kind": "response", "parts": parts, "usage": usage, "timestamp": _time(message)}
    if message.role == "tool" and message.tool_call_id is not None:
        part = {
            "part_kind": "tool-return",
            "tool_name": names.get(message.tool_call_id, "tool"),
            "content": message.content or "",
            "tool_call_id": message.tool_call_id,
            "timestamp": _time(message),
        }
        return {"kind": "request", "parts": [part], "timestamp": _time(message)}
    part = {"part_kind": "user-prompt", "content": message.content or "", "timestamp": _time(message)}
    return {"kind": "request", "parts": [part], "timestamp": _time(message)}


def _time(message: Message) -> str:
    return message.created_at.isoformat()
