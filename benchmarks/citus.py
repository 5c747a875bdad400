"""One row of figures for Citus: a turn's persist cost and a cold load, on a three-node Citus cluster
(coordinator + two workers, tables distributed by ``immagent db distribute``) against one PostgreSQL.

    python -m benchmarks.citus [--pg URL] [--citus URL] [--rounds N]

Without URLs it makes a fresh database on the PostgreSQL at 127.0.0.1:5432 and one on the cluster that
tests/support/citus.py finds or starts (``$IMMAGENT_TEST_CITUS_URL``, else the shared cluster script), and
drops both afterwards. Measured, median of ``--rounds`` (interleaved: each round runs every measure on both):

- ``persist``: the store's write of one turn (``_turns.commit``: two messages and the new state, one
  transaction) after a history of 100 messages; on Citus two router INSERTs on one shard;
- ``load by id``: ``load_agent(id)`` with a cold cache; on Citus it asks every shard (the id names no tree);
- ``history``: the cold read of a 1,000-message history (the recursive walk); on Citus one shard;
- ``turn``: ``advance()`` with the scripted model (the whole turn; its history cached).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
from typing import Any

import asyncpg
from sqlalchemy import text

from benchmarks._support import MODEL_NAME, agent_with_history, median, ms, table, timed, turn_messages
from immagent._store import Store, _turns
from immagent.testing import ScriptedModel
from tests.support.citus import find_citus

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _fresh_pg() -> tuple[str, str]:
    name = f"immagent_bench_citus_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", name


async def _drop_pg(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _prepared(url: str, distribute: bool) -> tuple[Store, Any, Any]:
    store = await Store.connect(url)
    await store.migrate()
    if distribute:
        await store.distribute()
    long = await agent_with_history(store, 1000, "cold-history")
    base = await agent_with_history(store, 100, "persist")
    async with store.engine.begin() as conn:  # statistics as autovacuum would have them
        await conn.execute(text("ANALYZE immagent_agents, immagent_messages"))
    return store, long, base


async def _round(store: Store, long: Any, base: Any, i: int) -> dict[str, float]:
    history = await base.messages()
    new = turn_messages(history[-1], 10_000 + i)
    persist, _ = await timed(lambda: _turns.commit(store, base, history, new, None))
    store.clear_cache()
    load, state = await timed(lambda: store.load_agent(long.id))
    walk, messages = await timed(state.messages)
    assert len(messages) == 1000
    fresh = await store.load_agent(base.id)
    await fresh.messages()
    turn, _ = await timed(lambda: fresh.advance(f"turn {i}"))
    return {"persist": persist, "load": load, "history": walk, "turn": turn}


async def run(pg_url: str | None, citus_url: str | None, rounds: int) -> str:
    dropped: list[Any] = []
    cluster = None
    if pg_url is None:
        pg_url, name = await _fresh_pg()
        dropped.append(lambda: _drop_pg(name))
    if citus_url is None:
        cluster, line = find_citus()
        if cluster is None:
            raise SystemExit(line)
        citus_url = await asyncio.to_thread(cluster.create_database, "immagent_bench")
    model = ScriptedModel(MODEL_NAME.split("/", 1)[1]).install()
    stores: list[Store] = []
    try:
        setups = {"PostgreSQL": await _prepared(pg_url, False), "Citus": await _prepared(citus_url, True)}
        stores = [s for s, _, _ in setups.values()]
        samples: dict[str, dict[str, list[float]]] = {k: {} for k in setups}
        for i in range(rounds):
            for where, (store, long, base) in setups.items():
                for what, seconds in (await _round(store, long, base, i)).items():
                    samples[where].setdefault(what, []).append(seconds)
        rows = [
            [where, *(ms(median(samples[where][w])) for w in ("persist", "load", "history", "turn"))]
            for where in setups
        ]
        return table(
            "Citus (3 nodes on this machine) vs one PostgreSQL",
            ["database", "persist ms", "load by id ms", "history 1,000 ms", "turn ms"],
            rows,
            [f"Median of {rounds} interleaved rounds; cold cache for the loads."],
        )
    finally:
        model.uninstall()
        for store in stores:
            await store.close()
        if cluster is not None:
            await asyncio.to_thread(cluster.drop_database, citus_url)
        for drop in dropped:
            await drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=None, help="a PostgreSQL URL (default: a fresh database at :5432)")
    parser.add_argument("--citus", default=None, help="a Citus coordinator URL (default: a fresh database)")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    print(asyncio.run(run(args.pg, args.citus, args.rounds)))


if __name__ == "__main__":
    main()
