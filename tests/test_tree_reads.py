"""``store.tree()`` and ``store.tree_messages()``: a whole conversation tree in one query each, on SQLite
and PostgreSQL, inside one tenant, whole even when a state in the middle was deleted."""

from __future__ import annotations

from uuid import uuid4

import pytest

from immagent import AgentNotFoundError, PersistentAgent, Store, ValidationError
from immagent.testing import ScriptedModel
from tests.support.db import StatementCounter


async def grow(store: Store, model: ScriptedModel) -> dict[str, PersistentAgent]:
    """root -> a -> b, b's clone, b -> c, and a metadata child of a: one tree of six states."""
    model.reply("one").reply("two").reply("three")
    root = await store.create_agent(name="t", system_prompt="p", model=model.model)
    a = await root.advance("hi")
    b = await a.advance("more")
    twin = await b.clone()
    c = await b.advance("again")
    tagged = await a.with_metadata({"tag": 1})
    return {"root": root, "a": a, "b": b, "twin": twin, "c": c, "tagged": tagged}


async def test_tree_returns_every_state_of_the_tree_oldest_first_in_one_query(
    store: Store, scripted_model: ScriptedModel, count_statements: StatementCounter
) -> None:
    states = await grow(store, scripted_model)
    other = await store.create_agent(name="other", system_prompt="p", model=scripted_model.model)
    before = count_statements.count
    tree = await store.tree(states["c"])
    assert count_statements.count - before == 1
    assert [s.id for s in tree] == [s.id for s in states.values()]  # creation order
    assert other.id not in {s.id for s in tree}
    store.clear_cache()
    by_id = await store.tree(str(states["twin"].id))  # any state's id, cold: one load, one tree read
    assert by_id == tree


async def test_tree_messages_hold_every_history_of_the_tree_each_message_once(
    store: Store, scripted_model: ScriptedModel, count_statements: StatementCounter
) -> None:
    states = await grow(store, scripted_model)
    before = count_statements.count
    messages = await store.tree_messages(states["root"])
    assert count_statements.count - before == 1
    assert [m.depth for m in messages] == sorted(m.depth for m in messages)
    assert len({m.id for m in messages}) == len(messages) == 6  # three turns, user + assistant each
    by_id = {m.id: m for m in messages}
    for state in states.values():
        path, cursor = [], state.head_id
        while cursor is not None:
            path.append(by_id[cursor])
            cursor = by_id[cursor].parent_id
        assert tuple(reversed(path)) == await state.messages()


async def test_a_deleted_state_leaves_its_descendants_in_the_tree(
    store: Store, scripted_model: ScriptedModel
) -> None:
    states = await grow(store, scripted_model)
    await store.delete(states["b"])
    remaining = {s.id for s in await store.tree(states["c"])}
    assert remaining == {s.id for k, s in states.items() if k != "b"}
    await store.delete(states["root"])
    assert {s.id for s in await store.tree(states["a"])} == remaining - {states["root"].id}


async def test_another_tenants_tree_is_not_found_and_bad_ids_are_validation_errors(
    store: Store, scripted_model: ScriptedModel
) -> None:
    states = await grow(store, scripted_model)
    acme = store.tenant("acme")
    for call in (acme.tree, acme.tree_messages):
        with pytest.raises(AgentNotFoundError):
            await call(states["a"])  # a view of another tenant
        with pytest.raises(AgentNotFoundError):
            await call(states["a"].id)
        with pytest.raises(AgentNotFoundError):
            await call(uuid4())
        with pytest.raises(ValidationError) as bad:
            await call("not-a-uuid")
        assert bad.value.field == "agent_id"
    mine = await acme.create_agent(name="acme", system_prompt="p", model=scripted_model.model)
    assert await acme.tree(mine) == (mine,)
    assert await acme.tree_messages(mine) == ()
