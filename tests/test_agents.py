"""Creating, loading, listing and deriving agent states, on SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pydantic
import pytest

from immagent import (
    AgentNotFoundError,
    AgentNotRegisteredError,
    PersistentAgent,
    Store,
    ValidationError,
)
from immagent._ids import content_id, uuid7
from immagent._views import SystemPrompt
from tests.support.openai_server import ScriptedOpenAIServer

MODEL = "gpt-4o-mini"


async def make(store: Store, name: str = "helper", **kw: object) -> PersistentAgent:
    return await store.create_agent(name=name, system_prompt="You are helpful.", model=MODEL, **kw)  # type: ignore[arg-type]


async def test_a_new_agent_has_an_empty_history_and_no_usage(store: Store) -> None:
    agent = await make(store, metadata={"team": "a"}, model_settings={"temperature": 0.2})
    assert agent.parent_id is None
    assert agent.root_id == agent.id
    assert agent.head_id is None and agent.conversation_id is None
    assert await agent.messages() == ()
    assert await agent.token_usage() == (0, 0)
    assert await agent.last_response() is None
    assert agent.metadata == {"team": "a"}
    assert agent.model_settings == {"temperature": 0.2}
    assert await agent.system_prompt() == "You are helpful."
    assert agent.id.version == 7


async def test_a_loaded_agent_equals_the_created_one_even_with_a_cold_cache(store: Store) -> None:
    agent = await make(store, metadata={"k": [1, 2]})
    store.clear_cache()
    loaded = await store.load_agent(str(agent.id))
    assert loaded == agent
    assert loaded is not agent
    assert await store.load_agent(agent.id) is loaded  # warm: the same immutable view


async def test_loading_an_unknown_id_raises_agent_not_found(store: Store) -> None:
    missing = uuid4()
    with pytest.raises(AgentNotFoundError) as caught:
        await store.load_agent(missing)
    assert caught.value.agent_id == missing
    with pytest.raises(ValidationError) as bad:
        await store.load_agent("not-a-uuid")
    assert bad.value.field == "agent_id"


async def test_load_agents_keeps_the_order_asked_and_fails_on_any_missing(store: Store) -> None:
    a, b, c = [await make(store, name=n) for n in ("a", "b", "c")]
    store.clear_cache()
    loaded = await store.load_agents([c.id, a.id, str(b.id), a.id])
    assert [x.name for x in loaded] == ["c", "a", "b", "a"]
    with pytest.raises(AgentNotFoundError):
        await store.load_agents([a.id, uuid4()])


async def test_list_agents_is_newest_first_and_filters_by_substring_case_insensitively(store: Store) -> None:
    for name in ("Alpha", "beta", "alphabet", "100%_sure", "100x_sure", "gamma"):
        await make(store, name=name)
    names = [a.name for a in await store.list_agents()]
    assert names == ["gamma", "100x_sure", "100%_sure", "alphabet", "beta", "Alpha"]
    assert [a.name for a in await store.list_agents(name="ALPHA")] == ["alphabet", "Alpha"]
    assert [a.name for a in await store.list_agents(limit=2, offset=1)] == ["100x_sure", "100%_sure"]
    assert await store.count_agents() == 6
    assert await store.count_agents(name="alpha") == 2
    # LIKE metacharacters are literal: "%" and "_" match only themselves.
    assert [a.name for a in await store.list_agents(name="0%_")] == ["100%_sure"]
    assert await store.count_agents(name="%") == 1
    assert await store.count_agents(name="_") == 2


async def test_find_by_name_is_exact_and_case_sensitive(store: Store) -> None:
    first = await make(store, name="Bot")
    second = await make(store, name="Bot")
    await make(store, name="bot")
    await make(store, name="Bots")
    spaced = await make(store, name="Bot ")  # MySQL's default collations ignore case and trailing spaces
    found = await store.find_by_name("Bot")
    assert [a.id for a in found] == [second.id, first.id]
    assert await store.find_by_name("BOT") == ()
    assert [a.id for a in await store.find_by_name("Bot ")] == [spaced.id]
    assert await store.find_by_name("Bot  ") == ()
    assert [a.name for a in await store.list_agents(name="BOT ")] == ["Bot "]


async def test_every_content_id_is_storable_even_those_mariadbs_uuid_type_refuses(store: Store) -> None:
    """MariaDB's native UUID type refuses version-8 UUIDs whose clock_seq_hi byte is 0x80 (1 in 64 content
    ids); immagent's UUID columns take every id on every backend."""
    prompt = next(p for p in (f"prompt {i}" for i in range(10_000)) if content_id(p).bytes[8] == 0x80)
    agent = await store.create_agent(name="odd id", system_prompt=prompt, model=MODEL)
    store.clear_cache()
    assert await (await store.load_agent(agent.id)).system_prompt() == prompt


async def test_states_of_the_same_microsecond_list_by_id_and_keep_their_exact_time(store: Store) -> None:
    """Ties on created_at are broken by id, in Python's UUID order on every backend (MariaDB's native
    UUID type sorts some UUID versions differently), and the microseconds read back exactly."""
    prompt = SystemPrompt(id=content_id("p"), content="p")
    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    ids = sorted(
        [uuid7() for _ in range(3)] + [uuid4() for _ in range(3)] + [content_id(str(i)) for i in range(3)]
    )
    states = [
        PersistentAgent(
            id=i,
            root_id=i,
            parent_id=None,
            name="tie",
            system_prompt_id=prompt.id,
            head_id=None,
            model=MODEL,
            metadata={},
            model_settings={},
            created_at=when,
        )
        for i in ids
    ]
    await store.import_states(states, [], [prompt])
    store.clear_cache()
    listed = await store.list_agents()
    assert [a.id for a in listed] == ids[::-1]
    assert [a.id for a in await store.find_by_name("tie")] == ids[::-1]
    assert {a.created_at for a in listed} == {when}


async def test_clone_is_a_sibling_with_the_same_history(store: Store, llm: ScriptedOpenAIServer) -> None:
    root = await make(store)
    child = await root.advance("hi")
    twin = await child.clone()
    assert twin.id != child.id
    assert twin.parent_id == child.parent_id == root.id
    assert twin.conversation_id == child.conversation_id
    assert await twin.messages() == await child.messages()
    store.clear_cache()
    reloaded = await store.load_agent(twin.id)
    assert await reloaded.messages() == await child.messages()


async def test_with_metadata_makes_a_child_and_leaves_the_parent_unchanged(store: Store) -> None:
    agent = await make(store, metadata={"v": 1})
    changed = await agent.with_metadata({"v": 2, "tags": ["x"]})
    assert changed.parent_id == agent.id
    assert changed.metadata == {"v": 2, "tags": ["x"]}
    assert agent.metadata == {"v": 1}
    store.clear_cache()
    assert (await store.load_agent(agent.id)).metadata == {"v": 1}
    assert (await store.load_agent(changed.id)).metadata == {"v": 2, "tags": ["x"]}


async def test_lineage_is_root_first(store: Store, llm: ScriptedOpenAIServer) -> None:
    root = await make(store)
    one = await root.advance("1")
    two = await one.advance("2")
    meta = await two.with_metadata({"m": True})
    store.clear_cache()
    fresh = await store.load_agent(meta.id)
    assert [a.id for a in await fresh.lineage()] == [root.id, one.id, two.id, meta.id]
    assert [a.id for a in await fresh.get_lineage()] == [root.id, one.id, two.id, meta.id]
    assert [a.id for a in await root.children()] == [one.id]


async def test_a_view_serialises_to_a_plain_payload_without_store_plumbing(store: Store) -> None:
    agent = await make(store, metadata={"a": 1})
    payload = agent.model_dump(mode="json")
    assert set(payload) == {
        "id",
        "tenant",
        "root_id",
        "parent_id",
        "name",
        "system_prompt_id",
        "head_id",
        "model",
        "metadata",
        "model_settings",
        "created_at",
    }
    assert json.loads(json.dumps(payload))["id"] == str(agent.id)
    rebuilt = PersistentAgent.model_validate(payload)
    assert rebuilt == agent
    with pytest.raises(AgentNotRegisteredError):
        await rebuilt.messages()


async def test_views_are_frozen(store: Store) -> None:
    agent = await make(store)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        agent.name = "other"  # type: ignore[misc]
    assert isinstance(agent.id, UUID)
