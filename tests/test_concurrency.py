"""Concurrent turns: insert-only states never conflict, and no connection waits on a model."""

from __future__ import annotations

import asyncio
import time

from immagent import Store
from tests.support.db import row_counts
from tests.support.openai_server import Reply, ScriptedOpenAIServer

MODEL = "gpt-4o-mini"


async def test_twenty_concurrent_advances_of_one_agent_give_twenty_children(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    agent = await store.create_agent(name="a", system_prompt="p", model=MODEL)
    children = await asyncio.gather(*(agent.advance(f"question {i}") for i in range(20)))
    assert len({c.id for c in children}) == 20
    assert all(c.parent_id == agent.id for c in children)
    store.clear_cache()
    for i, child in enumerate(children):
        history = await (await store.load_agent(child.id)).messages()
        assert [m.role for m in history] == ["user", "assistant"]
        assert history[0].content == f"question {i}"
        assert history[1].content == f"echo: question {i}"
    assert {m.id for c in children for m in c._history.messages}.__len__() == 40
    assert len(await agent.children()) == 20


async def test_agents_created_at_once_with_one_new_prompt_store_it_once(store: Store) -> None:
    """Concurrent writers of the same content-addressed text: every creation succeeds, one row is kept."""
    for round_ in range(3):
        prompt = f"a prompt nobody has stored yet, round {round_}"
        agents = await asyncio.gather(
            *(store.create_agent(name=f"a{i}", system_prompt=prompt, model=MODEL) for i in range(10))
        )
        assert len({a.system_prompt_id for a in agents}) == 1
        store.clear_cache()
        assert {await (await store.load_agent(a.id)).system_prompt() for a in agents} == {prompt}
    assert (await row_counts(store.engine))["immagent_texts"] == 3


async def test_no_connection_is_held_while_the_model_runs(db_url: str, llm: ScriptedOpenAIServer) -> None:
    """10 turns of 0.5 s on a pool of 2: holding a connection during the call would need >= 2.5 s."""
    async with await Store.connect(db_url, min_size=2, max_size=2) as store:
        agents = [await store.create_agent(name=f"a{i}", system_prompt="p", model=MODEL) for i in range(10)]
        llm.default = lambda request: Reply(content="slow", delay=0.5)
        started = time.perf_counter()
        results = await asyncio.gather(*(a.advance("go") for a in agents))
        elapsed = time.perf_counter() - started
    assert [await r.last_response() for r in results] == ["slow"] * 10
    assert elapsed < 1.6, f"10 concurrent 0.5 s turns on a pool of 2 took {elapsed:.2f} s"
