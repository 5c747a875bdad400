"""OpenAI Agents SDK items <-> immagent messages: the checks and the readable projection (pure, no I/O).

An SDK session stores ``TResponseInputItem`` dicts (messages, function calls and their outputs, reasoning,
hosted tool calls, ...). Each becomes one immagent message that keeps the item itself, unchanged, as its
native form (``format="openai-agents/item"``) and says what it is in immagent's terms (role, content,
tool calls), so immagent's own views, CLI and inspector read any session. Reading gives back the native
item; a message that some other writer made (immagent's own loop, another framework) is translated.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Union

from pydantic import TypeAdapter
from pydantic import ValidationError as SchemaMismatch

from immagent import _validation as check
from immagent._errors import ValidationError
from immagent._messages import Message, NativeForm, ToolCall

#: The native format of a message written by the session: the SDK item as JSON.
FORMAT = "openai-agents/item"


# ---------------------------------------------------------------------- checks


@functools.cache
def _members_by_type() -> dict[str | None, tuple[Any, ...]]:
    """The members of the SDK's item union, grouped by the literal of their ``type`` key."""
    from agents.items import TResponseInputItem

    grouped: dict[str | None, list[Any]] = {}
    for member in typing.get_args(TResponseInputItem):
        hint = typing.get_type_hints(member).get("type")
        for literal in _literals(hint):
            grouped.setdefault(literal, []).append(member)
    return {kind: tuple(members) for kind, members in grouped.items()}


def _literals(hint: Any) -> list[str | None]:
    """``Literal["a"]`` -> ["a"]; ``Optional[Literal["a"]]`` -> ["a", None] (the key may be left out)."""
    if typing.get_origin(hint) is typing.Literal:
        return list(typing.get_args(hint))
    found: list[str | None] = []
    for arg in typing.get_args(hint):
        found.extend([None] if arg is type(None) else _literals(arg))
    return found


@functools.cache
def _adapter(kind: str | None) -> Any:
    """A Pydantic validator of the SDK's items of one ``type`` (built once per type, on first use)."""
    members = _members_by_type()[kind]
    schema: Any = members[0] if len(members) == 1 else Union[members]  # noqa: UP007
    return TypeAdapter(schema)


def _kind(field: str, item: Mapping[str, Any]) -> str | None:
    """The item's ``type``: messages may leave it out (EasyInputMessage), as may item references."""
    kind = item.get("type")
    if kind is None:
        if "role" in item:
            return "message"
        if "id" in item:
            return None  # an item reference: {"id": ...}
        raise ValidationError(
            field, "has neither a 'type' nor a 'role': it is not an OpenAI Agents SDK input item"
        )
    if not isinstance(kind, str) or kind not in _members_by_type():
        known = ", ".join(sorted(k for k in _members_by_type() if k))
        raise ValidationError(
            f"{field}.type", f"{kind!r} is not an OpenAI Agents SDK input item type ({known})"
        )
    return kind


def check_item(field: str, item: object) -> dict[str, Any]:
    """One SDK input item as the JSON it is stored as; ValidationError naming the item (and its key) when
    it is not JSON that every backend keeps exactly (sets, bytes, NaN, NUL, non-string keys, floats jsonb
    would change, ...) or not an item of the SDK's schema."""
    if not isinstance(item, Mapping):
        raise ValidationError(
            field, f"must be an OpenAI Agents SDK input item (a dict), not {type(item).__name__}"
        )
    data: dict[str, Any] = check.json_value(field, item)  # the rules of a native form's JSON
    members = _members_by_type()
    kind = _kind(field, data)
    try:
        _adapter(kind).validate_python(data)
    except SchemaMismatch as exc:
        raise ValidationError(_where(field, exc, len(members[kind])), _what(exc, kind)) from None
    return data


def check_items(items: object) -> list[dict[str, Any]]:
    """Every item checked (see :func:`check_item`) before anything is written."""
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        raise ValidationError(
            "items", f"must be a list of OpenAI Agents SDK input items, not {type(items).__name__}"
        )
    return [check_item(f"items[{i}]", item) for i, item in enumerate(items)]


def _where(field: str, exc: Any, members: int) -> str:
    """``items[3].content`` from the first error's location (a union's member name left out)."""
    loc = list(exc.errors()[0]["loc"])
    if members > 1 and loc:
        loc = loc[1:]
    return field + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def _what(exc: Any, kind: str | None) -> str:
    first = exc.errors()[0]
    return f"{first['msg']} (not a valid {kind or 'item_reference'} item of the OpenAI Agents SDK)"


# ---------------------------------------------------------------------- projection


def _text(content: Any) -> str | None:
    """Readable text of an item's content: a string, or the text of its parts (others named)."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    pieces: list[str] = []
    for part in content:
        if not isinstance(part, Mapping):
            continue
        text = part.get("text", part.get("refusal"))
        pieces.append(text if isinstance(text, str) else f"[{part.get('type', 'part')}]")
    return "\n".join(pieces) if pieces else None


def to_message(item: dict[str, Any]) -> Message:
    """One SDK item as an immagent message: the item as its native form, and its readable projection
    (user and assistant text, function calls as tool calls, their outputs as tool messages, reasoning
    as an assistant message whose content is its summary; system and developer messages read as user)."""
    native = NativeForm(format=FORMAT, data=item)
    kind = item.get("type", "message")
    if kind == "message" or (kind is None and "role" in item):
        role = "assistant" if item.get("role") == "assistant" else "user"
        return Message(role=role, content=_text(item.get("content")), native=native)
    if kind == "function_call":
        call = ToolCall(id=str(item.get("call_id")), name=str(item.get("name")), arguments=item["arguments"])
        return Message(role="assistant", tool_calls=(call,), native=native)
    if isinstance(kind, str) and kind.endswith("_output") and isinstance(item.get("call_id"), str):
        return Message(
            role="tool", content=_text(item.get("output")), tool_call_id=item["call_id"], native=native
        )
    if kind == "reasoning":
        summary = _text(item.get("summary")) or _text(item.get("content"))
        return Message(role="assistant", content=summary, native=native)
    return Message(role="assistant", content=None, native=native)


def to_items(message: Message) -> list[dict[str, Any]]:
    """The SDK items of a stored message: its native item when the session wrote it, else a translation
    of what it says (a message of immagent's own loop: text, one function call per tool call, output)."""
    if message.native is not None and message.native.format == FORMAT:
        data: dict[str, Any] = message.native.data
        return [data]
    if message.role == "tool":
        return [
            {
                "type": "function_call_output",
                "call_id": message.tool_call_id or "",
                "output": message.content or "",
            }
        ]
    items: list[dict[str, Any]] = []
    if message.content is not None or not message.tool_calls:
        items.append({"role": message.role, "content": message.content or ""})
    for call in message.tool_calls or ():
        items.append(
            {"type": "function_call", "call_id": call.id, "name": call.name, "arguments": call.arguments}
        )
    return items
