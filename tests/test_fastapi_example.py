"""examples/fastapi_app.py through FastAPI's test client, on every backend, with the offline scripted
model: threads created, advanced and moved over HTTP; a stale writer gets 409 saying where the thread is;
tenants isolate through X-Tenant; every error is one RFC 9457 problem body."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from httpx import ASGITransport, AsyncClient, Response

from immagent import Message, PersistentAgent, Store, Thread, ThreadMove, limits
from immagent.testing import ScriptedModel

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fastapi_app.py"
PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance"}


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("immagent_fastapi_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # FastAPI resolves the annotations through the module
    spec.loader.exec_module(module)
    return module


example = load_example()


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    """The example app on a migrated, empty database (each backend in turn), lifespan included."""
    with TestClient(example.create_app(db_url)) as test_client:
        yield test_client


def problem(response: Response, status: int) -> dict[str, Any]:
    """The RFC 9457 body of an error response, checked against the status and the Problem model."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_FIELDS and body["status"] == status
    example.Problem.model_validate(body)
    return body


def create(client: TestClient, key: str, model: str, tenant: str | None = None) -> dict[str, Any]:
    headers = {"X-Tenant": tenant} if tenant else {}
    body = {"key": key, "agent": {"name": "support", "system_prompt": "be kind", "model": model}}
    response = client.post("/threads", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_a_thread_is_created_advanced_and_read_back_as_immagent_views(
    client: TestClient, scripted_model: ScriptedModel
) -> None:
    scripted_model.reply("Bonjour !", input_tokens=4, output_tokens=2)
    thread = create(client, "ticket-42", scripted_model.model)
    assert set(thread) == set(Thread.model_json_schema(mode="serialization")["properties"])
    assert (thread["key"], thread["position"], thread["tenant"]) == ("ticket-42", 0, "default")

    turn = client.post("/threads/ticket-42/messages", json={"text": "hello", "position": 0})
    assert turn.status_code == 201, turn.text
    moved = turn.json()["thread"]
    assert moved["position"] == 1 and moved["agent_id"] != thread["agent_id"]
    assert [(m["role"], m["content"]) for m in turn.json()["messages"]] == [
        ("user", "hello"),
        ("assistant", "Bonjour !"),
    ]
    assert client.get("/threads/ticket-42").json() == moved  # reads back identically
    assert Thread.model_validate(moved).model_dump(mode="json") == moved  # stable JSON

    head = client.get(f"/agents/{moved['agent_id']}").json()
    assert PersistentAgent.model_validate(head).model_dump(mode="json") == head
    assert head["parent_id"] == thread["agent_id"]
    messages = client.get(f"/agents/{moved['agent_id']}/messages").json()
    assert [Message.model_validate(m).model_dump(mode="json") for m in messages] == messages
    assert [m["output_tokens"] for m in messages] == [None, 2]
    lineage = client.get(f"/agents/{moved['agent_id']}/lineage").json()
    assert [a["id"] for a in lineage] == [thread["agent_id"], moved["agent_id"]]

    log = client.get("/threads/ticket-42/log").json()
    assert [(m["position"], m["kind"], m["agent_id"]) for m in log] == [
        (0, "create", thread["agent_id"]),
        (1, "advance", moved["agent_id"]),
    ]
    assert [ThreadMove.model_validate(m).model_dump(mode="json") for m in log] == log


def test_a_stale_writer_gets_409_with_the_current_head_and_nothing_is_written(
    client: TestClient, scripted_model: ScriptedModel
) -> None:
    thread = create(client, "t", scripted_model.model)
    first = client.post("/threads/t/messages", json={"text": "one", "position": 0}).json()["thread"]
    calls = len(scripted_model.requests)

    stale = problem(client.post("/threads/t/messages", json={"text": "two", "position": 0}), 409)
    assert stale["current"] == first  # where the thread is now: its head and position
    assert stale["title"] == "Conflict" and "position 1" in stale["detail"]
    assert len(scripted_model.requests) == calls  # refused before the model was called
    assert [m["position"] for m in client.get("/threads/t/log").json()] == [0, 1]

    stale_move = client.post("/threads/t/move", json={"agent_id": thread["agent_id"], "position": 0})
    assert problem(stale_move, 409)["current"] == first
    undo = client.post("/threads/t/move", json={"agent_id": thread["agent_id"], "position": 1})
    assert undo.status_code == 200 and undo.json()["agent_id"] == thread["agent_id"], undo.text
    assert undo.json()["position"] == 2

    taken = client.post(
        "/threads", json={"key": "t", "agent": {"name": "n", "system_prompt": "p", "model": "m"}}
    )
    assert problem(taken, 409)["current"]["position"] == 2
    assert client.get("/threads").json()["items"] == [undo.json()]


async def test_a_taken_key_writes_no_agent(
    db_url: str, client: TestClient, scripted_model: ScriptedModel
) -> None:
    create(client, "t", scripted_model.model)
    async with await Store.connect(db_url) as store:
        before = await store.stats()
    taken = client.post(
        "/threads", json={"key": "t", "agent": {"name": "other", "system_prompt": "p", "model": "m"}}
    )
    problem(taken, 409)
    async with await Store.connect(db_url) as store:
        assert await store.stats() == before


def test_tenants_are_isolated_by_the_header(client: TestClient, scripted_model: ScriptedModel) -> None:
    acme = create(client, "shared-key", scripted_model.model, tenant="acme")
    globex = create(client, "shared-key", scripted_model.model, tenant="globex")  # same key, other tenant
    assert (acme["tenant"], globex["tenant"]) == ("acme", "globex")

    assert client.get("/threads/shared-key", headers={"X-Tenant": "acme"}).json() == acme
    problem(client.get("/threads/shared-key"), 404)  # the default tenant has no such thread
    missing = problem(client.get(f"/agents/{acme['agent_id']}", headers={"X-Tenant": "globex"}), 404)
    assert missing["title"] == "Not found" and missing["type"] == "urn:immagent:error:AgentNotFoundError"
    moved = client.post(
        "/threads/shared-key/move",
        json={"agent_id": acme["agent_id"], "position": 0},
        headers={"X-Tenant": "globex"},
    )
    problem(moved, 404)  # another tenant's state cannot be pointed at
    listed = client.get("/threads", headers={"X-Tenant": "acme"}).json()
    assert [t["tenant"] for t in listed["items"]] == ["acme"]
    bad_tenant = problem(client.get("/threads", headers={"X-Tenant": " acme"}), 422)
    assert bad_tenant["field"] == "header.x-tenant"


def test_listing_pages_with_a_cursor(client: TestClient, scripted_model: ScriptedModel) -> None:
    for key in ("a", "b", "c"):
        create(client, key, scripted_model.model)
    first = client.get("/threads", params={"limit": 2}).json()
    assert [t["key"] for t in first["items"]] == ["c", "b"] and first["next_cursor"]
    rest = client.get("/threads", params={"limit": 2, "after": first["next_cursor"]}).json()
    assert [t["key"] for t in rest["items"]] == ["a"] and rest["next_cursor"] is None
    bad = problem(client.get("/threads", params={"after": "not-a-cursor"}), 422)
    assert bad["field"] == "after"  # the library's ValidationError names its argument
    too_many = problem(client.get("/threads", params={"limit": example.PAGE_LIMIT + 1}), 422)
    assert too_many["field"] == "query.limit"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "k", "agent": {"name": "", "system_prompt": "p"}}, "body.agent.name"),
        ({"key": "k", "agent": {"name": " \u3000", "system_prompt": "p"}}, "body.agent.name"),
        ({"key": "k", "agent": {"name": "n", "system_prompt": "a\x00b"}}, "body.agent.system_prompt"),
        ({"key": "k", "agent": {"name": "x" * 256, "system_prompt": "p"}}, "body.agent.name"),
        ({"key": " k", "agent": {"name": "n", "system_prompt": "p"}}, "body.key"),
        ({"key": "a/b", "agent": {"name": "n", "system_prompt": "p"}}, "body.key"),
        ({"key": "..", "agent": {"name": "n", "system_prompt": "p"}}, "body.key"),
        (
            {"key": "k", "agent": {"name": "n", "system_prompt": "p"}, "metadata": {"a\x00": 1}},
            "body.metadata",
        ),
        ({"key": "k", "agent": {"name": "n", "system_prompt": "p"}, "extra": 1}, "body.extra"),
    ],
)
def test_bad_requests_are_one_problem_body_and_write_nothing(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    refused = problem(client.post("/threads", json=body), 422)
    assert refused["field"].startswith(field), refused
    assert refused["type"] == "urn:immagent:error:RequestValidationError" and refused["errors"]
    assert client.get("/threads").json()["items"] == []


def test_library_errors_become_problem_statuses(client: TestClient, scripted_model: ScriptedModel) -> None:
    problem(client.get(f"/agents/{UUID(int=7)}"), 404)
    problem(client.get("/threads/nope/log"), 404)
    problem(client.post("/threads/nope/messages", json={"text": "hi", "position": 0}), 404)
    problem(client.get("/agents/not-a-uuid"), 422)
    problem(client.post("/threads", content=b"\xff", headers={"content-type": "application/json"}), 400)
    wrong_method = client.delete("/threads")
    problem(wrong_method, 405)
    assert set(wrong_method.headers["allow"].split(", ")) == {"GET", "POST"}  # both routes of the path

    create(client, "t", scripted_model.model)
    scripted_model.fail(400)
    failed = problem(client.post("/threads/t/messages", json={"text": "hi", "position": 0}), 502)
    assert failed["type"] == "urn:immagent:error:LLMError"
    assert [m["position"] for m in client.get("/threads/t/log").json()] == [0]  # nothing moved


@pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)
def test_an_unmigrated_database_answers_503_with_the_fix(fresh_db_url: str) -> None:
    with TestClient(example.create_app(fresh_db_url)) as client:
        response = client.get("/threads/t")
    assert "immagent db upgrade" in problem(response, 503)["detail"]


def test_the_openapi_document_declares_problems_and_immagent_views(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    assert "HTTPValidationError" not in components  # FastAPI's own 422 body is never answered
    assert set(Thread.model_json_schema(mode="serialization")["properties"]) == set(
        components["Thread"]["properties"]
    )
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert {"422", "503"} <= set(responses), (method, path)
            for status, response in responses.items():
                if int(status) >= 400:
                    assert response["content"] == {"application/problem+json": {"schema": problem_ref}}
    created = schema["paths"]["/threads"]["post"]["responses"]
    assert set(created) == {"201", "400", "404", "409", "422", "503"}
    assert created["201"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Thread"}
    name = components["AgentSpec"]["properties"]["name"]
    assert (name["maxLength"], name["pattern"]) == (limits.NAME_MAX_LENGTH, limits.TEXT_PATTERN)


async def test_two_writers_racing_on_one_position_get_one_201_and_one_409(
    db_url: str, scripted_model: ScriptedModel
) -> None:
    """Both pass the position check, both call the model; the database lets one move the thread, and the
    other's turn writes nothing and answers 409 with the winner's head."""
    app = example.create_app(db_url)
    scripted_model.reply("first", delay=1.0).reply("second", delay=1.0)  # both are past the check
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client,
    ):
        body = {"key": "t", "agent": {"name": "n", "system_prompt": "p", "model": scripted_model.model}}
        assert (await client.post("/threads", json=body)).status_code == 201
        turn = {"text": "hi", "position": 0}
        answers = await asyncio.gather(*(client.post("/threads/t/messages", json=turn) for _ in range(2)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [201, 409], [a.text for a in answers]
        won = next(a for a in answers if a.status_code == 201).json()["thread"]
        lost = problem(next(a for a in answers if a.status_code == 409), 409)
        assert lost["current"] == won and len(scripted_model.requests) == 2
        log = (await client.get("/threads/t/log")).json()
        assert [m["position"] for m in log] == [0, 1]
    async with await Store.connect(db_url) as store:
        stats = await store.stats()
    assert (stats["agents"], stats["messages"]) == (2, 2)  # the root and the winner's turn: no more
