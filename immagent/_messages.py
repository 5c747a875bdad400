"""Messages and tool calls: frozen values shared by the pure core, the LLM wrapper and the store.

A message is a node in a tree: ``parent_id`` is the previous message of its history and ``depth`` its
position (0 for the first). Identity (``id``) is assigned when the message is made, so the pure core can
link a turn's messages without a database.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from immagent import _validation as check
from immagent._ids import uuid7

Role = Literal["user", "assistant", "tool"]
#: The native form immagent's own loop gives an assistant reply whose provider returned fields the readable
#: projection has no place for (LiteLLM's ``thinking_blocks`` and ``reasoning_content``).
LITELLM_FORMAT = "litellm/assistant"
#: Of those, what goes back to the model with the message: Anthropic refuses a tool-use turn whose
#: thinking blocks are missing; DeepSeek refuses ``reasoning_content`` sent back, so that one is only kept.
SENT_BACK = ("thinking_blocks",)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (the only clock the library uses)."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Normalise a datetime read back from a backend that drops the zone (SQLite) to aware UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ToolCall(BaseModel):
    """One function call requested by the model: ``arguments`` is the JSON text the model wrote."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments: str = "{}"

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI wire form, as LiteLLM expects it in an assistant message."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


class NativeForm(BaseModel):
    """A message exactly as another agent framework wrote it, kept beside immagent's readable projection.

    ``format`` names the framework's schema (``"pydantic-ai/message"``, ``"openai-agents/item"``);
    ``data`` is any JSON value, stored and read back unchanged on every backend (checked when made:
    JSON only, no NaN, no NUL, valid Unicode, at most ``NATIVE_MAX_BYTES``)."""

    model_config = ConfigDict(frozen=True)

    format: str = Field(
        description="The framework's schema this message follows, e.g. 'pydantic-ai/message'."
    )
    data: Any = Field(description="The message in that schema, as JSON.")

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        return check.identifier("native.format", value, max_length=255)

    @field_validator("data")
    @classmethod
    def _data(cls, value: Any) -> Any:
        return check.json_value("native.data", value)


class Message(BaseModel):
    """One message of a conversation; immutable and shared by every state whose history contains it."""

    model_config = ConfigDict(frozen=True)
    # The wire form, computed once (``llm_form``). A slot, not a field or private attribute: equality,
    # hashing, dumps, copies and pickles never see it, and a copy simply computes it again.
    __slots__ = ("_llm_form",)

    id: UUID = Field(default_factory=uuid7)
    role: Role
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] | None = None
    tool_call_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    parent_id: UUID | None = None
    depth: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    native: NativeForm | None = Field(
        default=None, description="The message as another framework wrote it; null for immagent's own."
    )

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    @field_validator("tool_calls", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == [] or value == () else value

    def to_llm(self) -> dict[str, Any]:
        """This message in the OpenAI chat format that LiteLLM accepts (with the provider fields a reply
        of immagent's own loop kept, such as thinking blocks, that the provider needs back)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        native = self.native
        if native is not None and native.format == LITELLM_FORMAT and isinstance(native.data, dict):
            out.update((key, native.data[key]) for key in SENT_BACK if key in native.data)
        return out

    def llm_form(self) -> dict[str, Any]:
        """``to_llm()`` computed once and shared by every request that carries this message (a message
        never changes, so neither does its wire form): a turn then pays only for its new messages.
        The result must not be mutated; ``to_llm()`` gives a fresh copy."""
        try:
            return self._llm_form  # type: ignore[attr-defined,no-any-return]
        except AttributeError:
            form = self.to_llm()
            object.__setattr__(self, "_llm_form", form)
            return form

    def same_content(self, other: Message) -> bool:
        """True when both messages say the same thing (ids, links and times aside)."""
        keys = ("role", "content", "tool_calls", "tool_call_id", "input_tokens", "output_tokens", "native")
        return all(getattr(self, k) == getattr(other, k) for k in keys)


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces): used for hashing and size checks."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
