"""A corpus of bad and odd inputs against every public call, on SQLite and PostgreSQL.

- Refused: each gets a typed error (ValidationError naming the argument, or AgentNotFoundError), the
  model is never called, and the database is byte-for-byte unchanged.
- Odd but valid (SQL and LIKE metacharacters, emoji, RTL, combining marks, a 5 MB message): stored
  verbatim and read back equal, and LIKE metacharacters in ``list_agents(name=)`` match literally.
- Malformed tool arguments and malformed model responses: see test_tool_faults.py and
  test_model_faults.py (a tool message and a committed turn; an LLMError and nothing written).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from immagent import AgentNotFoundError, LLMError, PersistentAgent, Store, ValidationError
from immagent._ids import uuid7
from immagent.testing import ScriptedModel
from tests.reliability._support import Tally
from tests.support.db import snapshot
from tests.support.openai_server import ScriptedOpenAIServer

SURROGATE = "broken \ud800 half"
NAN, INF = float("nan"), float("inf")


@dataclass
class Ctx:
    store: Store
    agent: PersistentAgent
    model: str


def _create(**change: Any) -> Callable[[Ctx], Awaitable[object]]:
    def call(c: Ctx) -> Awaitable[object]:
        return c.store.create_agent(**{"name": "n", "system_prompt": "p", "model": c.model, **change})

    return call


def _advance(*args: Any, **kwargs: Any) -> Callable[[Ctx], Awaitable[object]]:
    return lambda c: c.agent.advance(*(args or ("hello",)), **kwargs)


def _on_agent(method: str, *args: Any, **kwargs: Any) -> Callable[[Ctx], Awaitable[object]]:
    return lambda c: getattr(c.agent, method)(*args, **kwargs)  # type: ignore[no-any-return]


def _on_store(method: str, *args: Any, **kwargs: Any) -> Callable[[Ctx], Awaitable[object]]:
    return lambda c: getattr(c.store, method)(*args, **kwargs)  # type: ignore[no-any-return]


async def _connect(**kwargs: Any) -> Store:
    store = await Store.connect(**kwargs)
    await store.close()  # reached only when the arguments were wrongly accepted
    return store


def _connecting(**kwargs: Any) -> Callable[[Ctx], Awaitable[object]]:
    return lambda c: _connect(url="sqlite+aiosqlite:///:memory:", **kwargs)


#: (field the ValidationError must name, the call)
REFUSED: list[tuple[str, Callable[[Ctx], Awaitable[object]]]] = [
    # create_agent
    *[("name", _create(name=v)) for v in ["", " \t\n", "a\x00b", SURROGATE, b"n", None, 7, ["n"], "x" * 256]],
    *[("system_prompt", _create(system_prompt=v)) for v in ["", "   ", "p\x00", SURROGATE, None, {"p": 1}]],
    *[("model", _create(model=v)) for v in ["", " ", None, 4, SURROGATE, "m" * 256]],
    *[
        ("metadata", _create(metadata=v))
        for v in [
            ["a"],
            "a=1",
            {1, 2},
            {"x": NAN},
            {"x": INF},
            {"x": object()},
            {"x": b"bytes"},
            {"x": "nul\x00"},
            {"nul\x00key": 1},
            {"x": SURROGATE},
            {SURROGATE: 1},
            {1: "int key"},
            {"deep": {"deeper": [{2: "int key"}]}},
        ]
    ],
    *[
        ("model_settings", _create(model_settings=v))
        for v in [
            {"api_key": "sk-x"},
            {"extra_headers": {"Authorization": "Bearer x"}},
            {"OPENAI_API_KEY": "sk-x"},
            {"messages": []},
            {"stream": True},
            "temperature=1",
            {"x": NAN},
        ]
    ],
    ("model_settings.temperature", _create(model_settings={"temperature": "hot"})),
    ("model_settings.temperature", _create(model_settings={"temperature": 9})),
    ("model_settings.max_tokens", _create(model_settings={"max_tokens": 0})),
    ("model_settings.max_tokens", _create(model_settings={"max_tokens": "many"})),
    # advance
    *[("text", _advance(v)) for v in ["", "  \n", "\x00", "a\x00", SURROGATE, None, 5, b"hi", ["hi"]]],
    *[("max_retries", _advance(max_retries=v)) for v in [-1, "3", None, 1.5, True]],
    *[("timeout", _advance(timeout=v)) for v in [0, -1, INF, NAN, "10", True, None]],
    *[("max_tool_rounds", _advance(max_tool_rounds=v)) for v in [0, "2", 1.0]],
    *[("temperature", _advance(temperature=v)) for v in [3, -0.5, "1", NAN]],
    *[("top_p", _advance(top_p=v)) for v in [1.5, "x"]],
    *[("max_tokens", _advance(max_tokens=v)) for v in [0, -3, True, 1.5, "10"]],
    *[("mcp", _advance(mcp=v)) for v in [5, "weather", {"tools": []}]],
    ("session", _advance(session="not a session")),
    # clone / with_metadata
    ("session", _on_agent("clone", session=42)),
    ("session", _on_agent("with_metadata", {"k": 2}, session=object())),
    *[
        ("metadata", _on_agent("with_metadata", v))
        for v in ["x", [1], {"x": NAN}, {SURROGATE: 1}, {"x": "\x00"}]
    ],
    # reads
    *[("agent_id", _on_store("load_agent", v)) for v in [5, None, "", "not-a-uuid", "'; --", b"\x00" * 16]],
    *[("agent_ids", _on_store("load_agents", v)) for v in [None, 5, "abc", b"abc", [5], ["x"], [None]]],
    *[("limit", _on_store("list_agents", limit=v)) for v in [-1, "5", None, 1.5, True]],
    *[("offset", _on_store("list_agents", offset=v)) for v in [-1, "0", 2.0]],
    *[("name", _on_store("list_agents", name=v)) for v in [5, "\x00", SURROGATE, b"n"]],
    *[("name", _on_store("count_agents", name=v)) for v in [5, "\x00", SURROGATE]],
    *[("name", _on_store("find_by_name", v)) for v in [None, 5, "a\x00", SURROGATE]],
    # delete
    *[("agent", _on_store("delete", v)) for v in [5, None, "nope", "", 1.5]],
    # connect
    ("url", lambda c: _connect(url="mongodb://localhost/x")),
    ("url", lambda c: _connect(url=5)),
    ("engine", lambda c: _connect(engine="an engine")),
    ("max_size", _connecting(max_size=0)),
    ("max_size", _connecting(max_size="3")),
    ("min_size", _connecting(min_size=-1)),
    ("min_size", _connecting(min_size=4, max_size=2)),
    *[
        ("max_inactive_connection_lifetime", _connecting(max_inactive_connection_lifetime=v))
        for v in [0, -1, "9", NAN]
    ],
]


async def _ctx(store: Store, model: ScriptedModel) -> Ctx:
    root = await store.create_agent(name="target", system_prompt="p", model=model.model, metadata={"k": 1})
    agent = await root.advance("first")
    model.reset()
    return Ctx(store, agent, model.model)


async def test_every_bad_input_gets_a_validation_error_and_changes_nothing(
    store: Store, scripted: ScriptedModel, tally: Tally
) -> None:
    """The whole corpus in one test per backend (one snapshot per case; hundreds of cases stay fast)."""
    ctx = await _ctx(store, scripted)
    history = await ctx.agent.messages()
    for index, (field, call) in enumerate(REFUSED):
        before = await snapshot(store.engine)
        with pytest.raises(ValidationError) as caught:
            await call(ctx)
        assert caught.value.field == field, f"case {index}: {caught.value!r}"
        assert await snapshot(store.engine) == before, f"case {index} wrote something"
        assert scripted.requests == [], f"case {index} reached the model"
        tally.add("bad inputs tried")
        tally.add("bad inputs refused with a typed error")
    assert await ctx.agent.messages() == history
    assert await (await ctx.agent.advance("still fine")).last_response() == "echo: still fine"


async def test_ids_that_do_not_exist_get_agent_not_found_and_change_nothing(
    store: Store, scripted: ScriptedModel, tally: Tally
) -> None:
    ctx = await _ctx(store, scripted)
    missing = uuid7()
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.load_agent(missing),
        lambda: store.load_agent(str(missing)),
        lambda: store.load_agents([ctx.agent.id, missing]),
        lambda: store.delete(missing),
        lambda: store.delete(str(missing).upper()),
    ]
    for call in calls:
        before = await snapshot(store.engine)
        with pytest.raises(AgentNotFoundError) as caught:
            await call()
        assert caught.value.agent_id == missing
        assert await snapshot(store.engine) == before
        tally.add("bad inputs tried")
        tally.add("bad inputs refused with a typed error")


# -- odd but valid: stored verbatim, read back equal -------------------------------------------------------

ODD_TEXTS = [
    "'; DROP TABLE immagent_agents; --",
    "Robert'); DELETE FROM immagent_messages WHERE ('1'='1",
    '" OR ""="',
    "100% of_it \\ back\\slash %% __",
    "emoji 🙂 family 👩‍👩‍👧‍👦 flag 🇫🇷 skin 👍🏽",
    "RTL: עברית and العربية mixed with LTR",
    "combining: e\u0301 a\u0308 n\u0303 Z\u0351\u0362\u0327",
    "zero width: a\u200bb\u200dc\ufeff and NBSP\u00a0here",
    "CJK 漢字かなカナ, Hangul 한국어, Devanagari हिन्दी",
    "control-ish: tab\t, newline\n, CR\r, bell\x07, escape\x1b[31m",
    "astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈 \U0010fffd",
    'json-ish: {"a": [1, 2]} and \\u0000 as six characters',
]


async def test_odd_but_valid_text_is_stored_verbatim_and_reads_back_equal(
    store: Store, scripted: ScriptedModel, tally: Tally
) -> None:
    for text in ODD_TEXTS:
        name = text[:255]
        metadata = {"value": text, text[:40]: [text, 1, 2.5, None, True], "nested": {"like": "%_\\"}}
        agent = await store.create_agent(
            name=name, system_prompt=text, model=scripted.model, metadata=metadata
        )
        scripted.reply(text)  # the model answers with the same odd text
        new = await agent.advance(text)

        store.clear_cache()
        loaded = await store.load_agent(new.id)
        assert (loaded.name, loaded.metadata) == (name, metadata)
        assert await loaded.system_prompt() == text
        assert [(m.role, m.content) for m in await loaded.messages()] == [("user", text), ("assistant", text)]
        assert [a.id for a in await store.find_by_name(name)] == [new.id, agent.id]
        tally.add("odd valid inputs stored verbatim")
    assert await store.count_agents() == 2 * len(ODD_TEXTS)


async def test_names_at_the_length_limit_count_characters_not_bytes(
    store: Store, scripted: ScriptedModel
) -> None:
    name = "🙂" * 255  # 255 characters, 1020 UTF-8 bytes
    agent = await store.create_agent(name=name, system_prompt="p", model=scripted.model)
    store.clear_cache()
    assert (await store.load_agent(agent.id)).name == name


async def test_a_5_mb_message_is_valid_text_that_persists_and_reloads_equal(
    store: Store, scripted: ScriptedModel, tally: Tally
) -> None:
    big = ("Lorem ipsum dolor sit amet, ünïcödé 🙂 " * 140_000)[: 5 * 1024 * 1024]
    assert len(big) == 5 * 1024 * 1024
    agent = await store.create_agent(name="big", system_prompt="p", model=scripted.model)
    scripted.reply("got it")
    new = await agent.advance(big)
    assert scripted.requests[-1].messages[-1]["content"] == big
    store.clear_cache()
    loaded = await (await store.load_agent(new.id)).messages()
    assert loaded[0].content == big
    assert loaded[1].content == "got it"
    tally.add("odd valid inputs stored verbatim")


async def test_like_metacharacters_in_list_agents_name_match_literally(
    store: Store, scripted: ScriptedModel, tally: Tally
) -> None:
    names = ["100%", "100 percent", "a_b", "axb", "AXB", "back\\slash", "backslash", "%", "_", "[ab]", "a"]
    for name in names:
        await store.create_agent(name=name, system_prompt="p", model=scripted.model)
    expectations = {
        "%": {"100%", "%"},
        "_": {"a_b", "_"},
        "\\": {"back\\slash"},
        "A_B": {"a_b"},
        "0%": {"100%"},
        "[ab]": {"[ab]"},
        "[": {"[ab]"},
        "x": {"axb", "AXB"},
        "": set(names),
        "%%": set(),
        "'": set(),
    }
    for pattern, expected in expectations.items():
        listed = {a.name for a in await store.list_agents(name=pattern)}
        assert listed == expected, pattern
        assert await store.count_agents(name=pattern) == len(expected), pattern
        tally.add("odd valid inputs stored verbatim")
    assert [a.name for a in await store.find_by_name("%")] == ["%"]
    assert await store.find_by_name("AXB") != await store.find_by_name("axb")


# -- model replies the database cannot store -------------------------------------------------------------


@pytest.mark.parametrize("reply", ["nul \x00 inside", "lone \ud800 surrogate"], ids=["nul", "surrogate"])
async def test_a_model_reply_the_database_cannot_store_is_an_llm_error_and_writes_nothing(
    db_url: str, llm: ScriptedOpenAIServer, tally: Tally, reply: str
) -> None:
    """A provider's JSON may carry ``\\u0000`` or a lone ``\\ud800``. PostgreSQL cannot store the
    first and UTF-8 cannot encode the second, so on every backend the turn fails as a malformed
    response (LLMError) and writes nothing, instead of a raw driver error at commit."""
    async with await Store.connect(db_url) as store:
        agent = await (await store.create_agent(name="r", system_prompt="p", model="gpt-4o-mini")).advance(
            "1"
        )
        before = await snapshot(store.engine)
        llm.reply(reply)
        tally.add("unstorable model replies tried")
        with pytest.raises(LLMError, match="malformed response"):
            await agent.advance("say something odd", max_retries=0)
        assert await snapshot(store.engine) == before
        again = await agent.advance("and now?")
        assert again.parent_id == agent.id


def test_the_corpus_covers_every_argument_of_the_public_api() -> None:
    fields = {field for field, _ in REFUSED}
    assert len(REFUSED) >= 130
    assert {
        "name",
        "system_prompt",
        "model",
        "metadata",
        "model_settings",
        "text",
        "timeout",
        "mcp",
    } <= fields
    assert {"session", "agent_id", "agent_ids", "limit", "offset", "agent", "url", "engine"} <= fields
