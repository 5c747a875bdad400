"""Structural sharing: a turn writes only its new rows, a clone copies nothing, reads are one query."""

from __future__ import annotations

import logging
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from immagent import PersistentAgent, Store
from tests.support.db import StatementCounter, row_counts
from tests.support.openai_server import ScriptedOpenAIServer

MODEL = "gpt-4o-mini"


async def bytes_of_turn(engine: AsyncEngine, agent: PersistentAgent) -> int:
    """PostgreSQL's on-disk size of the rows one turn added: its agent row and its new messages."""
    async with engine.connect() as conn:
        agent_bytes = (
            await conn.execute(
                text("SELECT pg_column_size(a.*) FROM immagent_agents a WHERE a.id = :id"), {"id": agent.id}
            )
        ).scalar_one()
        history = await agent.messages()
        new_ids: list[UUID] = [m.id for m in history[-2:]]
        message_bytes = (
            await conn.execute(
                text("SELECT sum(pg_column_size(m.*)) FROM immagent_messages m WHERE m.id = ANY(:ids)"),
                {"ids": new_ids},
            )
        ).scalar_one()
    return int(agent_bytes) + int(message_bytes)


async def test_a_turn_writes_the_same_rows_and_bytes_at_turn_5_and_turn_200(
    store: Store, llm: ScriptedOpenAIServer, backend: str
) -> None:
    agent = await store.create_agent(name="long", system_prompt="p", model=MODEL)
    added: dict[int, dict[str, int]] = {}
    sizes: dict[int, int] = {}
    for turn in range(1, 201):
        before = await row_counts(store.engine) if turn in (5, 200) else None
        agent = await agent.advance(f"question {turn:04d}")
        if before is not None:
            after = await row_counts(store.engine)
            added[turn] = {k: after[k] - before[k] for k in after}
            if backend == "postgresql":
                sizes[turn] = await bytes_of_turn(store.engine, agent)
    expected = {"immagent_agents": 1, "immagent_messages": 2, "immagent_texts": 0}
    expected |= {"immagent_threads": 0, "immagent_thread_moves": 0}
    assert added[5] == expected
    assert added[200] == expected
    assert len(await agent.messages()) == 400
    if backend == "postgresql":
        assert sizes[5] > 0
        assert abs(sizes[200] - sizes[5]) <= 0.02 * sizes[5], sizes


async def test_a_clone_writes_one_agent_row_and_no_message(store: Store, llm: ScriptedOpenAIServer) -> None:
    agent = await store.create_agent(name="a", system_prompt="p", model=MODEL)
    for i in range(5):
        agent = await agent.advance(str(i))
    before = await row_counts(store.engine)
    await agent.clone()
    await agent.with_metadata({"x": 1})
    after = await row_counts(store.engine)
    assert {k: after[k] - before[k] for k in after} == {
        "immagent_agents": 2,
        "immagent_messages": 0,
        "immagent_texts": 0,
        "immagent_threads": 0,
        "immagent_thread_moves": 0,
    }


async def test_a_thread_turn_adds_one_log_row_and_a_move_adds_only_that(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    agent = await store.create_agent(name="a", system_prompt="p", model=MODEL)
    thread = await store.create_thread("t", agent)
    before = await row_counts(store.engine)
    thread = await thread.advance("hi")
    turned = await row_counts(store.engine)
    await thread.move(agent)
    moved = await row_counts(store.engine)
    assert {k: turned[k] - before[k] for k in turned} == {
        "immagent_agents": 1, "immagent_messages": 2, "immagent_texts": 0,
        "immagent_threads": 0, "immagent_thread_moves": 1,
    }  # fmt: skip
    assert {k: moved[k] - turned[k] for k in moved if moved[k] != turned[k]} == {"immagent_thread_moves": 1}


async def test_a_shared_system_prompt_is_stored_once(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    for i in range(5):
        await store.create_agent(name=f"a{i}", system_prompt="the same long prompt", model=MODEL)
    await store.create_agent(name="other", system_prompt="another prompt", model=MODEL)
    assert (await row_counts(store.engine))["immagent_texts"] == 2
    # Skipping the stored prompt is no event: MySQL's INSERT IGNORE would log a warning per agent.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_reading_a_history_and_a_lineage_is_one_query_each(
    store: Store, llm: ScriptedOpenAIServer, count_statements: StatementCounter
) -> None:
    agent = await store.create_agent(name="a", system_prompt="p", model=MODEL)
    for i in range(10):
        agent = await agent.advance(str(i))
    store.clear_cache()
    cold = await store.load_agent(agent.id)
    count_statements.statements.clear()
    history = await cold.messages()
    assert len(history) == 20
    assert count_statements.count == 1, count_statements.statements
    count_statements.statements.clear()
    lineage = await cold.lineage()
    assert len(lineage) == 11
    assert count_statements.count == 1, count_statements.statements
