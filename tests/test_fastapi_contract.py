"""schemathesis, with every check, against examples/fastapi_app.py in process (ASGI), on SQLite and
PostgreSQL, with the offline scripted model: the OpenAPI document is the contract, and any finding fails.

The run is bounded (a fixed seed, a few examples per operation, every phase: examples, coverage, fuzzing
and the stateful links between operations), so the whole file takes seconds. Its settings live in
examples/schemathesis.toml, which the schemathesis CLI reads too; two expectations are set there on
purpose, and docs/fastapi.md explains them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema

from immagent.testing import ScriptedModel
from tests.test_fastapi_example import example

#: The run's settings, shared with the schemathesis CLI (docs/fastapi.md): seed, examples, expectations.
CONFIG = Path(__file__).resolve().parents[1] / "examples" / "schemathesis.toml"


@dataclass
class Run:
    """What one schemathesis run did and found."""

    operations: set[str] = field(default_factory=set)
    cases: int = 0
    seconds: float = 0.0
    findings: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


def run_schemathesis(app: FastAPI) -> Run:
    """Every phase and check of schemathesis against ``app`` (whose lifespan the caller runs)."""
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", app, config=SchemathesisConfig.from_str(CONFIG.read_text())
    )
    run = Run()
    started = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            if event.recorder.label != "Stateful tests":
                run.operations.add(event.recorder.label)
            run.cases += len(event.recorder.cases)
        recorder = getattr(event, "recorder", None)
        for checks in recorder.checks.values() if recorder is not None else ():
            for check in checks:
                if check.failure_info is not None:
                    failure = check.failure_info.failure
                    run.findings.add(
                        f"{recorder.label}: {check.name}: {failure.title}: {failure.message}\n"
                        f"    {check.failure_info.code_sample}"
                    )
        if isinstance(event, events.NonFatalError | events.FatalError):
            run.errors.append(repr(event))
    run.seconds = time.monotonic() - started
    return run


@pytest.fixture
def app(db_url: str, scripted_model: ScriptedModel, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    """The example on a migrated, empty database, its lifespan running, the offline model by default."""
    monkeypatch.setenv("IMMAGENT_MODEL", scripted_model.model)
    served = example.create_app(db_url)
    with TestClient(served):
        yield served


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_schemathesis_finds_nothing(app: FastAPI, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_schemathesis(app)
    paths = app.openapi()["paths"]
    declared = {f"{method.upper()} {path}" for path, item in paths.items() for method in item}
    assert run.operations == declared, "every operation of the document was exercised"
    assert not run.errors, "\n".join(run.errors)
    assert not run.findings, f"{len(run.findings)} findings:\n" + "\n".join(sorted(run.findings))
    with capsys.disabled():
        print(
            f"\nschemathesis {schemathesis.__version__}: {len(run.operations)} operations, "
            f"{run.cases} cases, {run.seconds:.1f} s, 0 findings"
        )


def test_the_run_reports_what_breaks_a_contract() -> None:
    """The harness itself can fail: an undeclared status is a finding, an exception an error."""
    broken = FastAPI()

    @broken.get("/bug")
    async def bug() -> dict[str, int]:
        raise RuntimeError("a bug")  # 500

    @broken.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        if item_id > 10:
            raise HTTPException(404)  # not declared
        return {"id": item_id}

    with TestClient(broken):
        run = run_schemathesis(broken)
    checks = {finding.split(": ")[1] for finding in run.findings}
    assert "status_code_conformance" in checks, run.findings
    # In process, an exception reaches the engine itself: an error of the run, which fails it as well.
    assert any("RuntimeError('a bug')" in error for error in run.errors), run.errors
