"""Erasure: a tenant or one conversation tree removed physically, in one transaction, and nothing of any
other tenant or tree touched (row-by-row snapshots before and after). On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import pytest

from immagent import AgentNotFoundError, PersistentAgent, Store, ThreadNotFoundError, ValidationError
from tests.support.db import StatementFault, snapshot
from tests.support.openai_server import ScriptedOpenAIServer

MODEL = "gpt-4o-mini"


async def conversation(store: Store, name: str, prompt: str = "shared prompt") -> PersistentAgent:
    """A root, two turns, a branch from the first turn, and a thread on the latest state."""
    root = await store.create_agent(name=name, system_prompt=prompt, model=MODEL)
    first = await root.advance(f"{name} one")
    second = await first.advance(f"{name} two")
    await first.advance(f"{name} branch")
    await store.create_thread(f"{name}-thread", second)
    return root


def without(rows: list[tuple[Any, ...]], values: set[Any]) -> list[tuple[Any, ...]]:
    """The snapshot rows that hold none of ``values`` (ids, tenants, keys) in any column."""
    return [r for r in rows if not any(isinstance(v, Hashable) and v in values for v in r)]


async def test_erase_tenant_removes_all_of_it_and_leaves_every_other_row_byte_identical(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    acme, globex = store.tenant("acme"), store.tenant("globex")
    await conversation(acme, "a1", prompt="acme only prompt")
    await conversation(acme, "a2")
    await conversation(globex, "g1")
    await conversation(store, "d1")
    before = await snapshot(store.engine)

    counts = await store.erase_tenant("acme")
    assert counts == {"thread_moves": 2, "threads": 2, "agents": 8, "messages": 12, "texts": 1}
    after = await snapshot(store.engine)
    acme_prompt = {r[0] for r in before if "acme only prompt" in r}
    assert after == without(before, {"acme"} | acme_prompt)  # everything else, exactly as it was
    assert (await acme.stats())["agents"] == 0 and await acme.list_threads() == ()
    assert await globex.count_agents() == 4 and await store.count_agents() == 4
    assert (await (await globex.load_thread("g1-thread")).head()).tenant == "globex"


async def test_erasing_an_unknown_tenant_counts_zero_and_changes_nothing(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    await conversation(store, "d1")
    before = await snapshot(store.engine)
    assert await store.erase_tenant("nobody") == dict.fromkeys(
        ("thread_moves", "threads", "agents", "messages", "texts"), 0
    )
    assert await snapshot(store.engine) == before


async def test_a_scoped_store_erases_only_its_own_tenant(store: Store, llm: ScriptedOpenAIServer) -> None:
    await conversation(store.tenant("globex"), "g1")
    before = await snapshot(store.engine)
    with pytest.raises(ValidationError) as caught:
        await store.tenant("acme").erase_tenant("globex")
    assert caught.value.field == "tenant"
    assert await snapshot(store.engine) == before
    assert (await store.tenant("globex").erase_tenant("globex"))["agents"] == 4


async def test_erase_tree_removes_one_tree_and_the_threads_into_it(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    gone = await conversation(store, "gone")
    kept = await conversation(store, "kept")
    other = await conversation(store.tenant("acme"), "gone")  # same names, other tenant
    crossing = await store.create_thread("crossing", kept)  # pointed into the tree once, then moved out
    gone_state = (await store.list_agents(name="gone"))[0]
    crossing = await crossing.move(gone_state)
    crossing = await crossing.move(kept)
    before = await snapshot(store.engine)
    tree = {r[0] for r in before if len(r) > 2 and r[2] == gone.id}  # agents and messages: root_id
    assert len(tree) == 4 + 6

    counts = await store.erase_tree(gone.id)
    assert counts == {"thread_moves": 4, "threads": 2, "agents": 4, "messages": 6, "texts": 0}
    after = await snapshot(store.engine)
    threads = {("default", "gone-thread"), ("default", "crossing")}  # acme's "gone-thread" stays
    assert after == [r for r in without(before, tree) if r[:2] not in threads]
    for key in ("gone-thread", "crossing"):
        with pytest.raises(ThreadNotFoundError):
            await store.load_thread(key)
    with pytest.raises(AgentNotFoundError):
        await store.load_agent(gone.id)
    assert await store.tenant("acme").count_agents() == 4 and other.tenant == "acme"
    kept_head = await (await store.load_thread("kept-thread")).head()
    assert len(await kept_head.messages()) == 4


async def test_erase_tree_takes_any_state_of_the_tree_and_is_scoped_to_the_tenant(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    root = await conversation(store.tenant("acme"), "a")
    before = await snapshot(store.engine)
    assert (await store.erase_tree(root.id))["agents"] == 0  # the default tenant cannot see it
    assert (await store.tenant("globex").erase_tree(root))["agents"] == 0
    assert await snapshot(store.engine) == before
    state = (await store.tenant("acme").list_agents(limit=1))[0]
    assert (await store.tenant("acme").erase_tree(state))["agents"] == 4
    with pytest.raises(ValidationError):
        await store.erase_tree("not-an-id")


@pytest.mark.parametrize("at", [1, 3, 5, "commit"])
async def test_erasure_is_one_transaction(store: Store, llm: ScriptedOpenAIServer, at: int | str) -> None:
    await conversation(store.tenant("acme"), "a1")
    before = await snapshot(store.engine)
    fault = StatementFault(store.engine, at)
    with fault.armed(), pytest.raises(Exception, match="injected"):
        await store.erase_tenant("acme")
    assert fault.fired
    assert await snapshot(store.engine) == before
    assert (await store.erase_tenant("acme"))["agents"] == 4
