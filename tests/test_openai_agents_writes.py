"""The OpenAI Agents SDK session's writes: bad items refused before anything is written, concurrent
writers on one session id (no item lost, none written twice), and the extra's packaging."""

from __future__ import annotations

import asyncio
import contextlib
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from immagent import Store, ThreadExistsError, ThreadNotFoundError, ValidationError
from immagent.integrations.openai_agents import ImmagentSession
from tests.support.agents_sdk import ITEMS
from tests.support.db import snapshot

REPO = Path(__file__).resolve().parent.parent

BAD_ITEMS: list[tuple[Any, str]] = [
    ({"role": "user", "content": {1, 2}}, "items[1]"),  # a set: not JSON
    ({"role": "user", "content": b"bytes"}, "items[1]"),
    ({"role": "user", "content": "x", "extra": object()}, "items[1]"),
    ({"role": "user", "content": "x", "score": math.nan}, "items[1]"),
    ({"role": "user", "content": "nul \x00 inside"}, "items[1]"),
    ({"role": "user", "content": "lone \ud800 surrogate"}, "items[1]"),
    ({"role": "user", "content": "x", "meta": {1: "int key"}}, "items[1]"),
    ("just text", "items[1]"),
    (["a", "list"], "items[1]"),
    ({"foo": 1}, "items[1]"),
    ({"type": "no_such_item", "id": "x"}, "items[1].type"),
    ({"type": 7}, "items[1].type"),
    ({"type": "function_call", "call_id": "c", "name": 42, "arguments": "{}"}, "items[1].name"),
    ({"type": "function_call", "call_id": "c", "name": "f"}, "items[1].arguments"),
    ({"type": "function_call_output", "call_id": "c"}, "items[1].output"),
    ({"type": "reasoning", "summary": []}, "items[1].id"),
    ({"role": "tool", "content": "x"}, "items[1].role"),
]


@pytest.mark.parametrize(("bad", "field"), BAD_ITEMS, ids=[f for f in map(str, range(len(BAD_ITEMS)))])
async def test_a_bad_item_is_refused_by_name_and_nothing_is_written(
    store: Store, bad: Any, field: str
) -> None:
    session = ImmagentSession("bad-input", store)
    await session.add_items(ITEMS[:2])
    before = await snapshot(store.engine)
    with pytest.raises(ValidationError) as raised:
        await session.add_items([ITEMS[2], bad, ITEMS[3]])
    assert raised.value.field == field, raised.value
    assert await snapshot(store.engine) == before
    assert await session.get_items() == ITEMS[:2]


@pytest.mark.parametrize("items", [None, "text", {"role": "user", "content": "a dict, not a list"}, 42])
async def test_items_that_are_not_a_list_are_refused(store: Store, items: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        await ImmagentSession("not-a-list", store).add_items(items)
    assert raised.value.field == "items"
    assert await snapshot(store.engine) == []


@pytest.mark.parametrize("session_id", ["", "  padded  ", "x" * 256, 7])
async def test_a_session_id_that_cannot_be_a_thread_key_is_refused(store: Store, session_id: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        ImmagentSession(session_id, store)
    assert raised.value.field == "key"


async def test_a_limit_that_is_not_an_integer_is_refused(store: Store) -> None:
    with pytest.raises(ValidationError) as raised:
        await ImmagentSession("limits", store).get_items("3")  # type: ignore[arg-type]
    assert raised.value.field == "limit"


async def test_concurrent_sessions_on_one_id_lose_no_item_and_write_none_twice(db_url: str) -> None:
    writers, batches = 3, 8
    async with contextlib.AsyncExitStack() as stack:  # one store (pool, cache) each, as two processes have
        stores = [await stack.enter_async_context(await Store.connect(db_url)) for _ in range(writers)]
        sessions = [ImmagentSession("busy", s) for s in stores]
        await _race(sessions, writers, batches)


async def _race(sessions: list[ImmagentSession], writers: int, batches: int) -> None:

    async def write(w: int) -> None:
        for b in range(batches):
            batch = [{"role": "user", "content": f"w{w} b{b} #{i}"} for i in range(2)]
            await sessions[w].add_items(batch)

    await asyncio.gather(*(write(w) for w in range(writers)))
    items = await sessions[0].get_items()
    texts = [item["content"] for item in items]
    expected = {f"w{w} b{b} #{i}" for w in range(writers) for b in range(batches) for i in range(2)}
    assert sorted(texts) == sorted(expected)  # every item, each once
    for at in range(0, len(texts), 2):  # each add_items is one state: its items stay together, in order
        assert texts[at].rsplit("#", 1)[0] == texts[at + 1].rsplit("#", 1)[0]
        assert texts[at].endswith("#0")
    for w in range(writers):  # each writer's batches in its own order
        mine = [t for t in texts if t.startswith(f"w{w} ")]
        assert mine == sorted(mine, key=lambda t: (int(t.split()[1][1:]), t))
    thread = await sessions[0].thread()
    assert thread is not None
    assert len(await thread.log()) == 1 + writers * batches  # its creation, then one move per add_items


async def test_concurrent_pops_each_take_a_different_item(db_url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        stores = [await stack.enter_async_context(await Store.connect(db_url)) for _ in range(4)]
        writer = ImmagentSession("pops", stores[0])
        items = [{"role": "user", "content": f"item {n}"} for n in range(6)]
        await writer.add_items(items)
        popped = await asyncio.gather(*(ImmagentSession("pops", s).pop_item() for s in stores))
        assert sorted(p["content"] for p in popped if p) == [f"item {n}" for n in range(2, 6)]
        assert await writer.get_items() == items[:2]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def test_without_the_extra_the_import_error_names_it() -> None:
    code = (
        "import sys; sys.modules['agents'] = None\n"
        "try:\n    import immagent.integrations.openai_agents\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    run = _python(code)
    assert run.returncode == 0, run.stderr
    assert "pip install 'immagent[openai-agents]'" in run.stdout


def test_the_extra_is_declared_and_part_of_dev() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert any(req.startswith("openai-agents>=") and "<" in req for req in extras["openai-agents"])
    assert "immagent[openai-agents]" in extras["dev"]


@pytest.mark.parametrize("at", [-1, 4, 2.5, True, [1]])
async def test_a_branch_at_a_point_the_session_never_had_writes_nothing(store: Store, at: Any) -> None:
    session = ImmagentSession("trunk", store)
    await session.add_items(ITEMS[:3])
    before = await snapshot(store.engine)
    with pytest.raises(ValidationError) as raised:
        await session.branch("limb", at=at)
    assert raised.value.field == "at"
    assert await snapshot(store.engine) == before


async def test_a_branch_onto_a_taken_session_id_leaves_no_stray_state(store: Store) -> None:
    session = ImmagentSession("trunk", store)
    await session.add_items(ITEMS[:3])
    await ImmagentSession("taken", store).add_items([ITEMS[4]])
    before = await snapshot(store.engine)
    with pytest.raises(ThreadExistsError):
        await session.branch("taken", at=1)
    assert await snapshot(store.engine) == before
    assert await ImmagentSession("taken", store).get_items() == [ITEMS[4]]


async def test_a_session_never_written_cannot_be_branched(store: Store) -> None:
    with pytest.raises(ThreadNotFoundError):
        await ImmagentSession("nothing-yet", store).branch("limb")
    assert await snapshot(store.engine) == []
