"""advance_stream() over real HTTP (the scripted server's server-sent events) on every backend: the deltas
are the reply, usage is recorded as in advance(), and only a turn the consumer saw to its end is written;
stopping early, closing the stream or cancelling the task leaves the database exactly as it was."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

import pytest

from immagent import LLMError, PersistentAgent, SimpleAgent, Store, TextDelta, TurnComplete
from immagent.testing import ScriptedModel
from tests.support.db import snapshot
from tests.support.openai_server import ScriptedOpenAIServer

MODEL = "gpt-4o-mini"
REPLY = "The quick brown fox jumps over the lazy dog, twice."


async def new_agent(store: Store) -> PersistentAgent:
    return await store.create_agent(name="stream", system_prompt="Be brief.", model=MODEL)


async def test_deltas_arrive_in_pieces_and_concatenate_to_the_stored_reply(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    agent = await new_agent(store)
    llm.reply(REPLY, input_tokens=12, output_tokens=9)
    events = [event async for event in agent.advance_stream("Say something.")]

    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 3, "the reply should arrive in several pieces"
    assert "".join(deltas) == REPLY
    assert isinstance(events[-1], TurnComplete)
    assert sum(isinstance(e, TurnComplete) for e in events) == 1
    assert llm.last_request["stream"] is True

    new = events[-1].agent
    assert isinstance(new, PersistentAgent) and new.parent_id == agent.id
    assert [m.role for m in events[-1].messages] == ["user", "assistant"]
    assert await new.last_response() == REPLY
    assert await new.token_usage() == (12, 9)

    store.clear_cache()  # what was committed, read back from the database
    reloaded = await store.load_agent(new.id)
    [user, assistant] = await reloaded.messages()
    assert (user.content, assistant.content) == ("Say something.", REPLY)
    assert (assistant.input_tokens, assistant.output_tokens) == (12, 9)
    assert await agent.messages() == ()  # the old state is unchanged


async def test_a_streamed_turn_stores_what_advance_stores(store: Store, llm: ScriptedOpenAIServer) -> None:
    agent = await new_agent(store)
    llm.reply(REPLY, input_tokens=5, output_tokens=4)
    plain = await agent.advance("Hi")
    llm.reply(REPLY, input_tokens=5, output_tokens=4)
    streamed = [e async for e in agent.advance_stream("Hi")][-1].agent

    one, two = await plain.messages(), await streamed.messages()
    assert len(one) == len(two) == 2
    assert all(a.same_content(b) for a, b in zip(one, two, strict=True))
    assert await plain.token_usage() == await streamed.token_usage() == (5, 4)


async def test_breaking_out_after_the_first_delta_writes_nothing(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    agent = await new_agent(store)
    before = await snapshot(store.engine)
    llm.reply(REPLY, chunk_delay=0.05)
    async with aclosing(agent.advance_stream("Go")) as stream:
        async for event in stream:
            assert isinstance(event, TextDelta)
            break
    assert await snapshot(store.engine) == before
    assert await agent.children() == ()


async def test_a_consumer_that_reads_every_delta_but_not_the_final_event_writes_nothing(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    """The commit happens when the final event is asked for: stopping just before it writes nothing."""
    agent = await new_agent(store)
    before = await snapshot(store.engine)
    llm.reply("one two three")
    stream = agent.advance_stream("Go")
    text = ""
    while len(text) < len("one two three"):
        event = await anext(stream)
        assert isinstance(event, TextDelta)
        text += event.text
    await stream.aclose()
    assert text == "one two three"
    assert await snapshot(store.engine) == before


async def test_an_abandoned_stream_that_is_never_closed_writes_nothing(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    agent = await new_agent(store)
    before = await snapshot(store.engine)
    llm.reply(REPLY)
    stream = agent.advance_stream("Go")
    assert isinstance(await anext(stream), TextDelta)
    await asyncio.sleep(0.3)  # the rest of the reply has arrived meanwhile: still nothing is written
    assert await snapshot(store.engine) == before
    await stream.aclose()
    assert await snapshot(store.engine) == before


async def test_cancelling_the_consuming_task_mid_reply_writes_nothing_and_the_store_still_works(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    agent = await new_agent(store)
    before = await snapshot(store.engine)
    llm.reply(REPLY, chunk_delay=0.2)
    first_delta = asyncio.Event()
    received: list[str] = []

    async def consume() -> None:
        async for event in agent.advance_stream("Go"):
            if isinstance(event, TextDelta):
                received.append(event.text)
                first_delta.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_delta.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 0 < len(received) < len(REPLY.split())
    assert await snapshot(store.engine) == before

    llm.reply("after the cancel")
    new = await agent.advance("again")
    assert await new.last_response() == "after the cancel"


async def test_a_stream_that_fails_writes_nothing(store: Store, llm: ScriptedOpenAIServer) -> None:
    agent = await new_agent(store)
    before = await snapshot(store.engine)
    llm.fail(500)
    with pytest.raises(LLMError, match="HTTP 500"):
        async for _ in agent.advance_stream("Go", max_retries=0):
            pass
    assert await snapshot(store.engine) == before


async def test_simple_agent_streams_and_its_final_event_carries_the_new_agent(
    llm: ScriptedOpenAIServer,
) -> None:
    agent = SimpleAgent(name="s", system_prompt="Be brief.", model=MODEL)
    llm.reply(REPLY, input_tokens=8, output_tokens=6)
    events: list[Any] = [e async for e in agent.advance_stream("Say something.")]

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == REPLY
    complete = events[-1]
    assert isinstance(complete, TurnComplete) and isinstance(complete.agent, SimpleAgent)
    assert complete.agent.last_response() == REPLY
    assert complete.agent.token_usage() == (8, 6)
    assert agent.messages() == ()  # immutable: the original is unchanged
    assert llm.last_request["stream"] is True


async def test_simple_agent_stream_stopped_early_leaves_the_agent_as_it_was(
    llm: ScriptedOpenAIServer,
) -> None:
    agent = SimpleAgent(name="s", system_prompt="p", model=MODEL)
    llm.reply(REPLY, chunk_delay=0.05)
    async with aclosing(agent.advance_stream("Go")) as stream:
        async for _ in stream:
            break
    assert agent.messages() == ()


async def test_the_offline_scripted_model_streams_word_by_word(
    store: Store, scripted_model: ScriptedModel
) -> None:
    """The CLI's offline model streams through LiteLLM's custom-provider path."""
    agent = await store.create_agent(name="offline", system_prompt="p", model=scripted_model.model)
    scripted_model.reply("an offline streamed reply", input_tokens=3, output_tokens=4)
    events = [e async for e in agent.advance_stream("Go")]
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert deltas == ["an ", "offline ", "streamed ", "reply"]
    new = events[-1].agent
    assert await new.token_usage() == (3, 4)
