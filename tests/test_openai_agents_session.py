"""The OpenAI Agents SDK session on an immagent thread, against the SDK's own SQLiteSession.

Every sequence of add/get/pop/clear calls, and real ``Runner.run`` turns with function tools on the SDK's
scripted model, must give the same answers on ``ImmagentSession`` as on the reference ``SQLiteSession``
(in memory), item for item, on every backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
from typing import Any
from uuid import uuid4

import pytest
from agents import SQLiteSession
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from immagent import Message, Store, ToolCall
from immagent.integrations.openai_agents import FORMAT, ImmagentSession
from tests.support.agents_sdk import ITEMS, TURNS, Differential, random_ops, run_turns
from tests.support.db import counting, row_counts

#: The random differential: this many sequences of this many calls, per backend (fixed seeds).
SEQUENCES, CALLS = 12, 30
#: Sequences hypothesis draws (and shrinks on a failure), per backend.
HYPOTHESIS_EXAMPLES = 30


def pair(store: Store, session_id: str = "s1") -> Differential:
    return Differential(SQLiteSession(session_id), ImmagentSession(session_id, store))


async def test_each_kind_of_item_comes_back_equal_and_reads_in_immagent_terms(store: Store) -> None:
    session = ImmagentSession("kinds", store)
    await session.add_items(ITEMS)
    assert await session.get_items() == ITEMS
    thread = await session.thread()
    assert thread is not None
    history = await (await thread.head()).messages()
    assert len(history) == len(ITEMS)
    assert all(m.native is not None and m.native.format == FORMAT for m in history)
    readable = {(m.role, m.content) for m in history}
    assert ("user", "What's the weather in Paris?") in readable
    assert ("user", "Et à Lyon ? 🌦️") in readable
    assert ("assistant", "It is 18°C (source).") in readable
    assert ("assistant", "I can't help with that.") in readable
    assert ("tool", "18°C, light rain") in readable
    assert ("assistant", "Look up the weather first.") in readable  # a reasoning item's summary
    [call] = [m for m in history if m.tool_calls]
    assert (call.tool_calls[0].id, call.tool_calls[0].name) == ("call_1", "get_weather")
    [output] = [m for m in history if m.tool_call_id == "call_1"]
    assert output.role == "tool"


async def test_a_scripted_differential_of_every_call_matches_sqlite_session(store: Store) -> None:
    diff = pair(store)
    await diff.play(
        [
            ("get", None),
            ("pop", None),
            ("add", ITEMS[:3]),
            ("add", []),
            ("get", 2),
            ("get", 0),
            ("get", -1),
            ("get", 100),
            ("pop", None),
            ("add", ITEMS[3:9]),
            ("get", 4),
            ("pop", None),
            ("pop", None),
            ("clear", None),
            ("get", None),
            ("pop", None),
            ("clear", None),
            ("add", ITEMS[9:]),
            ("get", 1),
        ]
    )
    assert diff.calls == 19


@pytest.mark.parametrize("seed", range(SEQUENCES))
async def test_random_call_sequences_match_sqlite_session(store: Store, seed: int) -> None:
    diff = pair(store, f"random-{seed}")
    await diff.play(random_ops(random.Random(seed), CALLS))
    assert diff.calls == CALLS


_ITEM = st.integers(0, len(ITEMS) - 1).map(lambda i: copy.deepcopy(ITEMS[i]))
_CALLS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.lists(_ITEM, max_size=4)),
        st.tuples(st.just("get"), st.none() | st.integers(-2, 12)),
        st.tuples(st.just("pop"), st.none()),
        st.tuples(st.just("clear"), st.none()),
    ),
    max_size=20,
)


@settings(
    max_examples=HYPOTHESIS_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples every run: a failure is reproducible, never a fluke
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(calls=_CALLS)
def test_any_call_sequence_matches_sqlite_session(db_url: str, calls: list[tuple[str, Any]]) -> None:
    async def play() -> None:  # each example on its own store and loop, on a session id of its own
        async with await Store.connect(db_url, min_size=1, max_size=2) as store:
            diff = Differential(SQLiteSession("h"), ImmagentSession(f"h-{uuid4()}", store))
            await diff.play(calls)

    asyncio.run(play())


async def test_runner_turns_with_tools_give_the_same_items_and_model_inputs(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # offline: no key, and no server to reach
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    reference = SQLiteSession("runner")
    ours = ImmagentSession("runner", store)
    expected_outputs, expected_model = await run_turns(reference)
    outputs, model = await run_turns(ours)
    assert outputs == expected_outputs
    assert outputs[-1] == "Lyon is warmer."
    items = await ours.get_items()
    assert items == await reference.get_items()
    kinds = [item.get("type", "message") for item in items]
    assert kinds.count("function_call") == kinds.count("function_call_output") == 3
    assert kinds.count("reasoning") == 2
    # the model saw the same history on both, call for call
    assert [c.input for c in model.calls] == [c.input for c in expected_model.calls]
    assert len(model.calls) == len(TURNS) + 2
    model.assert_complete()


async def test_get_items_with_a_limit_reads_only_those_messages(store: Store) -> None:
    session = ImmagentSession("long", store)
    for n in range(40):
        await session.add_items([{"role": "user", "content": f"message {n}"}])
    store.clear_cache()
    with counting(store.engine) as counter:
        recent = await session.get_items(limit=3)
    assert recent == [{"role": "user", "content": f"message {n}"} for n in (37, 38, 39)]
    # the thread, its head state, and the history's bounded walk (the newest 3 messages), no more
    assert counter.count <= 3, counter.statements
    [walk] = [s for s in counter.statements if "immagent_messages" in s]
    assert "immagent_recent" in walk, walk


async def test_pop_and_clear_delete_nothing_and_the_log_gives_the_history_back(store: Store) -> None:
    session = ImmagentSession("undo", store)
    await session.add_items(ITEMS[:4])
    before = await row_counts(store.engine)
    assert await session.pop_item() == ITEMS[3]
    await session.clear_session()
    assert await session.get_items() == []
    after = await row_counts(store.engine)
    assert after["immagent_messages"] == before["immagent_messages"]
    thread = await session.thread()
    assert thread is not None
    moves = await thread.log()
    assert moves[0].kind == "create"
    restored = await thread.move(moves[-3].agent_id)  # before the pop and the clear
    assert (await session.get_items()) == ITEMS[:4]
    assert restored.position == moves[-1].position + 1


async def test_a_branch_starts_from_an_earlier_state_and_copies_no_message(store: Store) -> None:
    main = ImmagentSession("main", store)
    await main.add_items(ITEMS[:2])
    await main.add_items(ITEMS[2:5])
    messages = (await row_counts(store.engine))["immagent_messages"]
    side = await main.branch("side", at=2)
    assert (await row_counts(store.engine))["immagent_messages"] == messages
    assert await side.get_items() == ITEMS[:2]
    await side.add_items([ITEMS[6]])
    assert await side.get_items() == [*ITEMS[:2], ITEMS[6]]
    assert await main.get_items() == ITEMS[:5]
    whole = await main.branch("whole")
    assert await whole.get_items() == ITEMS[:5]
    thread = await main.thread()
    assert thread is not None
    first = (await thread.log())[1]  # the state after the first add_items
    from_log = await main.branch("from-log", at=first.agent_id)
    assert await from_log.get_items() == ITEMS[:2]


async def test_a_tenant_scoped_store_gives_tenant_scoped_sessions(store: Store) -> None:
    acme, globex = ImmagentSession("shared-id", store.tenant("acme")), ImmagentSession("shared-id", store)
    await acme.add_items([ITEMS[0]])
    await globex.add_items([ITEMS[1]])
    assert await acme.get_items() == [ITEMS[0]]
    assert await globex.get_items() == [ITEMS[1]]
    assert await ImmagentSession("shared-id", store.tenant("other")).get_items() == []


async def test_reads_of_an_unknown_session_write_nothing(store: Store) -> None:
    session = ImmagentSession("never-written", store)
    assert await session.get_items() == []
    assert await session.pop_item() is None
    await session.clear_session()
    await session.add_items([])
    assert await session.thread() is None
    assert (await row_counts(store.engine))["immagent_threads"] == 0


async def test_messages_another_writer_put_on_the_thread_read_as_sdk_items(store: Store) -> None:
    session = ImmagentSession("mixed", store)
    await session.add_items([ITEMS[0]])
    thread = await session.thread()
    assert thread is not None
    call = ToolCall(id="call_9", name="get_weather", arguments='{"city":"Lyon"}')
    await thread.extend(  # as immagent's own loop writes a turn: no native form
        [
            Message(role="assistant", content="Let me look.", tool_calls=(call,)),
            Message(role="tool", content="21°C", tool_call_id="call_9"),
            Message(role="assistant", content="21°C in Lyon."),
        ]
    )
    translated = [
        {"role": "assistant", "content": "Let me look."},
        {"type": "function_call", "call_id": "call_9", "name": "get_weather", "arguments": '{"city":"Lyon"}'},
        {"type": "function_call_output", "call_id": "call_9", "output": "21°C"},
        {"role": "assistant", "content": "21°C in Lyon."},
    ]
    assert await session.get_items() == [ITEMS[0], *translated]
    assert await session.get_items(limit=3) == translated[1:]
    assert await session.pop_item() == translated[-1]


async def test_sessions_created_at_once_share_one_thread_and_leave_no_stray_state(db_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        stores = [await stack.enter_async_context(await Store.connect(db_url)) for _ in range(4)]
        await asyncio.gather(
            *(
                ImmagentSession("born", s).add_items([{"role": "user", "content": f"hi {n}"}])
                for n, s in enumerate(stores)
            )
        )
        items = await ImmagentSession("born", stores[0]).get_items()
        assert sorted(i["content"] for i in items) == [f"hi {n}" for n in range(4)]
        counts = await row_counts(stores[0].engine)
        assert counts["immagent_agents"] == 1 + 4  # the empty start and one state per add_items


async def test_session_settings_give_the_default_limit_as_on_the_sdk_sessions(store: Store) -> None:
    reference = SQLiteSession("limited", session_settings={"limit": 2})
    ours = ImmagentSession("limited", store, session_settings={"limit": 2})
    for session in (reference, ours):
        await session.add_items(ITEMS[:5])
    assert await ours.get_items() == await reference.get_items() == ITEMS[3:5]
    assert await ours.get_items(limit=4) == await reference.get_items(limit=4) == ITEMS[1:5]
