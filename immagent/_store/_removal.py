"""The only paths that remove rows: ``delete`` (one state) and ``gc`` (what no remaining state reaches)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import delete as delete_
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from immagent._errors import AgentNotFoundError
from immagent._ids import as_uuid
from immagent._orm import AGENTS, MESSAGES, TEXTS, AgentRow
from immagent._views import PersistentAgent

if TYPE_CHECKING:
    from immagent._store._store import Store


async def delete(store: Store, agent: PersistentAgent | UUID | str) -> None:
    key = agent.id if isinstance(agent, PersistentAgent) else as_uuid(agent, "agent")
    async with store._db.write() as s:
        result = await s.execute(delete_(AgentRow).where(AgentRow.id == key))
    if getattr(result, "rowcount", 1) == 0:
        raise AgentNotFoundError(key)
    store._cache.agents.pop(key, None)


async def gc(store: Store) -> dict[str, int]:
    messages, agents, texts = MESSAGES, AGENTS, TEXTS
    reach = (
        select(agents.c.head_id.label("id"))
        .where(agents.c.head_id.is_not(None))
        .cte("immagent_reach", recursive=True)
    )
    reach = reach.union(
        select(messages.c.parent_id)
        .join(reach, messages.c.id == reach.c.id)
        .where(messages.c.parent_id.is_not(None))
    )
    async with store._db.write() as s:
        gone_messages = await deleted(
            s, delete_(messages).where(messages.c.id.not_in(select(reach.c.id))), messages.c.id
        )
        gone_texts = await deleted(
            s, delete_(texts).where(texts.c.id.not_in(select(agents.c.system_prompt_id))), texts.c.id
        )
    store._cache.forget_texts()
    return {"messages": gone_messages, "texts": gone_texts}


async def deleted(session: AsyncSession, statement: Any, key: Any) -> int:
    """Run a DELETE and count its rows (RETURNING where the dialect has it: SQLite's rowcount is -1
    for a DELETE driven by a recursive CTE)."""
    if session.get_bind().dialect.delete_returning:
        return len((await session.execute(statement.returning(key))).all())
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0))
