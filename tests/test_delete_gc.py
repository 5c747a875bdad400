"""delete() removes one state and rewrites nothing; gc() removes only what no remaining state reaches."""

from __future__ import annotations

import pytest

from immagent import AgentNotFoundError, Store
from tests.support.db import row_counts, snapshot
from tests.support.openai_server import ScriptedOpenAIServer

MODEL = "gpt-4o-mini"


async def test_deleting_a_state_keeps_its_descendants_whole(store: Store, llm: ScriptedOpenAIServer) -> None:
    root = await store.create_agent(name="a", system_prompt="p", model=MODEL)
    one = await root.advance("1")
    two = await one.advance("2")
    three = await two.advance("3")
    expected = await three.messages()
    before = {repr(r) for r in await snapshot(store.engine)}

    await store.delete(two)

    after = {repr(r) for r in await snapshot(store.engine)}
    assert before - after and after <= before  # only removals: no row was rewritten
    assert len(before - after) == 1
    with pytest.raises(AgentNotFoundError):
        await store.load_agent(two.id)
    store.clear_cache()
    survivor = await store.load_agent(three.id)
    assert await survivor.messages() == expected
    assert [a.id for a in await survivor.lineage()] == [three.id]  # stops at the gap
    assert [a.id for a in await (await store.load_agent(one.id)).lineage()] == [root.id, one.id]
    with pytest.raises(AgentNotFoundError):
        await store.delete(two.id)


async def test_gc_removes_only_what_no_remaining_state_reaches(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    root = await store.create_agent(name="a", system_prompt="p", model=MODEL)
    one = await root.advance("1")
    branch = await one.advance("branch")  # 2 messages only this branch reaches
    main = await one.advance("main")
    lonely = await store.create_agent(name="b", system_prompt="only mine", model=MODEL)

    assert await store.gc() == {"messages": 0, "texts": 0}

    await store.delete(branch)
    await store.delete(lonely)
    counts = await row_counts(store.engine)
    assert await store.gc() == {"messages": 2, "texts": 1}
    after = await row_counts(store.engine)
    assert counts["immagent_messages"] - after["immagent_messages"] == 2
    store.clear_cache()
    for state in (root, one, main):
        fresh = await store.load_agent(state.id)
        assert await fresh.messages() == await state.messages()
    assert await store.gc() == {"messages": 0, "texts": 0}


async def test_gc_keeps_the_history_of_a_state_whose_ancestors_are_all_deleted(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    root = await store.create_agent(name="a", system_prompt="p", model=MODEL)
    one = await root.advance("1")
    two = await one.advance("2")
    for state in (root, one):
        await store.delete(state)
    assert await store.gc() == {"messages": 0, "texts": 0}
    store.clear_cache()
    assert len(await (await store.load_agent(two.id)).messages()) == 4
