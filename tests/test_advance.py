"""advance(): what the model receives, what is stored, and that a failed turn leaves no trace."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from immagent import LLMError, Message, PersistentAgent, Store
from tests.support.db import StatementCounter, snapshot
from tests.support.openai_server import ScriptedOpenAIServer

MODEL = "gpt-4o-mini"


async def test_the_model_gets_the_system_prompt_then_the_history_then_the_input(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    agent = await store.create_agent(name="a", system_prompt="Be brief.", model=MODEL)
    llm.reply("first answer", input_tokens=11, output_tokens=3)
    one = await agent.advance("first question")
    llm.reply("second answer", input_tokens=20, output_tokens=4)
    two = await one.advance("second question", temperature=0.3, max_tokens=50, top_p=0.9)

    sent = llm.last_request
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    assert sent["model"] == MODEL
    assert sent["temperature"] == 0.3
    assert sent["max_tokens"] == 50
    assert sent["top_p"] == 0.9
    assert "temperature" not in llm.requests[0]

    assert two.parent_id == one.id and one.parent_id == agent.id
    assert len({agent.id, one.id, two.id}) == 3
    assert await two.last_response() == "second answer"
    assert await two.token_usage() == (31, 7)
    assert [m.role for m in await two.messages()] == ["user", "assistant", "user", "assistant"]
    assert await one.messages() == (await two.messages())[:2]  # the old state is unchanged


async def test_model_settings_are_sent_and_per_call_values_override_them(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    agent = await store.create_agent(
        name="a", system_prompt="p", model=MODEL, model_settings={"temperature": 0.1, "seed": 7}
    )
    await agent.advance("x")
    assert llm.last_request["temperature"] == 0.1 and llm.last_request["seed"] == 7
    await agent.advance("y", temperature=1.5)
    assert llm.last_request["temperature"] == 1.5


async def test_a_reloaded_turn_equals_the_one_returned(store: Store, llm: ScriptedOpenAIServer) -> None:
    agent = await store.create_agent(name="a", system_prompt="p", model=MODEL)
    llm.reply("answer", input_tokens=9, output_tokens=2)
    new = await agent.advance("question")
    before = await new.messages()
    store.clear_cache()
    reloaded = await store.load_agent(new.id)
    after = await reloaded.messages()
    assert after == before
    assert [m.depth for m in after] == [0, 1]
    assert after[1].parent_id == after[0].id
    assert reloaded.head_id == after[-1].id


async def test_advancing_a_warm_agent_reads_nothing(
    store: Store, llm: ScriptedOpenAIServer, count_statements: StatementCounter
) -> None:
    agent = await store.create_agent(name="a", system_prompt="p", model=MODEL)
    one = await agent.advance("1")
    count_statements.statements.clear()
    await one.advance("2")
    assert count_statements.matching("select") == []
    assert len(count_statements.matching("insert")) == 2  # the messages (one statement), then the agent


@pytest.mark.parametrize("failure", ["http_500", "timeout", "malformed"])
async def test_a_model_failure_leaves_the_database_exactly_as_it_was(
    store: Store, llm: ScriptedOpenAIServer, failure: str
) -> None:
    agent = await store.create_agent(name="a", system_prompt="p", model=MODEL)
    one = await agent.advance("1")
    before = await snapshot(store.engine)
    if failure == "http_500":
        llm.fail(500)
    elif failure == "timeout":
        llm.hang(2.0)
    else:
        llm.malformed()
    with pytest.raises(LLMError):
        await one.advance("2", max_retries=0, timeout=0.5)
    assert await snapshot(store.engine) == before
    llm.reply("recovered")
    again = await one.advance("2")
    assert await again.last_response() == "recovered"
    assert again.parent_id == one.id


@pytest.mark.parametrize("where", ["agent_insert", "commit"])
async def test_a_failure_between_the_inserts_and_the_commit_writes_nothing(
    store: Store, llm: ScriptedOpenAIServer, where: str
) -> None:
    agent = await store.create_agent(name="a", system_prompt="p", model=MODEL)
    one = await agent.advance("1")
    before = await snapshot(store.engine)
    seen: list[str] = []

    class Injected(RuntimeError):
        pass

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)
        if statement.lstrip().upper().startswith("INSERT INTO IMMAGENT_AGENTS"):
            raise Injected("injected before the agent row")

    def on_commit(conn: Any) -> None:
        raise Injected("injected at commit")

    target, hook = ("before_cursor_execute", on_execute) if where == "agent_insert" else ("commit", on_commit)
    event.listen(store.engine.sync_engine, target, hook)
    try:
        with pytest.raises(Injected):
            await one.advance("2")
    finally:
        event.remove(store.engine.sync_engine, target, hook)
    if where == "agent_insert":
        assert any(s.upper().startswith("INSERT INTO IMMAGENT_MESSAGES") for s in seen)
    assert await snapshot(store.engine) == before
    assert await one.messages() == (await store.load_agent(one.id))._history.messages
    retried = await one.advance("2")
    assert retried.parent_id == one.id
    assert len(await retried.messages()) == 4


async def test_messages_alias_and_values(store: Store, llm: ScriptedOpenAIServer) -> None:
    agent = await store.create_agent(name="a", system_prompt="p", model=MODEL)
    new = await agent.advance("hello")
    messages = await new.get_messages()
    assert all(isinstance(m, Message) for m in messages)
    assert messages[0].content == "hello" and messages[0].role == "user"
    assert isinstance(new, PersistentAgent)


def _as_sent(form: dict[str, Any]) -> dict[str, Any]:
    """A wire form as the server receives it: LiteLLM leaves out a null ``content`` on the wire."""
    return {k: v for k, v in form.items() if not (k == "content" and v is None)}


async def test_reused_wire_forms_reach_the_model_exactly_and_litellm_leaves_them_unchanged(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    """A turn sends each history message's wire form computed once and kept (``Message.llm_form``);
    after real calls through LiteLLM's HTTP path, with tool calls in the history, every kept form still
    equals a fresh ``to_llm()``, branches included, so LiteLLM did not mutate what the next turn reuses."""
    from immagent import SimpleAgent

    agent = await store.create_agent(name="w", system_prompt="p", model=MODEL)
    llm.reply(None, tool_calls=[("call_1", "missing_tool", '{"a": 1}')])
    llm.reply("after the tool")
    one = await agent.advance("first")  # the tool call is answered with an error message: no tools
    llm.reply("second answer")
    two = await one.advance("second")
    llm.reply("a branch")
    branch = await one.advance("other")
    store.clear_cache()
    cold = await store.load_agent(two.id)
    llm.reply("third answer")
    await cold.advance("third")

    history = await cold.messages()
    fresh = [m.to_llm() for m in history]
    assert [m.llm_form() for m in history] == fresh
    assert llm.last_request["messages"] == [
        {"role": "system", "content": "p"},
        *map(_as_sent, fresh),
        {"role": "user", "content": "third"},
    ]
    kept = store._cache.history_wire(two) or []
    assert kept == [m.to_llm() for m in await two.messages()]
    assert [m.role for m in await branch.messages()][-2:] == ["user", "assistant"]
    assert llm.requests[3]["messages"][1:] == [_as_sent(m.to_llm()) for m in (await branch.messages())[:-1]]
    assert any(m.tool_calls for m in history) and any(m.role == "tool" for m in history)

    simple = SimpleAgent(name="s", system_prompt="p", model=MODEL)
    llm.reply("s1")
    llm.reply("s2")
    later = await (await simple.advance("one")).advance("two")
    assert llm.last_request["messages"][1:] == [m.to_llm() for m in later.messages()[:-1]]
    assert later == SimpleAgent(name="s", system_prompt="p", model=MODEL, history=later.messages())
