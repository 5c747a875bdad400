"""States from given messages (``extend``), from an earlier point (``rewind``), and the newest messages
of a history (``messages(last=)``), on every backend: what is written, in how many statements, and what
a thread does with them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from immagent import ConflictError, Message, NativeForm, PersistentAgent, Store, ToolCall, ValidationError
from tests.support.db import StatementCounter, counting, row_counts, snapshot


async def conversation(store: Store, size: int, tenant_store: Store | None = None) -> PersistentAgent:
    """A state whose history holds ``size`` messages, user and assistant in turn, written in one extend."""
    owner = tenant_store or store
    agent = await owner.create_agent(name="c", system_prompt="p", model="m")
    roles = ("user", "assistant")
    return await agent.extend([Message(role=roles[i % 2], content=f"m{i}") for i in range(size)])


def contents(messages: tuple[Message, ...]) -> list[str | None]:
    return [m.content for m in messages]


async def test_extend_places_the_messages_after_the_head_and_keeps_what_they_say(store: Store) -> None:
    scoped = store.tenant("acme")
    start = await conversation(store, 2, scoped)
    call = ToolCall(id="call_1", name="lookup", arguments='{"q": "x"}')
    form = NativeForm(format="test/message", data={"kind": "response"})
    given = [
        Message(role="assistant", tool_calls=(call,), input_tokens=5, output_tokens=7, native=form),
        Message(role="tool", content="found", tool_call_id="call_1"),
    ]
    grown = await start.extend(given)
    assert (grown.parent_id, grown.root_id, grown.tenant) == (start.id, start.root_id, "acme")
    assert (grown.name, grown.model, grown.metadata) == (start.name, start.model, start.metadata)
    history = await grown.messages()
    old, new = history[:2], history[2:]
    assert old == await start.messages()
    assert all(a.same_content(b) for a, b in zip(new, given, strict=True))
    assert [m.id for m in new] != [m.id for m in given]  # the store gives ids, links and times
    assert [(m.parent_id, m.depth) for m in new] == [(old[-1].id, 2), (new[0].id, 3)]
    assert grown.head_id == new[-1].id and new[0].created_at == new[1].created_at
    store.clear_cache()
    assert await (await scoped.load_agent(grown.id)).messages() == history
    assert await grown.token_usage() == (5, 7)


async def test_extend_writes_one_insert_for_the_messages_and_one_for_the_state(store: Store) -> None:
    agent = await conversation(store, 3)
    batch = [Message(role="user", content=str(i)) for i in range(20)]
    with counting(store.engine) as warm:
        grown = await agent.extend(batch)
    assert len(warm.matching("insert")) == 2 and warm.count == 2, warm.statements  # no read: cached

    store.clear_cache()
    cold_agent = await store.load_agent(grown.id)
    with counting(store.engine) as cold:
        again = await cold_agent.extend(batch[:2])
    # Only the head's depth is read (one row), never the history; then the two inserts.
    assert cold.count == 3 and len(cold.matching("insert")) == 2, cold.statements
    assert [m.depth for m in (await again.messages())[-2:]] == [23, 24]
    assert (await row_counts(store.engine))["immagent_messages"] == 25


async def test_extend_of_an_empty_state_starts_its_history(store: Store) -> None:
    agent = await store.create_agent(name="e", system_prompt="p", model="m")
    store.clear_cache()
    fresh = await store.load_agent(agent.id)
    grown = await fresh.extend([Message(role="user", content="first")])
    [first] = await grown.messages()
    assert (first.parent_id, first.depth) == (None, 0)


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "cold"])
async def test_rewind_points_a_child_state_at_an_earlier_message_and_deletes_nothing(
    store: Store, cached: bool
) -> None:
    agent = await conversation(store, 5)
    full = await agent.messages()
    for count in range(6):
        if not cached:
            store.clear_cache()
            agent = await store.load_agent(agent.id)
        before = await row_counts(store.engine)
        back = await agent.rewind(count)
        assert back.parent_id == agent.id and back.root_id == agent.root_id
        assert (await row_counts(store.engine))["immagent_agents"] == before["immagent_agents"] + 1
        assert (await row_counts(store.engine))["immagent_messages"] == before["immagent_messages"]
        expected = full[: 5 - count]
        assert back.head_id == (expected[-1].id if expected else None)
        assert await back.messages() == expected
        store.clear_cache()
        assert await (await store.load_agent(back.id)).messages() == expected
    assert await (await store.load_agent(agent.id)).messages() == full


async def test_rewind_reads_at_most_count_plus_one_messages_in_one_query(store: Store) -> None:
    agent = await conversation(store, 40)
    store.clear_cache()
    cold = await store.load_agent(agent.id)
    with counting(store.engine) as counter:
        back = await cold.rewind(3)
    assert counter.count == 2 and len(counter.matching("insert")) == 1, counter.statements
    assert contents(await back.messages(last=2)) == ["m35", "m36"]
    warm = await conversation(store, 4)
    with counting(store.engine) as counter:
        await warm.rewind()
    assert counter.count == 1, counter.statements  # the history is cached: only the new state's row


@pytest.mark.parametrize("count", [-1, 4, 1.0, True, "1", None])
async def test_rewind_refuses_a_bad_count_before_anything_is_written(store: Store, count: Any) -> None:
    agent = await conversation(store, 3)
    thread = await store.create_thread("t", agent)
    before = await snapshot(store.engine)
    for cached in (True, False):
        if not cached:
            store.clear_cache()
            agent = await store.load_agent(agent.id)
        with pytest.raises(ValidationError) as caught:
            await agent.rewind(count)
        assert caught.value.field == "count"
    with pytest.raises(ValidationError, match="count"):
        await thread.rewind(count)
    assert await snapshot(store.engine) == before


@pytest.mark.parametrize("last", [0, 1, 5, 49, 50, 51, 1000])
async def test_messages_last_gives_the_newest_in_order_in_one_query(
    store: Store, count_statements: StatementCounter, last: int
) -> None:
    agent = await conversation(store, 50)
    full = await agent.messages()
    assert await agent.messages(last=last) == full[max(50 - last, 0) :]  # from the cache: no query
    store.clear_cache()
    cold = await store.load_agent(agent.id)
    count_statements.statements.clear()
    newest = await cold.messages(last=last)
    assert newest == full[max(50 - last, 0) :]
    assert count_statements.count == (0 if last == 0 else 1), count_statements.statements


async def test_messages_last_refuses_a_bad_count(store: Store) -> None:
    agent = await conversation(store, 2)
    for bad in (-1, 2.0, "2", True):
        with pytest.raises(ValidationError) as caught:
            await agent.messages(last=bad)  # type: ignore[arg-type]
        assert caught.value.field == "last"
    assert await (await store.create_agent(name="e", system_prompt="p", model="m")).messages(last=3) == ()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_messages_last_walks_only_that_many_rows_on_postgresql(store: Store) -> None:
    """The plan's own count: the recursive walk visits ``last`` rows of a 300-message history."""
    from immagent._store._agents import RECENT

    agent = await conversation(store, 300)
    bound = RECENT.params(head_id=agent.head_id, root_id=agent.root_id, last=7)
    sql = str(bound.compile(store.engine.sync_engine, compile_kwargs={"literal_binds": True}))
    async with store.engine.connect() as conn:
        plan = (await conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"))).scalar_one()
    walks = [n for n in _nodes(plan[0]["Plan"]) if n["Node Type"] == "Recursive Union"]
    assert len(walks) == 1 and walks[0]["Actual Rows"] == 7


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in _nodes(child))]


async def test_a_thread_extends_and_rewinds_in_one_transaction_each(store: Store) -> None:
    agent = await conversation(store, 2)
    thread = await store.create_thread("chat", agent)
    with counting(store.engine) as counter:
        moved = await thread.extend([Message(role="user", content="more")])
    assert counter.count == 3 and len(counter.matching("insert")) == 3, (
        counter.statements
    )  # msgs, state, move
    assert moved.position == 1 and contents(await (await moved.head()).messages()) == ["m0", "m1", "more"]
    back = await moved.rewind(3)
    assert back.position == 2 and await (await back.head()).messages() == ()
    log = await back.log()
    assert [m.kind for m in log] == ["create", "advance", "move"]
    assert log[1].agent_id == moved.agent_id  # the former history stays reachable through the log
    reloaded = await store.load_thread("chat")
    assert reloaded == back


async def test_a_stale_thread_view_conflicts_and_writes_nothing(store: Store) -> None:
    thread = await store.create_thread("chat", await conversation(store, 1))
    await thread.extend([Message(role="user", content="winner")])
    before = await snapshot(store.engine)
    with pytest.raises(ConflictError) as caught:
        await thread.extend([Message(role="user", content="loser")])
    assert caught.value.current is not None and caught.value.current.position == 1
    with pytest.raises(ConflictError):
        await thread.rewind(1)
    assert await snapshot(store.engine) == before


async def test_concurrent_thread_extends_from_one_view_let_exactly_one_win(store: Store) -> None:
    thread = await store.create_thread("race", await conversation(store, 1))
    results = await asyncio.gather(
        *(thread.extend([Message(role="user", content=f"w{i}")]) for i in range(4)), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1 and all(isinstance(r, ConflictError) for r in results if r not in winners)
    now = await store.load_thread("race")
    assert now == winners[0] and now.position == 1
    assert (await row_counts(store.engine))["immagent_agents"] == 3  # root, the first extend, the winner
