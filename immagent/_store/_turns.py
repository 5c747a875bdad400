"""A turn on a stored state: read what it needs (no connection kept), run the pure core, then write the
new messages and the new state in one transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING
from uuid import UUID

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from immagent import _advance as core
from immagent import _validation as check
from immagent._advance import Turn, TurnComplete, TurnEvent, TurnOptions, TurnResult
from immagent._messages import Message
from immagent._orm import MESSAGES, AgentRow
from immagent._store import _agents
from immagent._store._database import check_session
from immagent._store._rows import agent_view, derived_agent, message_values
from immagent._views import PersistentAgent

if TYPE_CHECKING:
    from immagent._store._store import Store


async def prepare(
    store: Store, agent: PersistentAgent, text: str, options: TurnOptions, session: AsyncSession | None = None
) -> Turn:
    """Check the inputs, then read what the turn needs (cache first); no connection is kept."""
    extra = check.turn_request(text, options)
    check_session(session)
    history = await _agents.history(store, agent)
    prompt = await _agents.text(store, agent.system_prompt_id)
    return Turn(history, prompt, text, agent.model, {**agent.model_settings, **extra}, options)


#: What else a turn's transaction writes once the new state is in (a thread's move): (session, new id).
AlsoWrite = Callable[[AsyncSession, UUID], Awaitable[None]]


async def commit(
    store: Store,
    agent: PersistentAgent,
    history: tuple[Message, ...],
    new: Sequence[Message],
    session: AsyncSession | None,
    also: AlsoWrite | None = None,
) -> PersistentAgent:
    """Insert a turn's messages and the new state (and ``also``) in one transaction (or the caller's)."""
    row = derived_agent(agent, parent_id=agent.id, head_id=new[-1].id, metadata=agent.metadata)
    async with store._db.write(session) as s:
        # One multi-row INSERT for the messages, then the agent that points at them.
        await s.execute(insert(MESSAGES), [message_values(m, agent.root_id, agent.tenant) for m in new])
        await s.execute(insert(AgentRow), [row])
        if also is not None:
            await also(s, row["id"])
    return _agents.bind(store, agent_view(row), history + tuple(new), cache=session is None)


async def advance(
    store: Store,
    agent: PersistentAgent,
    text: str,
    options: TurnOptions,
    session: AsyncSession | None,
    also: AlsoWrite | None = None,
) -> PersistentAgent:
    turn = await prepare(store, agent, text, options, session)
    new = await core.advance(turn)
    return await commit(store, agent, turn.history, new, session, also)


async def advance_stream(
    store: Store, agent: PersistentAgent, text: str, options: TurnOptions, also: AlsoWrite | None = None
) -> AsyncIterator[TurnEvent]:
    turn = await prepare(store, agent, text, options)
    async for event in core.run_turn(turn, stream=True):
        if isinstance(event, TurnResult):
            new_agent = await commit(store, agent, turn.history, event.messages, None, also)
            yield TurnComplete(new_agent, event.messages)
        else:
            yield event
