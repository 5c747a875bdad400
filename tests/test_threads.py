"""Threads: a key that moves over immutable states by appending to its log, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from asyncio.subprocess import PIPE
from pathlib import Path
from uuid import uuid4

import pytest

from immagent import (
    AgentNotFoundError,
    ConflictError,
    PersistentAgent,
    Store,
    Thread,
    ThreadExistsError,
    ThreadNotFoundError,
    TurnComplete,
    ValidationError,
)
from immagent.testing import ScriptedModel
from tests.support.db import StatementCounter, StatementFault, counting, snapshot
from tests.support.openai_server import Reply, ScriptedOpenAIServer

MODEL = "gpt-4o-mini"
REPO = Path(__file__).resolve().parent.parent


async def make(store: Store, name: str = "helper") -> PersistentAgent:
    return await store.create_agent(name=name, system_prompt="You are helpful.", model=MODEL)


async def test_a_new_thread_points_at_its_agent_at_position_zero(store: Store) -> None:
    agent = await make(store)
    thread = await store.create_thread("support/42", agent, metadata={"customer": 42})
    assert (thread.key, thread.tenant, thread.agent_id, thread.position) == (
        "support/42",
        "default",
        agent.id,
        0,
    )
    assert thread.metadata == {"customer": 42}
    assert thread.created_at == thread.moved_at
    assert await thread.head() is agent
    store.clear_cache()
    loaded = await store.load_thread("support/42")
    assert loaded == thread
    assert (await loaded.head()) == agent
    [move] = await loaded.log()
    assert (move.position, move.agent_id, move.kind) == (0, agent.id, "create")
    assert thread.model_dump(mode="json").keys() == {
        "tenant", "key", "agent_id", "position", "metadata", "created_at", "moved_at",
    }  # fmt: skip


async def test_a_taken_key_is_a_typed_error_that_names_the_thread_and_writes_nothing(store: Store) -> None:
    agent = await make(store)
    first = await store.create_thread("k", agent)
    other = await make(store, "other")
    before = await snapshot(store.engine)
    with pytest.raises(ThreadExistsError) as caught:
        await store.create_thread("k", other)
    assert isinstance(caught.value, ConflictError)
    assert caught.value.current == first
    assert "already exists" in str(caught.value)
    assert await snapshot(store.engine) == before


async def test_advance_moves_the_thread_to_the_new_state_in_one_transaction(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    agent = await make(store)
    thread = await store.create_thread("t", agent)
    moved = await thread.advance("hello")
    head = await moved.head()
    assert (moved.position, moved.agent_id) == (1, head.id)
    assert head.parent_id == agent.id
    assert await head.last_response() == "echo: hello"
    assert thread.position == 0 and thread.agent_id == agent.id  # the old view is unchanged
    store.clear_cache()
    assert await store.load_thread("t") == moved
    assert [(m.position, m.kind) for m in await moved.log()] == [(0, "create"), (1, "advance")]


async def test_a_thread_turn_costs_one_statement_more_than_a_plain_turn(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    agent = await make(store)
    thread = await store.create_thread("t", agent)
    thread = await thread.advance("warm up")  # warm: the head's history is cached now
    plain_agent = await thread.head()
    with counting(store.engine) as plain:
        await plain_agent.advance("plain")
    with counting(store.engine) as threaded:
        await thread.advance("threaded")
    assert _writes(threaded) == _writes(plain) + 1
    assert threaded.count == plain.count + 1
    assert len(threaded.matching("immagent_thread_moves")) == 1


def _writes(counter: StatementCounter) -> int:
    return len([s for s in counter.statements if s.lstrip().upper().startswith("INSERT")])


@pytest.mark.parametrize("at", [1, 2, 3, "commit"])
async def test_a_failure_at_any_statement_of_a_thread_turn_writes_nothing(
    store: Store, llm: ScriptedOpenAIServer, at: int | str
) -> None:
    thread = await store.create_thread("t", await make(store))
    thread = await thread.advance("first")
    before = await snapshot(store.engine)
    fault = StatementFault(store.engine, at)
    with fault.armed(), pytest.raises(Exception, match="injected"):
        await thread.advance("second")
    assert fault.fired
    assert await snapshot(store.engine) == before
    again = await thread.advance("second")  # the same view is still current: nothing moved
    assert again.position == 2


async def test_a_stale_view_gets_a_conflict_that_says_where_the_thread_is(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    stale = await store.create_thread("t", await make(store))
    current = await stale.advance("one")
    before = await snapshot(store.engine)
    with pytest.raises(ConflictError) as caught:
        await stale.advance("two")
    error = caught.value
    assert (error.key, error.expected) == ("t", 0)
    assert error.current == current
    assert "position 1" in str(error) and "nothing was written" in str(error)
    with pytest.raises(ConflictError):
        await stale.move(await stale.head())
    assert await snapshot(store.engine) == before
    assert (await current.advance("two")).position == 2  # retry from where it is


async def test_move_undoes_switches_branch_and_restores(store: Store, llm: ScriptedOpenAIServer) -> None:
    thread = await store.create_thread("t", await make(store))
    thread = await thread.advance("a")
    thread = await thread.advance("b")
    latest = await thread.head()
    parent = await store.load_agent(latest.parent_id)  # type: ignore[arg-type]
    undone = await thread.move(parent)  # undo one turn
    assert (undone.agent_id, undone.position) == (parent.id, 3)
    branch = await undone.advance("b, differently")
    assert (await branch.head()).parent_id == parent.id
    restored = await branch.move(latest.id)  # back to the first branch, by id
    assert restored.agent_id == latest.id
    log = await restored.log()
    assert [(m.position, m.kind) for m in log] == [
        (0, "create"), (1, "advance"), (2, "advance"), (3, "move"), (4, "advance"), (5, "move"),
    ]  # fmt: skip
    assert [m.position for m in log] == list(range(6))
    assert await store.load_thread("t") == restored


async def test_a_move_to_a_state_it_cannot_see_is_not_found_and_writes_nothing(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    thread = await store.create_thread("t", await make(store))
    foreign = await make(store.tenant("acme"), "foreign")
    gone = await make(store, "gone")
    await store.delete(gone)
    before = await snapshot(store.engine)
    for target in (foreign, foreign.id, uuid4(), gone, str(gone.id)):
        with pytest.raises(AgentNotFoundError):
            await thread.move(target)
    with pytest.raises(ValidationError) as bad:
        await thread.move("not-an-id")
    assert bad.value.field == "agent"
    assert await snapshot(store.engine) == before


async def test_a_state_a_thread_ever_pointed_at_cannot_be_deleted_under_it(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    first = await make(store)
    thread = await store.create_thread("t", first)
    await thread.advance("hi")
    before = await snapshot(store.engine)
    with pytest.raises(ValidationError, match="thread 't' points at this state") as caught:
        await store.delete(first)  # in the log, no longer the head
    assert caught.value.field == "agent"
    assert await snapshot(store.engine) == before
    assert await store.delete_thread("t") == 2
    with pytest.raises(ThreadNotFoundError):
        await store.load_thread("t")
    await store.delete(first)
    with pytest.raises(ThreadNotFoundError):
        await store.delete_thread("t")


async def test_gc_keeps_everything_a_thread_reaches(store: Store, llm: ScriptedOpenAIServer) -> None:
    thread = await store.create_thread("t", await make(store))
    thread = await thread.advance("one")
    thread = await thread.advance("two")
    head = await thread.head()
    assert await store.gc() == {"messages": 0, "texts": 0}
    store.clear_cache()
    reloaded = await (await store.load_thread("t")).head()
    assert [m.content for m in await reloaded.messages()] == ["one", "echo: one", "two", "echo: two"]
    assert reloaded == head


async def test_fifty_concurrent_advances_of_one_view_have_exactly_one_winner(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    thread = await store.create_thread("t", await make(store))
    outcomes = await asyncio.gather(*(thread.advance(f"q{i}") for i in range(50)), return_exceptions=True)
    winners = [o for o in outcomes if isinstance(o, Thread)]
    losers = [o for o in outcomes if isinstance(o, ConflictError)]
    assert len(winners) == 1 and len(losers) == 49, outcomes
    assert all(loser.current == winners[0] for loser in losers)
    assert [m.position for m in await thread.log()] == [0, 1]
    stats = await store.stats()
    assert (stats["agents"], stats["messages"], stats["thread_moves"]) == (2, 2, 2)


async def test_ten_writers_that_retry_on_conflict_build_one_chain_without_gaps(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    root = await make(store)
    await store.create_thread("t", root)

    async def writer(i: int) -> int:
        conflicts = 0
        while True:
            thread = await store.load_thread("t")
            try:
                await thread.advance(f"q{i}")
                return conflicts
            except ConflictError:
                conflicts += 1

    conflicts = await asyncio.gather(*(writer(i) for i in range(10)))
    log = await (await store.load_thread("t")).log()
    assert [m.position for m in log] == list(range(11))
    states = await store.load_agents(m.agent_id for m in log)
    assert all(s.parent_id == p.id for p, s in itertools.pairwise(states))  # one linear chain
    assert len(await states[-1].messages()) == 20
    stats = await store.stats()
    assert (stats["agents"], stats["messages"]) == (11, 20)  # losers wrote nothing
    assert sum(conflicts) > 0  # the test did race


async def test_advance_stream_ends_with_the_moved_thread_and_an_early_stop_writes_nothing(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    thread = await store.create_thread("t", await make(store))
    events = [e async for e in thread.advance_stream("hello there")]
    done = events[-1]
    assert isinstance(done, TurnComplete)
    assert done.thread is not None and done.thread.position == 1
    assert done.thread.agent_id == done.agent.id
    assert await store.load_thread("t") == done.thread

    before = await snapshot(store.engine)
    llm.default = lambda request: Reply(content="a b c d e f", chunk_delay=0.01)
    stream = done.thread.advance_stream("again")
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    assert await snapshot(store.engine) == before


@pytest.mark.parametrize(
    "key", ["", "   ", "a\x00b", "k" * 256, " lead", "trail ", "tab\t", 42, None, "\ud800"]
)
async def test_a_bad_key_is_a_validation_error_naming_the_key_and_writes_nothing(
    store: Store, key: object
) -> None:
    agent = await make(store)
    before = await snapshot(store.engine)
    with pytest.raises(ValidationError) as caught:
        await store.create_thread(key, agent)  # type: ignore[arg-type]
    assert caught.value.field == "key"
    with pytest.raises(ValidationError):
        await store.load_thread(key)  # type: ignore[arg-type]
    assert await snapshot(store.engine) == before


async def test_keys_are_exact_and_like_metacharacters_are_literal(store: Store) -> None:
    agent = await make(store)
    for key in ("a%b", "a_b", "axb", "A%B", "a\\b"):
        await store.create_thread(key, agent)
    assert (await store.load_thread("A%B")).key == "A%B"
    assert sorted(t.key for t in await store.list_threads(key="%")) == ["A%B", "a%b"]
    assert sorted(t.key for t in await store.list_threads(key="_")) == ["a_b"]
    assert sorted(t.key for t in await store.list_threads(key="A")) == ["A%B", "a%b", "a\\b", "a_b", "axb"]
    with pytest.raises(ThreadNotFoundError):
        await store.load_thread("a")


async def test_bad_metadata_is_refused_before_anything_is_written(store: Store) -> None:
    agent = await make(store)
    before = await snapshot(store.engine)
    for metadata in ({"x": float("nan")}, {"x": "\x00"}, [1], {1: "a"}):
        with pytest.raises(ValidationError) as caught:
            await store.create_thread("t", agent, metadata=metadata)  # type: ignore[arg-type]
        assert caught.value.field == "metadata"
    assert await snapshot(store.engine) == before


async def test_threads_pointing_at_names_the_current_heads_only(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    first = await make(store)
    one = await store.create_thread("one", first)
    two = await store.create_thread("two", first)
    moved = await two.advance("hi")
    found = await store.threads_pointing_at([first, moved.agent_id, uuid4()])
    assert found == {first.id: (one,), moved.agent_id: (moved,)}
    assert await store.threads_pointing_at([]) == {}


async def test_two_processes_advancing_one_thread_never_lose_or_duplicate_a_move(
    store: Store, db_url: str, tmp_path: Path
) -> None:
    """Exactly one winner per position across processes: the database's key decides, not Python."""
    model = ScriptedModel().install()
    try:
        root = await store.create_agent(name="shared", system_prompt="p", model=model.model)
    finally:
        model.uninstall()
    await store.create_thread("shared", root)
    go = tmp_path / "go"
    command = [sys.executable, "-m", "tests.support.thread_writer", db_url, "shared", "15", str(go)]
    writers = [
        await asyncio.create_subprocess_exec(*command, cwd=REPO, stdout=PIPE, stderr=PIPE) for _ in range(2)
    ]
    await asyncio.sleep(0.5)
    go.touch()
    results = [await asyncio.wait_for(w.communicate(), timeout=180) for w in writers]
    for writer, (_, err) in zip(writers, results, strict=True):
        assert writer.returncode == 0, err.decode()
    counts = [json.loads(out) for out, _ in results]
    assert [c["wins"] for c in counts] == [15, 15]
    log = await (await store.load_thread("shared")).log()
    assert [m.position for m in log] == list(range(31))
    states = await store.load_agents(m.agent_id for m in log)
    assert all(s.parent_id == p.id for p, s in itertools.pairwise(states))
    stats = await store.stats()
    assert (stats["agents"], stats["messages"], stats["thread_moves"]) == (31, 60, 31)
