"""Crashes: a process running turns is killed with SIGKILL at random points, 30 times per backend.

A pre-loaded worker process (``_crash_worker``) forks a fresh child for each kill, so LiteLLM is imported
once, not 60 times. After every kill the database holds whole turns only (each state one turn below its
parent, no message without its state), SQLite's integrity and foreign-key checks pass, no committed turn
is missing, and the next turn succeeds at once; at the end every state's history loads.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from immagent import Store
from immagent.testing import ScriptedModel
from tests.reliability._support import Tally, open_transactions

ROOT = Path(__file__).resolve().parents[2]
KILLS = 30


class Worker:
    """The pre-loaded process that forks the children to kill."""

    def __init__(self) -> None:
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability._crash_worker"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.ask(None) == "ready"

    def ask(self, command: str | None) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(30)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    started = Worker()
    try:
        yield started
    finally:
        started.close()


def _read(progress: Path) -> bytes:
    return progress.read_bytes() if progress.exists() else b""


async def _first_turn(progress: Path) -> None:
    """Wait until the child has finished one turn (it is running, past its start-up)."""
    for _ in range(3000):
        if b"t" in _read(progress):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the child ran no turn within 30 s")


def _landed(steps: bytes) -> str:
    """Where the kill landed, from the child's last progress byte."""
    last = steps[-1:]
    if last in (b"i", b"c"):
        return "inside the write transaction"
    return "outside the write transaction (model call, reads)"


async def _whole_turns_only(url: str) -> int:
    """Check the raw rows; return how many turns the killed children committed."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                assert (await conn.exec_driver_sql("PRAGMA integrity_check")).scalar_one() == "ok"
                assert (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all() == []
            agents = (await conn.execute(text("SELECT id, parent_id, head_id FROM immagent_agents"))).all()
            messages = {
                row.id: row
                for row in await conn.execute(
                    text("SELECT id, parent_id, depth, role, content FROM immagent_messages")
                )
            }
    finally:
        await engine.dispose()
    heads = {_id(a.head_id) for a in agents if a.head_id is not None}
    by_id = {_id(a.id): a for a in agents}
    ids = {_id(m) for m in messages}
    parents = {_id(m.parent_id) for m in messages.values() if m.parent_id is not None}
    assert heads <= ids and ids == heads | parents, "a message without its state: a partial turn"
    by_message = {_id(k): v for k, v in messages.items()}
    for agent in agents:
        if agent.parent_id is None or agent.head_id is None:
            continue
        parent = by_id[_id(agent.parent_id)]
        head = by_message[_id(agent.head_id)]
        user = by_message[_id(head.parent_id)]
        assert (head.role, user.role) == ("assistant", "user")
        assert _optional_id(user.parent_id) == _optional_id(parent.head_id), "not one turn below its parent"
    return sum(1 for m in messages.values() if m.role == "user" and str(m.content).startswith("turn "))


def _id(value: Any) -> UUID:
    """SQLite's raw rows hold ids as hex text, PostgreSQL's as UUIDs."""
    return value if isinstance(value, UUID) else UUID(str(value))


def _optional_id(value: Any) -> UUID | None:
    return None if value is None else _id(value)


async def test_a_process_killed_at_random_points_of_its_turns_leaves_whole_turns_only(
    db_url: str, backend: str, worker: Worker, tmp_path: Path, tally: Tally
) -> None:
    rng = random.Random(f"crash-{backend}")
    model = ScriptedModel("crash").install()
    landed: Counter[str] = Counter()
    reported = 0  # turns the children saw return: each one must be in the database
    in_commit = 0  # kills during a COMMIT: that turn may or may not be there
    async with await Store.connect(db_url) as store:
        await store.create_agent(name="crash", system_prompt="p", model=model.model)
        for k in range(KILLS):
            progress = tmp_path / f"progress-{k}"
            answer = worker.ask(f"run {db_url} {progress}")
            pid = int(answer.removeprefix("pid "))
            await _first_turn(progress)  # then a random point of the turns that follow
            await asyncio.sleep(rng.uniform(0.0, 0.25))
            os.kill(pid, signal.SIGKILL)
            assert worker.ask(f"wait {pid}") == f"exit {pid} signal {int(signal.SIGKILL)}"
            steps = _read(progress)
            landed[_landed(steps)] += 1
            reported += steps.count(b"t")
            in_commit += steps.endswith(b"c")

            assert await open_transactions(store.engine) == 0  # the dead process holds no lock
            committed = await _whole_turns_only(db_url)
            assert reported <= committed <= reported + in_commit, "a committed turn is missing"
            store.clear_cache()
            newest = (await store.list_agents(limit=1))[0]
            after = await newest.advance(f"after kill {k}")  # the next turn succeeds at once
            assert after.parent_id == newest.id
            tally.add("crash kills (SIGKILL) injected")
            tally.add("crash kills survived")
        store.clear_cache()
        states = await store.list_agents(limit=100_000)
        for state in states:  # every remaining state's history loads, one turn below its parent's
            history = await state.messages()
            if state.parent_id is not None:
                parent = await store.load_agent(state.parent_id)
                assert history[:-2] == await parent.messages()
    model.uninstall()
    assert landed["inside the write transaction"] > 0, landed
    tally.add("crash kills inside the write transaction", landed["inside the write transaction"])
    tally.add("turns committed by the killed processes", committed)
    tally.add("states whose history loaded after the crashes", len(states))
