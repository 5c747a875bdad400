"""Immutability is enforced twice: by the ORM before any SQL, and by the database itself."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker

from immagent import ImmutabilityError, Store
from immagent._orm import AgentRow, MessageRow, TextRow, ThreadMoveRow, ThreadRow
from tests.support.openai_server import ScriptedOpenAIServer

#: The column each UPDATE changes to 'changed' (a thread's move is refused like any row).
COLUMNS = {
    "immagent_agents": "name",
    "immagent_messages": "content",
    "immagent_texts": "content",
    "immagent_threads": "key",
    "immagent_thread_moves": "kind",
}


@pytest.mark.parametrize("table", sorted(COLUMNS))
async def test_the_database_refuses_update_on_every_immagent_table(
    store: Store, llm: ScriptedOpenAIServer, table: str
) -> None:
    agent = await store.create_agent(name="a", system_prompt="p", model="gpt-4o-mini")
    await (await store.create_thread("t", agent)).advance("hi")
    # Quoted as the dialect wants: ``key`` is a reserved word on MySQL.
    column = store.engine.dialect.identifier_preparer.quote(COLUMNS[table])
    async with store.engine.connect() as conn:
        with pytest.raises(DBAPIError, match="immutable"):
            await conn.execute(text(f"UPDATE {table} SET {column} = 'changed'"))
        await conn.rollback()
        unchanged = await conn.execute(text(f"SELECT count(*) FROM {table} WHERE {column} = 'changed'"))
        assert unchanged.scalar_one() == 0


@pytest.mark.parametrize("row_type", [AgentRow, MessageRow, TextRow, ThreadRow, ThreadMoveRow])
async def test_the_orm_refuses_to_flush_an_update(
    store: Store, llm: ScriptedOpenAIServer, row_type: type
) -> None:
    agent = await store.create_agent(name="a", system_prompt="p", model="gpt-4o-mini")
    await (await store.create_thread("t", agent)).advance("hi")
    sessions = async_sessionmaker(store.engine)
    async with sessions() as session:
        row = (await session.execute(select(row_type).limit(1))).scalar_one()
        attribute = COLUMNS[row_type.__tablename__]
        setattr(row, attribute, "changed")
        with pytest.raises(ImmutabilityError):
            await session.flush()
