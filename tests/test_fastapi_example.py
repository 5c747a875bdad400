"""examples/fastapi_app.py through FastAPI's test client, on SQLite and PostgreSQL, with the offline
scripted model: immagent's views are the response models, and their JSON is stable."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from immagent import Message, PersistentAgent
from immagent.testing import ScriptedModel

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fastapi_app.py"


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


def test_create_advance_messages_and_lineage_return_immagent_views(
    client: TestClient, scripted_model: ScriptedModel
) -> None:
    scripted_model.reply("Bonjour !", input_tokens=4, output_tokens=2)
    created = client.post(
        "/agents",
        json={
            "name": "fr",
            "system_prompt": "answer in French",
            "model": scripted_model.model,
            "metadata": {"t": 1},
        },
    )
    assert created.status_code == 201, created.text
    root = created.json()
    assert set(root) == set(PersistentAgent.model_json_schema()["properties"])  # the schema names the payload
    assert (root["name"], root["parent_id"], root["head_id"], root["metadata"]) == (
        "fr",
        None,
        None,
        {"t": 1},
    )

    advanced = client.post(f"/agents/{root['id']}/advance", json={"text": "hello"})
    assert advanced.status_code == 201, advanced.text
    new = advanced.json()
    assert new["parent_id"] == root["id"] and new["id"] != root["id"]

    assert client.get(f"/agents/{new['id']}").json() == new  # the stored state reads back identically
    view = PersistentAgent.model_validate(new)
    assert view.model_dump(mode="json") == new  # stable JSON: a round trip changes nothing

    messages = client.get(f"/agents/{new['id']}/messages").json()
    assert [(m["role"], m["content"], m["output_tokens"]) for m in messages] == [
        ("user", "hello", None),
        ("assistant", "Bonjour !", 2),
    ]
    assert [Message.model_validate(m).model_dump(mode="json") for m in messages] == messages
    assert client.get(f"/agents/{root['id']}/messages").json() == []  # the old state is unchanged

    lineage = client.get(f"/agents/{new['id']}/lineage").json()
    assert [a["id"] for a in lineage] == [root["id"], new["id"]]
    assert lineage[0] == root


def test_the_openapi_schema_documents_immagent_views(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    assert set(PersistentAgent.model_json_schema()["properties"]) == set(
        components["PersistentAgent"]["properties"]
    )
    assert set(Message.model_json_schema()["properties"]) <= set(components["Message"]["properties"])
    created = schema["paths"]["/agents"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert created == {"$ref": "#/components/schemas/PersistentAgent"}
    listed = schema["paths"]["/agents/{agent_id}/messages"]["get"]["responses"]["200"]["content"]
    assert listed["application/json"]["schema"]["items"] == {"$ref": "#/components/schemas/Message"}


def test_library_errors_become_http_statuses(client: TestClient, scripted_model: ScriptedModel) -> None:
    missing = client.get(f"/agents/{UUID(int=7)}")
    assert missing.status_code == 404 and missing.json()["error"] == "AgentNotFoundError"
    empty_name = client.post(
        "/agents", json={"name": "", "system_prompt": "p", "model": scripted_model.model}
    )
    assert empty_name.status_code == 422 and empty_name.json()["error"] == "ValidationError"

    agent = client.post(
        "/agents", json={"name": "a", "system_prompt": "p", "model": scripted_model.model}
    ).json()
    scripted_model.fail(400)
    failed = client.post(f"/agents/{agent['id']}/advance", json={"text": "hi"})
    assert failed.status_code == 502 and failed.json()["error"] == "LLMError"
    assert [a["id"] for a in client.get(f"/agents/{agent['id']}/lineage").json()] == [agent["id"]]


@pytest.mark.parametrize("fresh_db_url", ["sqlite"], indirect=True)
def test_an_unmigrated_database_answers_503_with_the_fix(fresh_db_url: str) -> None:
    with TestClient(example.create_app(fresh_db_url)) as client:
        response = client.get(f"/agents/{UUID(int=7)}")
    assert response.status_code == 503
    assert "immagent db upgrade" in response.json()["detail"]
