"""Bad input gets a ValidationError naming the field, and nothing is written or sent."""

from __future__ import annotations

from typing import Any

import pytest

from immagent import SimpleAgent, Store, ValidationError, limits
from tests.support.db import snapshot
from tests.support.openai_server import ScriptedOpenAIServer

MODEL = "gpt-4o-mini"
GOOD: dict[str, Any] = {"name": "a", "system_prompt": "p", "model": MODEL}

BAD_CREATE = [
    ("name", {"name": ""}),
    ("name", {"name": "   \n\t"}),
    ("name", {"name": "a\x00b"}),
    ("name", {"name": 42}),
    ("name", {"name": "x" * 256}),
    ("system_prompt", {"system_prompt": ""}),
    ("system_prompt", {"system_prompt": "nul \x00 inside"}),
    ("model", {"model": " "}),
    ("metadata", {"metadata": {"when": object()}}),
    ("metadata", {"metadata": {"nan": float("nan")}}),
    ("metadata", {"metadata": ["not", "a", "dict"]}),
    ("metadata", {"metadata": {"nul": "a\x00"}}),
    ("metadata", {"metadata": {1: "int key"}}),
    ("model_settings", {"model_settings": {"api_key": "sk-secret"}}),
    ("model_settings", {"model_settings": {"extra_headers": {"Authorization": "Bearer x"}}}),
    ("model_settings", {"model_settings": {"aws_secret_access_key": "x"}}),
    ("model_settings", {"model_settings": {"anthropic_api_key": "x"}}),
    ("model_settings", {"model_settings": {"fn": print}}),
    ("model_settings", {"model_settings": {"messages": []}}),
    ("model_settings.temperature", {"model_settings": {"temperature": "hot"}}),
    ("model_settings.max_tokens", {"model_settings": {"max_tokens": 0}}),
]


@pytest.mark.parametrize(
    ("field", "change"), BAD_CREATE, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_CREATE)]
)
async def test_create_agent_refuses_bad_input_and_writes_nothing(
    store: Store, field: str, change: dict[str, Any]
) -> None:
    before = await snapshot(store.engine)
    with pytest.raises(ValidationError) as caught:
        await store.create_agent(**{**GOOD, **change})
    assert caught.value.field == field
    assert field in str(caught.value)
    assert await snapshot(store.engine) == before


def test_credentials_never_reach_a_simple_agent_either() -> None:
    with pytest.raises(ValidationError) as caught:
        SimpleAgent(name="a", system_prompt="p", model=MODEL, model_settings={"api_key": "sk"})
    assert caught.value.field == "model_settings"
    assert "sk" not in str(caught.value).replace("sk-", "")  # the value itself is never echoed


BAD_ADVANCE = [
    ("text", ("",), {}),
    ("text", ("  ",), {}),
    ("text", ("nul\x00",), {}),
    ("text", (None,), {}),
    ("max_tool_rounds", ("hi",), {"max_tool_rounds": 0}),
    ("max_retries", ("hi",), {"max_retries": -1}),
    ("timeout", ("hi",), {"timeout": 0}),
    ("timeout", ("hi",), {"timeout": -5.0}),
    ("timeout", ("hi",), {"timeout": float("inf")}),
    ("temperature", ("hi",), {"temperature": 3.5}),
    ("top_p", ("hi",), {"top_p": -0.1}),
    ("max_tokens", ("hi",), {"max_tokens": 0}),
    ("max_tokens", ("hi",), {"max_tokens": True}),
]


@pytest.mark.parametrize(
    ("field", "args", "kwargs"), BAD_ADVANCE, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(BAD_ADVANCE)]
)
async def test_advance_refuses_bad_input_before_calling_the_model(
    store: Store, llm: ScriptedOpenAIServer, field: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    agent = await store.create_agent(**GOOD)
    before = await snapshot(store.engine)
    with pytest.raises(ValidationError) as caught:
        await agent.advance(*args, **kwargs)
    assert caught.value.field == field
    assert llm.requests == []
    assert await snapshot(store.engine) == before


async def test_listing_arguments_are_checked(store: Store) -> None:
    with pytest.raises(ValidationError) as caught:
        await store.list_agents(limit=-1)
    assert caught.value.field == "limit"
    with pytest.raises(ValidationError) as caught:
        await store.list_agents(offset=-3)
    assert caught.value.field == "offset"
    for listing in (store.list_agents, store.list_threads):  # past the bound: refused, not a huge LIMIT
        with pytest.raises(ValidationError, match=f"at most {limits.PAGE_MAX_LIMIT}") as caught:
            await listing(limit=10**20)
        assert caught.value.field == "limit"
    assert len(await store.list_threads(limit=limits.PAGE_MAX_LIMIT)) == 0


async def test_connect_refuses_a_bad_url_or_pool() -> None:
    with pytest.raises(ValidationError) as caught:
        await Store.connect("mongodb://localhost/x")
    assert caught.value.field == "url"
    with pytest.raises(ValidationError) as caught:
        await Store.connect("sqlite+aiosqlite:///:memory:", min_size=5, max_size=2)
    assert caught.value.field == "min_size"
