"""Frozen Pydantic views of stored rows: what callers get, serialise and return from APIs.

A view carries no storage plumbing in its fields: ``model_dump()`` is a plain payload. A PersistentAgent
loaded or created by a store keeps a private reference to that store so its methods (``advance``,
``messages``, ...) work; one built by hand or from JSON has none and says so (AgentNotRegisteredError).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from immagent._advance import TurnOptions
from immagent._errors import AgentNotRegisteredError
from immagent._messages import Message, ToolCall, as_utc

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from immagent._advance import ToolProvider, TurnEvent
    from immagent._store import Store

__all__ = ["Message", "PersistentAgent", "SystemPrompt", "ToolCall"]


class SystemPrompt(BaseModel):
    """A stored system prompt; its id is derived from its content."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: UUID
    content: str


class PersistentAgent(BaseModel):
    """One immutable, persisted agent state. Every change (``advance``, ``clone``, ``with_metadata``)
    returns a new state with a new id; this one stays as it is, in memory and in the database."""

    # The JSON schema describes the payload (``metadata``), not the ORM attribute alias (``metadata_``).
    model_config = ConfigDict(
        frozen=True, from_attributes=True, populate_by_name=True, json_schema_mode_override="serialization"
    )

    id: UUID
    root_id: UUID
    parent_id: UUID | None
    name: str
    system_prompt_id: UUID
    head_id: UUID | None = Field(description="Last message of this state's history; null when empty.")
    model: str
    metadata: dict[str, Any] = Field(validation_alias=AliasChoices("metadata_", "metadata"))
    model_settings: dict[str, Any]
    created_at: datetime

    _store: Store | None = PrivateAttr(default=None)
    _history: Any = PrivateAttr(default=None)  # the store's cached history holder, kept alive with the view

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    def __eq__(self, other: object) -> bool:
        """Equal when every field is equal; the store binding and cached history do not count."""
        if not isinstance(other, PersistentAgent):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def conversation_id(self) -> UUID | None:
        """Identity of the history: two states with the same head share the same messages (O(1) check)."""
        return self.head_id

    def _bound(self) -> Store:
        if self._store is None:
            raise AgentNotRegisteredError(
                f"agent {self.id} is not bound to a store; load it with store.load_agent(id)"
            )
        return self._store

    async def advance(
        self,
        text: str,
        *,
        mcp: ToolProvider | None = None,
        max_retries: int = 3,
        timeout: float = 120.0,
        max_tool_rounds: int = 10,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        session: AsyncSession | None = None,
    ) -> PersistentAgent:
        """Send ``text`` to the model and return the NEW state holding the reply. Nothing is written
        unless the whole turn succeeds; with ``session=`` the rows join the caller's transaction."""
        sampling = {"temperature": temperature, "max_tokens": max_tokens, "top_p": top_p}
        options = TurnOptions(mcp, max_retries, timeout, max_tool_rounds, sampling)
        return await self._bound()._advance(self, text, options, session)

    def advance_stream(
        self,
        text: str,
        *,
        mcp: ToolProvider | None = None,
        max_retries: int = 3,
        timeout: float = 120.0,
        max_tool_rounds: int = 10,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
    ) -> AsyncIterator[TurnEvent]:
        """Like ``advance`` but yields events as they arrive (text deltas, tool calls); the last event
        carries the new state. A consumer that stops early leaves the database unchanged."""
        sampling = {"temperature": temperature, "max_tokens": max_tokens, "top_p": top_p}
        options = TurnOptions(mcp, max_retries, timeout, max_tool_rounds, sampling)
        return self._bound()._advance_stream(self, text, options)

    async def messages(self) -> tuple[Message, ...]:
        """This state's whole history, oldest first (one query when not cached)."""
        return await self._bound()._history(self)

    async def get_messages(self) -> tuple[Message, ...]:
        """Alias of ``messages()`` (the original immagent's name)."""
        return await self.messages()

    async def lineage(self) -> tuple[PersistentAgent, ...]:
        """The chain of states that led here, root first; stops at a deleted ancestor."""
        return await self._bound()._lineage(self)

    async def get_lineage(self) -> tuple[PersistentAgent, ...]:
        """Alias of ``lineage()`` (the original immagent's name)."""
        return await self.lineage()

    async def children(self) -> tuple[PersistentAgent, ...]:
        """The states made directly from this one (advances, clones' siblings excluded), oldest first."""
        return await self._bound()._children(self)

    async def system_prompt(self) -> str:
        """The text of this state's system prompt."""
        return await self._bound()._text(self.system_prompt_id)

    async def last_response(self) -> str | None:
        """The content of the last assistant message, or None when there is none."""
        for message in reversed(await self.messages()):
            if message.role == "assistant" and message.content:
                return message.content
        return None

    async def token_usage(self) -> tuple[int, int]:
        """(input_tokens, output_tokens) summed over the whole history; (0, 0) for a fresh agent."""
        history = await self.messages()
        return (
            sum(m.input_tokens or 0 for m in history),
            sum(m.output_tokens or 0 for m in history),
        )

    async def clone(self, *, session: AsyncSession | None = None) -> PersistentAgent:
        """A sibling: same parent, same history (no message is copied), new id."""
        return await self._bound()._derive(self, parent_id=self.parent_id, session=session)

    async def with_metadata(
        self, metadata: dict[str, Any], *, session: AsyncSession | None = None
    ) -> PersistentAgent:
        """A child state with ``metadata`` replacing this one's (None means empty); same history."""
        return await self._bound()._derive(
            self, parent_id=self.id, metadata={} if metadata is None else metadata, session=session
        )
