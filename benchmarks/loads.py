"""Figure 3: a cold load (empty cache) of a long history, a long lineage and a listing, against the same
query's rows through SQLAlchemy Core, measured in the same run.

Each load starts from ``store.clear_cache()`` and a freshly loaded view, then times ``messages()``
(``lineage()``, ``list_agents()``) alone and counts the statements it runs. Beside it, interleaved, the
store's own statement (the same SQL with the same column types, from ``immagent._store._agents``) runs
through a plain Core connection (autocommit on asyncpg, as the store's reads) and fetches its rows,
building no view: the floor a cold load can reach.
The ratio of the two is what building views costs; the target is at most 1.3x. For scale, the
recursive query is also run as untyped text SQL (no type processing: on SQLite, UUIDs and times stay
strings).
"""

from __future__ import annotations

from typing import Any

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
from immagent._store import _agents
from tests.support.db import counting

RATIO_TARGET = 1.3
HISTORY_SQL = """
WITH RECURSIVE h AS (
    SELECT * FROM immagent_messages WHERE id = :key AND root_id = :root
    UNION ALL
    SELECT m.* FROM immagent_messages m JOIN h ON m.id = h.parent_id AND m.root_id = h.root_id
    WHERE m.root_id = :root
) SELECT * FROM h ORDER BY depth
"""
LINEAGE_SQL = """
WITH RECURSIVE l AS (
    SELECT a.*, 0 AS generation FROM immagent_agents a WHERE id = :key AND root_id = :root
    UNION ALL
    SELECT p.*, l.generation + 1 FROM immagent_agents p JOIN l ON p.id = l.parent_id AND p.root_id = l.root_id
    WHERE p.root_id = :root
) SELECT * FROM l ORDER BY generation DESC
"""


async def _core_rows(store: Any, statement: Any, params: dict[str, Any] | None = None) -> tuple[float, int]:
    """A statement through a plain Core connection, with the options the store's reads use (autocommit
    on asyncpg, so the same round trips): rows fetched, no view built."""
    engine = store.engine
    if engine.dialect.driver == "asyncpg":
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        seconds, result = await timed(lambda: conn.execute(statement, params or {}))
        rows, fetched = await timed(lambda: _all(result))
        return seconds + rows, len(fetched)


async def _all(result: Any) -> list[Any]:
    return list(result.all())


async def run(backend: Backend, settings: Settings) -> dict[str, Any]:
    store = await migrated_store(backend.url)
    try:
        long = await agent_with_history(store, settings.history, "cold-history")
        last = await lineage_of(store, settings.lineage, "cold-lineage")
        if backend.is_pg:  # statistics as autovacuum would have them: bulk inserts leave none
            async with store.engine.begin() as conn:
                await conn.execute(text("ANALYZE immagent_agents, immagent_messages"))
        rows = []
        for what, size in (
            ("history", settings.history),
            ("lineage", settings.lineage),
            ("listing", settings.lineage),
        ):
            times: list[float] = []
            core_times: list[float] = []
            text_times: list[float] = []
            counts: list[int] = []
            got = 0
            for _ in range(settings.loads):
                store.clear_cache()
                agent = await store.load_agent(long.id if what == "history" else last)
                assert agent.head_id is not None or what != "history"
                if what == "history":
                    work: Any = agent.messages
                    statement, params = _agents.HISTORY, {"head_id": agent.head_id, "root_id": agent.root_id}
                    sql, key = HISTORY_SQL, agent.head_id
                elif what == "lineage":
                    work = agent.lineage
                    statement, params = _agents.LINEAGE, {"agent_id": agent.id, "root_id": agent.root_id}
                    sql, key = LINEAGE_SQL, agent.id
                else:
                    work = lambda size=size: store.list_agents(limit=size)  # noqa: E731
                    # list_agents(limit=n) reads n + 1 rows (the extra one tells whether a page follows)
                    params = {"limit": size + 1, "offset": 0, "tenant": store.tenant_name}
                    statement = _agents.LISTING
                    sql, key = None, None
                with counting(store.engine) as counter:
                    seconds, result = await timed(work)
                times.append(seconds)
                counts.append(counter.count)
                got = len(result)
                core_seconds, core_rows = await _core_rows(store, statement, params)
                assert core_rows in (got, got + 1), (what, core_rows, got)
                core_times.append(core_seconds)
                if sql is not None:

                    def db(value: Any) -> Any:
                        return value if backend.is_pg else value.hex

                    params = {"key": db(key), "root": db(agent.root_id)}
                    text_seconds, text_rows = await _core_rows(store, text(sql), params)
                    assert text_rows == got, (what, text_rows, got)
                    text_times.append(text_seconds)
            statements = max(counts)
            ratio = median(times) / median(core_times)
            noun = "messages" if what == "history" else "states"
            rows.append(
                {
                    "what": f"{what} of {size:,} {noun}",
                    "rows": got,
                    "cold_ms": ms(median(times)),
                    "core_rows_ms": ms(median(core_times)),
                    "text_sql_ms": ms(median(text_times)) if text_times else float("nan"),
                    "ratio": ratio,
                    "statements": statements,
                    "pass": statements == 1 and got == size and ratio <= RATIO_TARGET,
                }
            )
        return {
            "target": f"one statement each, cold load <= {RATIO_TARGET}x the same statement's Core rows",
            "rows": rows,
            "loads": settings.loads,
            "pass": all(r["pass"] for r in rows),
        }
    finally:
        await store.close()


def render(backend: str, figure: dict[str, Any]) -> tuple[str, list[str], list[list[Any]], list[str]]:
    rows = [
        [
            r["what"],
            r["rows"],
            r["cold_ms"],
            r["core_rows_ms"],
            f"{r['ratio']:.2f}x",
            r["text_sql_ms"],
            r["statements"],
            verdict(r["pass"]),
        ]
        for r in figure["rows"]
    ]
    return (
        f"3. Cold load, {backend}",
        [
            "load",
            "rows",
            "cold load ms",
            "same statement, Core rows ms",
            "cold/Core",
            "text SQL, untyped rows ms",
            "statements",
            f"<= {RATIO_TARGET}x, 1 statement",
        ],
        rows,
        [
            f"medians of {figure['loads']} loads, each after store.clear_cache(), "
            "interleaved with the Core runs."
        ],
    )
