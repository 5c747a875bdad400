"""Load: 500 concurrent turns across 50 agents on PostgreSQL and MySQL/MariaDB with a pool of 5 connections.

Every turn is launched at once (asyncio.gather): each of the 50 agents gets 10 turns, spread over three
starting points of its lineage (the root, its child and its grandchild), so siblings race each other
and lineages branch. Then, from a fresh store: none lost, none duplicated, every lineage consistent.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from uuid import UUID

from sqlalchemy import select

from immagent import PersistentAgent, Store
from immagent._orm import AgentRow, MessageRow
from immagent.testing import ScriptedModel
from tests.reliability._support import Tally
from tests.support.db import UpdateGuard, row_counts

AGENTS = 50
TURNS_PER_AGENT = 10
POOL = 5


async def test_500_concurrent_turns_on_a_pool_of_5_lose_nothing_and_duplicate_nothing(
    server_url: str, scripted: ScriptedModel, tally: Tally
) -> None:
    guard = UpdateGuard()
    async with await Store.connect(server_url, min_size=POOL, max_size=POOL) as store:
        guard.watch(store.engine)
        starts: list[list[PersistentAgent]] = []
        for a in range(AGENTS):  # setup (not counted): root -> child -> grandchild per agent
            root = await store.create_agent(name=f"load {a}", system_prompt="p", model=scripted.model)
            child = await root.advance(f"setup {a} 1")
            starts.append([root, child, await child.advance(f"setup {a} 2")])
        before = await row_counts(store.engine)

        plan = [
            (starts[a][t % 3], f"agent {a} turn {t}") for a in range(AGENTS) for t in range(TURNS_PER_AGENT)
        ]
        started = time.perf_counter()
        children = await asyncio.gather(*(parent.advance(text) for parent, text in plan))
        elapsed = time.perf_counter() - started
        after = await row_counts(store.engine)
    assert guard.updates == [] and guard.statements > 0

    turns = AGENTS * TURNS_PER_AGENT
    assert after["immagent_agents"] - before["immagent_agents"] == turns
    assert after["immagent_messages"] - before["immagent_messages"] == 2 * turns
    assert after["immagent_texts"] == before["immagent_texts"] == 1
    assert len({c.id for c in children}) == turns

    # Every row, read back independently of the library: histories rebuilt from parent links in Python.
    async with await Store.connect(server_url) as fresh:
        async with fresh.engine.connect() as conn:
            messages = {r.id: r for r in await conn.execute(select(MessageRow.__table__))}
            agents = {r.id: r for r in await conn.execute(select(AgentRow.__table__))}

        def history(head: UUID | None) -> list[tuple[str, str | None]]:
            out = []
            while head is not None:
                out.append((messages[head].role, messages[head].content))
                head = messages[head].parent_id
            return out[::-1]

        user_inputs = Counter(m.content for m in messages.values() if m.role == "user")
        for (parent, text), child in zip(plan, children, strict=True):
            row = agents[child.id]
            assert user_inputs[text] == 1, text  # stored once: none lost, none duplicated
            assert row.parent_id == parent.id and parent.id in agents
            assert row.root_id == parent.root_id
            assert history(row.head_id) == [
                *history(parent.head_id),
                ("user", text),
                ("assistant", f"echo: {text}"),
            ]
            assert messages[messages[row.head_id].parent_id].parent_id == parent.head_id

        # and through the library, for one turn of each agent (fresh store: every read hits the database)
        async def check(parent: PersistentAgent, child: PersistentAgent) -> None:
            loaded = await fresh.load_agent(child.id)
            assert [(m.role, m.content) for m in await loaded.messages()] == history(child.head_id)
            assert [a.id for a in await loaded.lineage()] == [*lineage_of(parent.id), child.id]

        def lineage_of(agent_id: UUID | None) -> list[UUID]:
            out = []
            while agent_id is not None and agent_id in agents:
                out.append(agent_id)
                agent_id = agents[agent_id].parent_id
            return out[::-1]

        sample = range(TURNS_PER_AGENT - 1, len(plan), TURNS_PER_AGENT)
        await asyncio.gather(*(check(plan[i][0], children[i]) for i in sample))

    tally.add("turns under load", turns)
    tally.add("rows lost under load", 0)  # reached only when every count and lineage above matched
    tally.add("load seconds (500 turns, pool 5)", round(elapsed))
    print(f"\n500 concurrent turns on a pool of {POOL}: {elapsed:.2f} s")
