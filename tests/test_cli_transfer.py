"""``immagent export`` / ``immagent import`` through the console script: the document is valid against the
views' JSON schema, and importing it into a fresh database (SQLite or PostgreSQL) recreates the lineage and
the messages with their ids; a second import changes nothing. Plus Store.import_states' own checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from immagent import Message, PersistentAgent, Store, SystemPrompt, ValidationError
from immagent.testing import ScriptedModel
from tests.support import cli as cli_support
from tests.support.cli import DemoRun, cli_env, run_cli
from tests.support.db import BACKENDS, empty_database, snapshot

demo_run = cli_support.demo_run


@pytest.fixture
def exported(demo_run: DemoRun, tmp_path: Path) -> dict[str, Any]:
    result = run_cli(
        "export", demo_run.branch_b, "-o", "state.json", "--url", demo_run.url, cwd=tmp_path, env=cli_env()
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads((tmp_path / "state.json").read_text(encoding="utf-8"))
    return document


@pytest.fixture(params=BACKENDS)
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no tables) to import into."""
    with empty_database(request, request.param, tmp_path / "target.db", "immagent_cli_import") as url:
        yield url


def test_the_export_is_valid_against_the_views_json_schema(
    exported: dict[str, Any], demo_run: DemoRun, tmp_path: Path
) -> None:
    schema = run_cli("export", "--schema", cwd=tmp_path, env=cli_env())
    assert schema.returncode == 0, schema.stderr
    jsonschema.validate(exported, json.loads(schema.stdout))
    for agent in exported["agents"]:
        jsonschema.validate(agent, PersistentAgent.model_json_schema(mode="serialization"))
    for message in exported["messages"]:
        jsonschema.validate(message, Message.model_json_schema(mode="serialization"))
    for prompt in exported["system_prompts"]:
        jsonschema.validate(prompt, SystemPrompt.model_json_schema(mode="serialization"))

    assert exported["state_id"] == demo_run.branch_b == exported["agents"][-1]["id"]
    assert exported["agents"][0]["parent_id"] is None  # the lineage, root first
    assert len(exported["messages"]) == 10
    tool_call = exported["messages"][5]["tool_calls"][0]
    assert tool_call["name"] == "get_weather" and json.loads(tool_call["arguments"]) == {"city": "Paris"}

    broken = {**exported, "messages": [{**exported["messages"][0], "role": "wizard"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, json.loads(schema.stdout))


async def test_import_into_a_fresh_database_recreates_lineage_and_messages_with_their_ids(
    exported: dict[str, Any], demo_run: DemoRun, target_url: str, tmp_path: Path
) -> None:
    result = run_cli("import", "state.json", "--url", target_url, cwd=tmp_path, env=cli_env())
    assert result.returncode == 0, result.stderr
    assert (
        "imported 5 states and 10 messages, ids kept (5 states and 10 messages were new here)"
        in result.stdout
    )

    async with await Store.connect(demo_run.url) as source, await Store.connect(target_url) as target:
        original = await source.load_agent(demo_run.branch_b)
        copy = await target.load_agent(demo_run.branch_b)
        assert copy == original
        assert await copy.lineage() == await original.lineage()
        assert await copy.messages() == await original.messages()
        assert await copy.system_prompt() == await original.system_prompt()
        assert await copy.token_usage() == await original.token_usage()
        assert await target.count_agents() == 5

        before = await snapshot(target.engine)
        again = run_cli(
            "import", "-", "--url", target_url, cwd=tmp_path, env=cli_env(), stdin=json.dumps(exported)
        )
        assert again.returncode == 0, again.stderr
        assert "(0 states and 0 messages were new here)" in again.stdout
        assert await snapshot(target.engine) == before


async def test_an_imported_state_can_be_shown_and_advanced(
    exported: dict[str, Any], demo_run: DemoRun, tmp_path: Path, scripted_model: ScriptedModel
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'target.db'}"
    assert run_cli("import", "state.json", "--url", url, cwd=tmp_path, env=cli_env()).returncode == 0
    show = run_cli("show", demo_run.branch_b, "--url", url, cwd=tmp_path, env=cli_env())
    assert show.returncode == 0 and "messages  10" in show.stdout

    async with await Store.connect(url) as store:
        state = await store.load_agent(demo_run.branch_b)
        scripted_model.reply("welcome back")
        new = await state.advance("thanks!")
        assert await new.last_response() == "welcome back"
        assert len(await new.messages()) == 12
        assert scripted_model.requests[0].messages[-1].get("content") == "thanks!"


def test_a_file_that_is_not_an_export_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"format": "something else"}', encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'target.db'}"
    result = run_cli("import", "bad.json", "--url", url, cwd=tmp_path, env=cli_env())
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: bad.json is not an immagent export: format:")


async def test_a_document_missing_a_message_is_refused_and_writes_nothing(
    exported: dict[str, Any], tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'target.db'}"
    holed = {**exported, "messages": exported["messages"][:4] + exported["messages"][5:]}
    result = run_cli("import", "-", "--url", url, cwd=tmp_path, env=cli_env(), stdin=json.dumps(holed))
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("error: messages: message ") and line.endswith(" is missing")
    engine = create_async_engine(url)
    try:
        assert await snapshot(engine) == []
    finally:
        await engine.dispose()


# --- Store.import_states directly --------------------------------------------------------------------------


def _views(document: dict[str, Any]) -> tuple[list[PersistentAgent], list[Message], list[SystemPrompt]]:
    return (
        [PersistentAgent.model_validate(a) for a in document["agents"]],
        [Message.model_validate(m) for m in document["messages"]],
        [SystemPrompt.model_validate(p) for p in document["system_prompts"]],
    )


async def test_import_states_returns_bound_states_and_is_idempotent(
    exported: dict[str, Any], store: Store
) -> None:
    agents, messages, prompts = _views(exported)
    states = await store.import_states(agents, messages, prompts)
    assert [s.id for s in states] == [a.id for a in agents]
    assert await states[-1].messages() == tuple(messages)
    before = await snapshot(store.engine)
    assert await store.import_states(agents, messages, prompts) == states
    assert await snapshot(store.engine) == before
    assert await store.stats() == {"agents": 5, "messages": 10, "texts": 1, "threads": 0, "thread_moves": 0}


@pytest.mark.parametrize(
    ("damage", "field", "match"),
    [
        (lambda a, m, p: (a, m[1:], p), "messages", "is missing"),
        (lambda a, m, p: (a[:2], m, p), "messages", "no state's history holds"),
        (lambda a, m, p: (a, m, []), "system_prompts", "is missing"),
        (
            lambda a, m, p: (a, m, [SystemPrompt(id=p[0].id, content="tampered")]),
            "system_prompts",
            "not the id of its content",
        ),
        (
            lambda a, m, p: (a, [m[0].model_copy(update={"depth": 3}), *m[1:]], p),
            "messages",
            "inconsistent depth",
        ),
    ],
    ids=["missing-message", "stray-message", "missing-prompt", "tampered-prompt", "bad-depth"],
)
async def test_import_states_checks_the_document_before_writing(
    exported: dict[str, Any], store: Store, damage: Any, field: str, match: str
) -> None:
    agents, messages, prompts = damage(*_views(exported))
    with pytest.raises(ValidationError, match=match) as info:
        await store.import_states(agents, messages, prompts)
    assert info.value.field == field
    assert await snapshot(store.engine) == []
