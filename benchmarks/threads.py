"""Figure 7: threads and keyset pages.

- ``thread.advance`` beside ``agent.advance`` on the same warm conversation, with an instant scripted
  model: statements per turn (target: at most one more) and time per turn (target: within 20%).
- Keyset paging over many agents (100,000 in the full run, inserted in bulk): page 1 against a deep page
  (page 1,000 of 100 rows) through ``after=``, and the same deep page through ``offset=`` for scale
  (target: the deep keyset page within 20% of page 1).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select

from benchmarks._support import (
    MODEL_NAME,
    SYSTEM_PROMPT,
    Backend,
    Settings,
    median,
    migrated_store,
    ms,
    timed,
    user_text,
    verdict,
)
from immagent._ids import uuid7
from immagent._messages import utcnow
from immagent._orm import AGENTS
from immagent._store._paging import encode_cursor
from immagent.testing import ScriptedModel
from tests.support.db import counting

THREAD_RATIO_TARGET = 1.2
PAGE_RATIO_TARGET = 1.2


def _sizes(settings: Settings) -> tuple[int, int, int, int]:
    """(turns per kind, agents listed, page size, deep page number)."""
    return (4, 2_000, 20, 50) if settings.quick else (200, 100_000, 100, 1_000)


async def _turns(backend: Backend, settings: Settings) -> dict[str, Any]:
    turns = _sizes(settings)[0]
    model = ScriptedModel("bench-threads").install()
    store = await migrated_store(backend.url)
    try:
        agent = await store.create_agent(name="plain", system_prompt=SYSTEM_PROMPT, model=model.model)
        thread = await store.create_thread(
            "bench", await store.create_agent(name="thread", system_prompt=SYSTEM_PROMPT, model=model.model)
        )
        agent = await agent.advance(user_text(0))  # warm both paths (first call, prepared statements)
        thread = await thread.advance(user_text(0))
        plain: list[float] = []
        threaded: list[float] = []
        counts: dict[str, list[int]] = {"plain": [], "thread": []}
        for i in range(1, turns + 1):  # alternate, so drift in the machine hits both alike
            with counting(store.engine) as counter:
                seconds, agent = await timed(lambda agent=agent, i=i: agent.advance(user_text(i)))
            plain.append(seconds)
            counts["plain"].append(counter.count)
            with counting(store.engine) as counter:
                seconds, thread = await timed(lambda thread=thread, i=i: thread.advance(user_text(i)))
            threaded.append(seconds)
            counts["thread"].append(counter.count)
        plain_ms, thread_ms = ms(median(plain)), ms(median(threaded))
        statements = {k: max(v) for k, v in counts.items()}
        ratio = thread_ms / plain_ms
        ok = statements["thread"] <= statements["plain"] + 1 and ratio <= THREAD_RATIO_TARGET
        return {
            "turns": turns,
            "plain_ms": plain_ms,
            "thread_ms": thread_ms,
            "ratio": ratio,
            "statements": statements,
            "pass": ok,
        }
    finally:
        model.uninstall()
        await store.close()


async def _paging(backend: Backend, settings: Settings) -> dict[str, Any]:
    _, total, size, deep = _sizes(settings)
    store = await migrated_store(backend.url)
    try:
        root = await store.create_agent(name="page", system_prompt=SYSTEM_PROMPT, model=MODEL_NAME)
        rows = [
            {
                "id": (state := uuid7()),
                "root_id": state,
                "parent_id": None,
                "name": f"agent {i}",
                "system_prompt_id": root.system_prompt_id,
                "head_id": None,
                "model": MODEL_NAME,
                "metadata": {},
                "model_settings": {},
                "created_at": utcnow(),
            }
            for i in range(total - 1)
        ]
        async with store.engine.begin() as conn:
            for start in range(0, len(rows), 5_000):
                await conn.execute(insert(AGENTS), rows[start : start + 5_000])
        skipped = (deep - 1) * size
        async with store.engine.connect() as conn:  # the row before the deep page: its cursor
            before = (
                await conn.execute(
                    select(AGENTS.c.created_at, AGENTS.c.id)
                    .order_by(AGENTS.c.created_at.desc(), AGENTS.c.id.desc())
                    .offset(skipped - 1)
                    .limit(1)
                )
            ).one()
        cursor = encode_cursor("agents", before.created_at, str(before.id))
        repeats = 3 if settings.quick else 15
        first: list[float] = []
        keyset: list[float] = []
        offset: list[float] = []
        for _ in range(repeats):
            store.clear_cache()
            first.append((await timed(lambda: store.list_agents(limit=size)))[0])
            store.clear_cache()
            seconds, page = await timed(lambda: store.list_agents(limit=size, after=cursor))
            keyset.append(seconds)
            store.clear_cache()
            offset_seconds, by_offset = await timed(lambda: store.list_agents(limit=size, offset=skipped))
            offset.append(offset_seconds)
            assert [a.id for a in page] == [a.id for a in by_offset], "keyset and offset pages differ"
        first_ms, keyset_ms, offset_ms = ms(median(first)), ms(median(keyset)), ms(median(offset))
        ratio = keyset_ms / first_ms
        return {
            "agents": total,
            "page_size": size,
            "deep_page": deep,
            "first_ms": first_ms,
            "keyset_ms": keyset_ms,
            "offset_ms": offset_ms,
            "ratio": ratio,
            "repeats": repeats,
            "pass": ratio <= PAGE_RATIO_TARGET,
        }
    finally:
        await store.close()


async def run(backend: Backend, settings: Settings) -> dict[str, Any]:
    turns = await _turns(backend, settings)
    paging = await _paging(backend, settings)
    return {
        "target": (
            f"thread turn <= 1 more statement and <= {THREAD_RATIO_TARGET}x a plain turn; "
            f"deep keyset page <= {PAGE_RATIO_TARGET}x page 1"
        ),
        "turns": turns,
        "paging": paging,
        "pass": turns["pass"] and paging["pass"],
    }


def render(backend: str, figure: dict[str, Any]) -> tuple[str, list[str], list[list[Any]], list[str]]:
    t, p = figure["turns"], figure["paging"]
    rows = [
        [
            "agent.advance (warm)",
            t["statements"]["plain"],
            t["plain_ms"],
            "1.00x",
            "",
        ],
        [
            "thread.advance (warm)",
            t["statements"]["thread"],
            t["thread_ms"],
            f"{t['ratio']:.2f}x",
            verdict(t["pass"]),
        ],
        [f"list_agents page 1 of {p['agents']:,}", 1, p["first_ms"], "1.00x", ""],
        [
            f"page {p['deep_page']:,} by after= (keyset)",
            1,
            p["keyset_ms"],
            f"{p['ratio']:.2f}x",
            verdict(p["pass"]),
        ],
        [
            f"page {p['deep_page']:,} by offset= (slow path)",
            1,
            p["offset_ms"],
            f"{p['offset_ms'] / p['first_ms']:.2f}x",
            "",
        ],
    ]
    return (
        f"7. Threads and keyset pages, {backend}",
        ["operation", "statements", "ms (median)", "vs first row", "target"],
        rows,
        [
            f"turns: medians of {t['turns']} alternating turns each, instant scripted model;",
            f"pages of {p['page_size']} rows: medians of {p['repeats']} reads each, cold cache.",
        ],
    )
