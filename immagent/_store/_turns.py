"""A turn on a stored state: read what it needs (no connection kept), run the pure core, then write the
new messages and the new state in one transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import Connection, insert
from sqlalchemy.ext.asyncio import AsyncSession

from immagent import _advance as core
from immagent import _validation as check
from immagent._advance import Turn, TurnComplete, TurnEvent, TurnOptions, TurnResult
from immagent._messages import Message
from immagent._orm import AGENTS, MESSAGES
from immagent._store import _agents
from immagent._store._database import check_session
from immagent._store._rows import agent_from_values, derived_agent, message_values
from immagent._views import PersistentAgent

if TYPE_CHECKING:
    from immagent._store._store import Store

# Built once: a statement object keeps its cache key, so each turn finds its compiled form at once.
_INSERT_MESSAGES = insert(MESSAGES)
_INSERT_AGENT = insert(AGENTS)


async def prepare(
    store: Store, agent: PersistentAgent, text: str, options: TurnOptions, session: AsyncSession | None = None
) -> Turn:
    """Check the inputs, then read what the turn needs (cache first); no connection is kept."""
    extra = check.turn_request(text, options)
    check_session(session)
    history = await _agents.history(store, agent)
    prompt = await _agents.text(store, agent.system_prompt_id)
    wire = store._cache.history_wire(agent)
    if wire is None:  # the first turn from this history: convert it once, keep it with the history
        wire = core.wire_forms(history)
        store._cache.keep_history_wire(agent, wire)
    settings = {**agent.model_settings, **extra}
    return Turn(history, prompt, text, agent.model, settings, options, wire)


#: What else a turn's transaction writes once the new state is in (a thread's move), on the unit's
#: connection, synchronously, in the same greenlet: (connection, the new state's id).
AlsoWrite = Callable[[Connection, UUID], None]


async def commit(
    store: Store,
    agent: PersistentAgent,
    history: tuple[Message, ...] | None,
    new: Sequence[Message],
    session: AsyncSession | None,
    also: AlsoWrite | None = None,
    *,
    wire: list[dict[str, Any]] | None = None,
) -> PersistentAgent:
    """Insert a turn's messages and the new state (and ``also``) in one transaction (or the caller's).
    ``history`` is ``agent``'s, when known (the new state then carries its whole history); ``wire`` is
    the new history's wire form (``TurnResult.history_wire``), kept with it for the next turn."""
    row = derived_agent(agent, parent_id=agent.id, head_id=new[-1].id, metadata=agent.metadata)
    messages = [message_values(m, agent.root_id, agent.tenant) for m in new]

    def insert_turn(conn: Connection) -> None:
        # The messages in one statement, then the agent that points at them.
        conn.execute(_INSERT_MESSAGES, messages)
        conn.execute(_INSERT_AGENT, row)
        if also is not None:
            also(conn, row["id"])

    await store._db.write_many(insert_turn, session)
    view = agent_from_values(row)
    known = None if history is None else history + tuple(new)
    return _agents.bind(store, view, known, cache=session is None, wire=wire)


async def advance(
    store: Store,
    agent: PersistentAgent,
    text: str,
    options: TurnOptions,
    session: AsyncSession | None,
    also: AlsoWrite | None = None,
) -> PersistentAgent:
    turn = await prepare(store, agent, text, options, session)
    result = await core.advance(turn)
    return await commit(store, agent, turn.history, result.messages, session, also, wire=result.history_wire)


async def advance_stream(
    store: Store, agent: PersistentAgent, text: str, options: TurnOptions, also: AlsoWrite | None = None
) -> AsyncIterator[TurnEvent]:
    turn = await prepare(store, agent, text, options)
    async for event in core.run_turn(turn, stream=True):
        if isinstance(event, TurnResult):
            new_agent = await commit(
                store, agent, turn.history, event.messages, None, also, wire=event.history_wire
            )
            yield TurnComplete(new_agent, event.messages)
        else:
            yield event
