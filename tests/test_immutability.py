"""Immutability is enforced twice: by the ORM before any SQL, and by the database itself."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker

from immagent import ImmutabilityError, Store
from immagent._orm import AgentRow, MessageRow, TextRow
from tests.support.openai_server import ScriptedOpenAIServer

UPDATES = {
    "immagent_agents": "UPDATE immagent_agents SET name = 'changed'",
    "immagent_messages": "UPDATE immagent_messages SET content = 'changed'",
    "immagent_texts": "UPDATE immagent_texts SET content = 'changed'",
}


@pytest.mark.parametrize("table", sorted(UPDATES))
async def test_the_database_refuses_update_on_every_immagent_table(
    store: Store, llm: ScriptedOpenAIServer, table: str
) -> None:
    agent = await store.create_agent(name="a", system_prompt="p", model="gpt-4o-mini")
    await agent.advance("hi")
    async with store.engine.connect() as conn:
        with pytest.raises(DBAPIError, match="immutable"):
            await conn.execute(text(UPDATES[table]))
        await conn.rollback()
        unchanged = await conn.execute(text(f"SELECT count(*) FROM {table} WHERE {_col(table)} = 'changed'"))
        assert unchanged.scalar_one() == 0


def _col(table: str) -> str:
    return "name" if table == "immagent_agents" else "content"


@pytest.mark.parametrize("row_type", [AgentRow, MessageRow, TextRow])
async def test_the_orm_refuses_to_flush_an_update(
    store: Store, llm: ScriptedOpenAIServer, row_type: type
) -> None:
    agent = await store.create_agent(name="a", system_prompt="p", model="gpt-4o-mini")
    await agent.advance("hi")
    sessions = async_sessionmaker(store.engine)
    async with sessions() as session:
        row = (await session.execute(select(row_type).limit(1))).scalar_one()
        attribute = {"AgentRow": "name", "MessageRow": "content", "TextRow": "content"}[row_type.__name__]
        setattr(row, attribute, "changed")
        with pytest.raises(ImmutabilityError):
            await session.flush()
