"""An OpenAI Agents SDK session on an immagent thread: every state immutable, branches that copy nothing.

Usage::

    from agents import Agent, Runner
    from immagent import Store
    from immagent.integrations.openai_agents import ImmagentSession

    store = await Store.connect("postgresql://app@db/app")     # or engine=your_app_engine
    session = ImmagentSession("user-123", store)                # store.tenant("acme") for a tenant's
    result = await Runner.run(agent, "Hello", session=session)

The session is the thread whose key is the session id (created on first write, pointing at an empty
state). Each SDK item becomes one immagent message that keeps the item unchanged (its native form)
beside a readable projection, so ``get_items`` gives back exactly what was added, and immagent's views,
CLI and inspector read the conversation. Nothing is ever rewritten or deleted:

- ``add_items`` appends one new state holding the items and moves the thread to it, in one transaction;
- ``pop_item`` moves the thread to a new state that lacks the last item (its message stays);
- ``clear_session`` moves the thread to an empty state; the history before it stays in the thread's
  log: ``thread = await session.thread(); await thread.move(previous.agent_id)`` restores it, where
  ``previous`` is the log's entry before the clear (``(await thread.log())[-2]``);
- ``branch(new_id, at=...)`` starts a second session from any state of this one (a copy of nothing).

Concurrent writers (two processes, or two session objects, on one session id) are safe: a write that
finds the thread moved since it read it re-reads the head and appends again, as the SDK's own sessions
interleave concurrent ``add_items``; no item is lost and none is written twice.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

try:
    from agents.memory.session_settings import (
        SessionSettings,
        coerce_session_settings,
        resolve_session_limit,
    )
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without the SDK
    raise ImportError(
        "immagent.integrations.openai_agents needs the OpenAI Agents SDK: "
        "pip install 'immagent[openai-agents]'"
    ) from exc

from immagent import _validation as check
from immagent._errors import ConflictError, ThreadExistsError, ThreadNotFoundError, ValidationError
from immagent._views import PersistentAgent
from immagent.integrations._openai_items import FORMAT, check_items, to_items, to_message

if TYPE_CHECKING:
    from agents.items import TResponseInputItem

    from immagent._store import Store
    from immagent._views import Thread

__all__ = ["FORMAT", "ImmagentSession"]

#: The system prompt and model of the empty state a new session starts from: the SDK's agent has its
#: own instructions and model, which the session never sees; these only label the stored states.
DEFAULT_SYSTEM_PROMPT = "A conversation of an OpenAI Agents SDK session."
DEFAULT_MODEL = "openai-agents"
#: How often a write re-reads the thread after another writer moved it, before it gives up (ConflictError).
MAX_ATTEMPTS = 50


class ImmagentSession:
    """The SDK's ``Session`` protocol (``get_items``, ``add_items``, ``pop_item``, ``clear_session``,
    ``session_id``, ``session_settings``) on the immagent thread keyed by ``session_id`` in ``store``'s
    tenant. ``model`` and ``system_prompt`` label the empty state a new session starts from;
    ``session_settings`` (or its dict form) gives ``get_items()`` a default limit, as the SDK's do."""

    session_settings: SessionSettings | None

    def __init__(
        self,
        session_id: str,
        store: Store,
        *,
        model: str = DEFAULT_MODEL,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        self.session_id = check.thread_key(session_id)
        self.store = store
        self.model = check.text("model", model, max_length=255)
        self.system_prompt = check.text("system_prompt", system_prompt)
        self.session_settings = (
            coerce_session_settings(session_settings) if session_settings is not None else SessionSettings()
        )

    def __repr__(self) -> str:
        return f"ImmagentSession({self.session_id!r}, tenant={self.store.tenant_name!r})"

    # ------------------------------------------------------------------ the thread

    async def thread(self) -> Thread | None:
        """The session's thread as it is now (None before the first write): its ``log()`` lists every
        state the session went through, and ``move()`` returns it to any of them."""
        try:
            return await self.store.load_thread(self.session_id)
        except ThreadNotFoundError:
            return None

    async def _thread_or_create(self) -> Thread:
        """The session's thread, created pointing at an empty state on first use: the state and the thread
        in one transaction, so when a concurrent creator wins the race nothing of this one is written and
        its thread is taken."""
        thread = await self.thread()
        if thread is not None:
            return thread
        try:
            async with self._transaction() as session:
                empty = await self.store.create_agent(
                    name=self.session_id[:255],
                    system_prompt=self.system_prompt,
                    model=self.model,
                    session=session,
                )
                return await self.store.create_thread(self.session_id, empty, session=session)
        except ThreadExistsError:
            return await self.store.load_thread(self.session_id)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        """One transaction on the store's engine for writes that must land together (``session=``)."""
        async with AsyncSession(self.store.engine, expire_on_commit=False) as session, session.begin():
            yield session

    async def _moved(self, attempt: int) -> None:
        """Back off a little before the next attempt of a write that lost a race (jitter breaks ties)."""
        if attempt + 1 >= MAX_ATTEMPTS:
            raise ConflictError(
                self.session_id,
                f"session {self.session_id!r}: the thread kept moving under {MAX_ATTEMPTS} attempts; "
                "nothing was written",
            )
        await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))

    # ------------------------------------------------------------------ the Session protocol

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The latest ``limit`` items (all when None, or ``session_settings.limit``), oldest first, read
        in one query that loads no more messages than asked for. Like the SDK's SQLiteSession, a limit of
        0 gives no items and a negative one all of them."""
        resolved = resolve_session_limit(limit, self.session_settings)
        if resolved is not None and (isinstance(resolved, bool) or not isinstance(resolved, int)):
            raise ValidationError("limit", f"must be an integer or None, not {type(resolved).__name__}")
        if resolved == 0:
            return []
        thread = await self.thread()
        if thread is None:
            return []
        head = await thread.head()
        last = resolved if resolved is not None and resolved > 0 else None
        messages = await head.messages(last=last) if last is not None else await head.messages()
        items = [item for message in messages for item in to_items(message)]
        if last is not None:
            items = items[-last:]  # a message of another writer may read as more than one item
        return cast("list[TResponseInputItem]", items)

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` as ONE new state and move the thread to it, in one transaction. Every item is
        checked first: ValidationError naming the item (and its key) when one is not JSON or not an SDK
        input item, with nothing written."""
        checked = check_items(items)
        if not checked:
            return
        for attempt in range(MAX_ATTEMPTS):
            thread = await self._thread_or_create()
            try:
                await thread.extend([to_message(item) for item in checked])
                return
            except ConflictError:
                await self._moved(attempt)

    async def pop_item(self) -> TResponseInputItem | None:
        """Move the thread to a new state whose history lacks the last item, and return that item (None
        on an empty session). The item's message is not deleted: the former state still holds it."""
        for attempt in range(MAX_ATTEMPTS):
            thread = await self.thread()
            if thread is None:
                return None
            head = await thread.head()
            last = await head.messages(last=1)
            if not last:
                return None
            try:
                await thread.rewind(1)
            except ConflictError:
                await self._moved(attempt)
                continue
            return cast("TResponseInputItem", to_items(last[0])[-1])
        raise AssertionError("unreachable")  # pragma: no cover

    async def clear_session(self) -> None:
        """Move the thread to an empty state (a child of the current one). Nothing is deleted: the cleared
        history stays in the thread's log, and ``thread.move()`` to the state before brings it back."""
        for attempt in range(MAX_ATTEMPTS):
            thread = await self.thread()
            if thread is None:
                return
            head = await thread.head()
            last = await head.messages(last=1)
            if not last:
                return
            try:
                await thread.rewind(last[0].depth + 1)
                return
            except ConflictError:
                await self._moved(attempt)

    # ------------------------------------------------------------------ beyond the protocol

    async def branch(
        self, session_id: str, *, at: int | PersistentAgent | UUID | str | None = None
    ) -> ImmagentSession:
        """A new session ``session_id`` that starts from a state of this one and then goes its own way;
        no message is copied. ``at``: None for the current state; an int ``n`` for the state holding the
        first ``n`` items of the current history; or any state of this tenant (a PersistentAgent or its
        id, for example a ``ThreadMove.agent_id`` from ``(await session.thread()).log()``).
        ThreadNotFoundError when this session was never written; ThreadExistsError when ``session_id`` is
        taken; ValidationError for an ``at`` out of range. Nothing is written when it fails."""
        check.thread_key(session_id)
        async with self._transaction() as session:  # a state made for the branch lands with it, or not
            start = await self._state_at(at, session)
            await self.store.create_thread(session_id, start, session=session)
        return ImmagentSession(
            session_id,
            self.store,
            model=self.model,
            system_prompt=self.system_prompt,
            session_settings=self.session_settings,
        )

    async def _state_at(
        self, at: int | PersistentAgent | UUID | str | None, session: AsyncSession
    ) -> PersistentAgent:
        """The state a branch starts from; a rewind of the head, written in ``session``, when ``at`` counts
        fewer items than the head holds."""
        if isinstance(at, bool) or not (at is None or isinstance(at, int | PersistentAgent | UUID | str)):
            raise ValidationError("at", f"must be an item count, a state or None, not {type(at).__name__}")
        if isinstance(at, PersistentAgent | UUID | str):
            return at if isinstance(at, PersistentAgent) else await self.store.load_agent(at)
        thread = await self.thread()
        if thread is None:
            raise ThreadNotFoundError(self.session_id, f"session {self.session_id!r} has never been written")
        head = await thread.head()
        if at is None:
            return head
        last = await head.messages(last=1)
        length = last[0].depth + 1 if last else 0
        if not 0 <= at <= length:
            raise ValidationError("at", f"must be between 0 and the session's {length} items, got {at}")
        return head if at == length else await head.rewind(length - at, session=session)
