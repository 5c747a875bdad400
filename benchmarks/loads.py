"""Figure 3: a cold load (empty cache) of a long history and of a long lineage: time and statements.

Each load starts from ``store.clear_cache()`` and a freshly loaded view, then times ``messages()`` (or
``lineage()``) alone and counts the statements it runs. For scale, the same recursive query is also
timed as plain SQL through a Core
connection (rows fetched, no views built), so the cost of building views is visible.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import text

from benchmarks._support import (
    Backend,
    Settings,
    agent_with_history,
    lineage_of,
    median,
    migrated_store,
    ms,
    timed,
    verdict,
)
from tests.support.db import counting

HISTORY_SQL = """
WITH RECURSIVE h AS (
    SELECT * FROM immagent_messages WHERE id = :head
    UNION ALL
    SELECT m.* FROM immagent_messages m JOIN h ON m.id = h.parent_id
) SELECT * FROM h ORDER BY depth
"""
LINEAGE_SQL = """
WITH RECURSIVE l AS (
    SELECT a.*, 0 AS generation FROM immagent_agents a WHERE id = :id
    UNION ALL
    SELECT p.*, l.generation + 1 FROM immagent_agents p JOIN l ON p.id = l.parent_id
) SELECT * FROM l ORDER BY generation DESC
"""


async def _raw(store: Any, sql: str, key: UUID, backend: Backend) -> tuple[float, int]:
    """The recursive query alone through a plain connection (driver rows, no views)."""
    value: Any = key.hex if not backend.is_pg else key  # CHAR(32) on SQLite and MySQL
    async with store.engine.connect() as conn:
        seconds, result = await timed(lambda: conn.execute(text(sql), {"head": value, "id": value}))
        return seconds, len(result.all())


async def run(backend: Backend, settings: Settings) -> dict[str, Any]:
    store = await migrated_store(backend.url)
    try:
        long = await agent_with_history(store, settings.history, "cold-history")
        last = await lineage_of(store, settings.lineage, "cold-lineage")
        rows = []
        for what, size in (("history", settings.history), ("lineage", settings.lineage)):
            times: list[float] = []
            raw_times: list[float] = []
            counts: list[int] = []
            got = 0
            for _ in range(settings.loads):
                store.clear_cache()
                agent = await store.load_agent(long.id if what == "history" else last)
                with counting(store.engine) as counter:
                    seconds, result = await timed(agent.messages if what == "history" else agent.lineage)
                times.append(seconds)
                counts.append(counter.count)
                got = len(result)
                assert agent.head_id is not None or what == "lineage"
                raw_seconds, raw_rows = await _raw(
                    store,
                    HISTORY_SQL if what == "history" else LINEAGE_SQL,
                    agent.head_id if what == "history" else agent.id,  # type: ignore[arg-type]
                    backend,
                )
                assert raw_rows == got, (what, raw_rows, got)
                raw_times.append(raw_seconds)
            statements = max(counts)
            rows.append(
                {
                    "what": f"{what} of {size:,} {'messages' if what == 'history' else 'states'}",
                    "rows": got,
                    "cold_ms": ms(median(times)),
                    "raw_query_ms": ms(median(raw_times)),
                    "statements": statements,
                    "pass": statements == 1 and got == size,
                }
            )
        return {
            "target": "one statement each",
            "rows": rows,
            "loads": settings.loads,
            "pass": all(r["pass"] for r in rows),
        }
    finally:
        await store.close()


def render(backend: str, figure: dict[str, Any]) -> tuple[str, list[str], list[list[Any]], list[str]]:
    rows = [
        [r["what"], r["rows"], r["cold_ms"], r["raw_query_ms"], r["statements"], verdict(r["pass"])]
        for r in figure["rows"]
    ]
    return (
        f"3. Cold load, {backend}",
        ["load", "rows", "cold load ms", "same SQL, Core rows ms", "statements", "1 statement"],
        rows,
        [f"medians of {figure['loads']} loads, each after store.clear_cache()."],
    )
