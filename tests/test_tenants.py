"""Tenants: a scoped store stamps every write and filters every read; another tenant's ids and keys are
simply not found. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from immagent import (
    AgentNotFoundError,
    PersistentAgent,
    Store,
    Thread,
    ThreadExistsError,
    ThreadNotFoundError,
    ValidationError,
)
from immagent._orm import MESSAGES
from tests.support.db import snapshot
from tests.support.openai_server import ScriptedOpenAIServer

MODEL = "gpt-4o-mini"


@dataclass
class World:
    """Two tenants with the same shapes: a root, a turn, a thread, and the same names and keys."""

    acme: Store
    globex: Store
    acme_root: PersistentAgent
    acme_state: PersistentAgent
    acme_thread: Thread
    globex_state: PersistentAgent


@pytest.fixture
async def world(store: Store, llm: ScriptedOpenAIServer) -> World:
    acme, globex = store.tenant("acme"), store.tenant("globex")
    states = {}
    for tenant in (acme, globex):
        root = await tenant.create_agent(name="bot", system_prompt="shared prompt", model=MODEL)
        state = await root.advance(f"hello from {tenant.tenant_name}")
        thread = await tenant.create_thread("conversation", state)
        states[tenant.tenant_name] = (root, state, thread)
    store.clear_cache()  # every read below goes to the database
    return World(acme, globex, *states["acme"], states["globex"][1])


async def test_writes_carry_their_tenant_down_to_every_row(store: Store, world: World) -> None:
    assert world.acme_state.tenant == "acme" and world.globex_state.tenant == "globex"
    clone = await (await world.acme.load_agent(world.acme_state.id)).clone()
    assert clone.tenant == "acme"
    async with store.engine.connect() as conn:
        tenants = (await conn.execute(select(MESSAGES.c.tenant, MESSAGES.c.content))).all()
    assert sorted(tenants) == [
        ("acme", "echo: hello from acme"), ("acme", "hello from acme"),
        ("globex", "echo: hello from globex"), ("globex", "hello from globex"),
    ]  # fmt: skip
    assert world.acme_thread.tenant == "acme"
    assert (await world.acme.stats())["texts"] == (await world.globex.stats())["texts"] == 1
    assert (await store.stats())["texts"] == 1  # one shared prompt, stored once


#: Every public read of a store, asked by globex for what acme owns: each must say "not found" (or list
#: nothing), exactly as for an id or key that never existed.
READS: list[tuple[str, Callable[[World], Awaitable[Any]], type[Exception] | None]] = [
    ("load_agent", lambda w: w.globex.load_agent(w.acme_state.id), AgentNotFoundError),
    ("load_agent str", lambda w: w.globex.load_agent(str(w.acme_state.id)), AgentNotFoundError),
    ("load_agents", lambda w: w.globex.load_agents([w.globex_state.id, w.acme_state.id]), AgentNotFoundError),
    ("load_thread", lambda w: w.globex.load_thread("conversation"), None),  # globex has its own
    ("load_thread other", lambda w: w.globex.load_thread("private"), ThreadNotFoundError),
    ("delete", lambda w: w.globex.delete(w.acme_root.id), AgentNotFoundError),
    ("create_thread", lambda w: w.globex.create_thread("x", w.acme_state.id), AgentNotFoundError),
    ("create_thread view", lambda w: w.globex.create_thread("x", w.acme_state), AgentNotFoundError),
    ("delete_thread", lambda w: w.globex.delete_thread("private"), ThreadNotFoundError),
]


@pytest.mark.parametrize(("name", "read", "error"), READS, ids=[r[0] for r in READS])
async def test_another_tenants_ids_and_keys_are_not_found(
    store: Store,
    world: World,
    name: str,
    read: Callable[[World], Awaitable[Any]],
    error: type[Exception] | None,
) -> None:
    await world.acme.create_thread("private", world.acme_root)
    before = await snapshot(store.engine)
    if error is None:
        found = await read(world)
        assert isinstance(found, Thread) and found.tenant == "globex"
        assert found.agent_id == world.globex_state.id
    else:
        with pytest.raises(error) as caught:
            await read(world)
        assert "acme" not in str(caught.value)  # no hint of where it lives
    assert await snapshot(store.engine) == before


async def test_listings_counts_and_searches_see_only_their_tenant(store: Store, world: World) -> None:
    for tenant, state in ((world.acme, world.acme_state), (world.globex, world.globex_state)):
        listed = await tenant.list_agents()
        assert {a.tenant for a in listed} == {tenant.tenant_name}
        assert state.id in {a.id for a in listed} and len(listed) == 2
        assert await tenant.count_agents() == 2 and await tenant.count_agents(name="BO") == 2
        assert {a.tenant for a in await tenant.find_by_name("bot")} == {tenant.tenant_name}
        assert [t.tenant for t in await tenant.list_threads()] == [tenant.tenant_name]
        pointing = await tenant.threads_pointing_at([world.acme_state.id, world.globex_state.id])
        assert list(pointing) == [state.id]
    assert await store.count_agents() == 0  # the default tenant holds nothing here
    assert await store.list_threads() == ()
    assert (await store.tenant("nobody").stats())["agents"] == 0


async def test_a_view_of_one_tenant_reads_and_branches_inside_it(world: World) -> None:
    state = await world.acme.load_agent(world.acme_state.id)
    assert [m.content for m in await state.messages()] == ["hello from acme", "echo: hello from acme"]
    assert [a.id for a in await state.lineage()] == [world.acme_root.id, state.id]
    root = await world.acme.load_agent(world.acme_root.id)
    assert [c.id for c in await root.children()] == [state.id]
    child = await state.with_metadata({"k": 1})
    assert child.tenant == "acme"
    with pytest.raises(AgentNotFoundError):
        await world.globex.load_agent(child.id)


async def test_the_cache_is_shared_but_never_crosses_tenants(store: Store, world: World) -> None:
    warm = await world.acme.load_agent(world.acme_state.id)
    assert await world.acme.load_agent(warm.id) is warm  # cached
    with pytest.raises(AgentNotFoundError):
        await world.globex.load_agent(warm.id)  # cached for acme, invisible to globex
    with pytest.raises(AgentNotFoundError):
        await store.load_agent(warm.id)


async def test_one_key_in_two_tenants_is_two_threads(world: World) -> None:
    acme, globex = (
        await world.acme.load_thread("conversation"),
        await world.globex.load_thread("conversation"),
    )
    assert (acme.agent_id, globex.agent_id) == (world.acme_state.id, world.globex_state.id)
    with pytest.raises(ThreadExistsError):
        await world.acme.create_thread("conversation", world.acme_root)
    with pytest.raises(AgentNotFoundError):
        await acme.move(world.globex_state)  # moves never cross tenants


async def test_the_default_tenant_is_the_connected_store_and_a_scoped_store_closes_nothing(
    store: Store,
) -> None:
    agent = await store.create_agent(name="d", system_prompt="p", model=MODEL)
    assert agent.tenant == store.tenant_name == "default" and not store.scoped
    default = store.tenant("default")
    assert default.scoped and (await default.load_agent(agent.id)).id == agent.id
    await default.close()
    assert await store.ping()  # the scoped store left the pool alone
    assert (await store.load_agent(agent.id)).id == agent.id


@pytest.mark.parametrize("tenant", ["", " ", "a\x00", "t" * 65, " acme", "acme ", 7, None])
async def test_a_bad_tenant_is_a_validation_error_naming_the_tenant(store: Store, tenant: object) -> None:
    before = await snapshot(store.engine)
    with pytest.raises(ValidationError) as caught:
        store.tenant(tenant)  # type: ignore[arg-type]
    assert caught.value.field == "tenant"
    with pytest.raises(ValidationError) as erased:
        await store.erase_tenant(tenant)  # type: ignore[arg-type]
    assert erased.value.field == "tenant"
    assert await snapshot(store.engine) == before


async def test_tenants_are_exact_strings(store: Store) -> None:
    upper, lower = store.tenant("Acme"), store.tenant("acme")
    agent = await upper.create_agent(name="a", system_prompt="p", model=MODEL)
    with pytest.raises(AgentNotFoundError):
        await lower.load_agent(agent.id)
    assert await store.tenant("Acme").count_agents() == 1
    assert isinstance(agent.id, UUID)
