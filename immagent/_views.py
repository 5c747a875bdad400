"""Frozen Pydantic views of stored rows: what callers get, serialise and return from APIs.

A view carries no storage plumbing in its fields: ``model_dump()`` is a plain payload. A PersistentAgent
loaded or created by a store keeps a private reference to that store so its methods (``advance``,
``messages``, ...) work; one built by hand or from JSON has none and says so (AgentNotRegisteredError).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from immagent._advance import TurnOptions
from immagent._constants import DEFAULT_TENANT
from immagent._errors import AgentNotRegisteredError
from immagent._messages import Message, NativeForm, ToolCall, as_utc

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from immagent._advance import ToolProvider, TurnEvent
    from immagent._store import Store

__all__ = ["Message", "NativeForm", "PersistentAgent", "SystemPrompt", "Thread", "ThreadMove", "ToolCall"]


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
    tenant: str = Field(default=DEFAULT_TENANT, description="The tenant this state belongs to.")
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

    async def messages(self, last: int | None = None) -> tuple[Message, ...]:
        """This state's whole history, oldest first (one query when not cached); with ``last``, only its
        newest ``last`` messages, still oldest first, in one query that reads no more than those."""
        if last is None:
            return await self._bound()._history(self)
        return await self._bound()._recent(self, last)

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

    async def extend(
        self, messages: Sequence[Message], *, session: AsyncSession | None = None
    ) -> PersistentAgent:
        """A new state (a child of this one) whose history is this one's plus ``messages``, written in one
        transaction without calling a model: how messages another framework produced become a state.
        Each message gives what it says (role, content, tool calls, tokens, ``native``); the store gives
        it a new id, its parent, depth and time. ValidationError (nothing written) for a bad message."""
        return await self._bound()._extend(self, messages, session)

    async def rewind(self, count: int = 1, *, session: AsyncSession | None = None) -> PersistentAgent:
        """A new state (a child of this one) whose history is this one's without its last ``count``
        messages (``count`` = the history's length: an empty history). Nothing is deleted or rewritten:
        this state and its messages stay. ValidationError when ``count`` is negative or too large."""
        return await self._bound()._rewind(self, count, session)

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


class ThreadMove(BaseModel):
    """One entry of a thread's log: from ``created_at`` on, the thread pointed at ``agent_id``."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    tenant: str
    key: str
    position: int = Field(description="0 for the thread's creation, then one more per move.")
    agent_id: UUID
    kind: Literal["create", "advance", "move"]
    created_at: datetime

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)


class Thread(BaseModel):
    """A thread as it was when read: a key (unique in its tenant) pointing at one state, at one position
    of its log. The thread itself moves (``advance``, ``move``); this view does not: each move returns a
    new view, and a move from a stale view raises ConflictError instead of overwriting a newer one."""

    model_config = ConfigDict(
        frozen=True, from_attributes=True, populate_by_name=True, json_schema_mode_override="serialization"
    )

    tenant: str
    key: str
    agent_id: UUID = Field(description="The state the thread points at (its head).")
    position: int = Field(description="Position of that move in the thread's log (0 at creation).")
    metadata: dict[str, Any] = Field(validation_alias=AliasChoices("metadata_", "metadata"))
    created_at: datetime
    moved_at: datetime = Field(description="When the thread was moved to its head.")

    _store: Store | None = PrivateAttr(default=None)
    _head: Any = PrivateAttr(default=None)  # the head's view when known, kept alive with this view
    _root_id: Any = PrivateAttr(default=None)  # the head's tree (its shard on Citus), when read

    @field_validator("created_at", "moved_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    def __eq__(self, other: object) -> bool:
        """Equal when every field is equal; the store binding does not count."""
        if not isinstance(other, Thread):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((self.tenant, self.key, self.position))

    def _bound(self) -> Store:
        if self._store is None:
            raise AgentNotRegisteredError(
                f"thread {self.key!r} is not bound to a store; load it with store.load_thread(key)"
            )
        return self._store

    async def head(self) -> PersistentAgent:
        """The state this thread points at (from the cache when it is there)."""
        return await self._bound()._threads_head(self)

    async def log(self) -> tuple[ThreadMove, ...]:
        """Every move of this thread, oldest first (one query); later moves than this view's included."""
        return await self._bound()._threads_log(self)

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
    ) -> Thread:
        """Advance the head with ``text`` and move the thread to the new state, in ONE transaction with
        the turn's messages and the new state. ConflictError (nothing written) when another writer moved
        the thread since this view was read; with ``session=`` the caller's transaction decides."""
        sampling = {"temperature": temperature, "max_tokens": max_tokens, "top_p": top_p}
        options = TurnOptions(mcp, max_retries, timeout, max_tool_rounds, sampling)
        return await self._bound()._threads_advance(self, text, options, session)

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
        """Like ``advance`` but yields events as they arrive; the last event (TurnComplete) carries the
        new state and, as ``thread``, the moved thread. A consumer that stops early writes nothing."""
        sampling = {"temperature": temperature, "max_tokens": max_tokens, "top_p": top_p}
        options = TurnOptions(mcp, max_retries, timeout, max_tool_rounds, sampling)
        return self._bound()._threads_advance_stream(self, text, options)

    async def extend(self, messages: Sequence[Message], *, session: AsyncSession | None = None) -> Thread:
        """Append ``messages`` to the head (``PersistentAgent.extend``) and move the thread to the new
        state, in ONE transaction; ConflictError (nothing written) when another writer moved the thread
        since this view was read."""
        return await self._bound()._threads_extend(self, messages, session)

    async def rewind(self, count: int = 1, *, session: AsyncSession | None = None) -> Thread:
        """Move the thread to a new state whose history is the head's without its last ``count`` messages
        (``PersistentAgent.rewind``), in ONE transaction; ConflictError when moved meanwhile. The former
        head stays in the thread's log."""
        return await self._bound()._threads_rewind(self, count, session)

    async def move(
        self, agent: PersistentAgent | UUID | str, *, session: AsyncSession | None = None
    ) -> Thread:
        """Point the thread at any state of its tenant (undo, switch branch, restore); ConflictError when
        another writer moved it since this view was read, AgentNotFoundError for a state it cannot see."""
        return await self._bound()._threads_move(self, agent, session)
