"""Figure 4: turns per second with 1, 8 and 64 agents advancing at once on a pool of 5 connections.

Each agent takes the same number of chained turns; the scripted model answers after 0 s or after the
stated latency. With latency L and N agents, the ideal is N / L turns per second: reaching it means no
turn waited for a connection that another turn held while its model was thinking. The run also samples
how many connections were checked out, which must never exceed the pool size.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks._support import SYSTEM_PROMPT, Backend, Settings, median, user_text, verdict
from immagent import Store
from immagent.testing import ScriptedModel, ScriptedReply

POOL_SIZE = 5
TARGET_SHARE = 0.8
ROUNDS = 3


async def _round(store: Store, model: ScriptedModel, agents: int, turns: int, tag: str) -> float:
    states = [
        await store.create_agent(name=f"{tag}-{i}", system_prompt=SYSTEM_PROMPT, model=model.model)
        for i in range(agents)
    ]

    async def converse(state: Any) -> None:
        for turn in range(turns):
            state = await state.advance(user_text(turn))

    started = time.perf_counter()
    await asyncio.gather(*(converse(s) for s in states))
    elapsed = time.perf_counter() - started
    model.requests.clear()
    return agents * turns / elapsed


async def run(backend: Backend, settings: Settings) -> dict[str, Any]:
    store = await Store.connect(backend.url, max_size=POOL_SIZE, min_size=POOL_SIZE)
    await store.migrate()
    rows = []
    peak = 0
    pool: Any = store.engine.sync_engine.pool

    async def sample(stop: asyncio.Event) -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, pool.checkedout())
            await asyncio.sleep(0.002)

    try:
        for latency in settings.latencies:
            name = f"throughput{int(latency * 1000)}"
            model = ScriptedModel(
                name=name, responder=lambda m, d=latency: ScriptedReply(content="ok", delay=d)
            ).install()
            try:
                await _round(store, model, 1, 1, "warm")
                for agents in settings.agents:
                    stop = asyncio.Event()
                    sampler = asyncio.create_task(sample(stop))
                    rates = [
                        await _round(
                            store, model, agents, settings.throughput_turns, f"t{agents}-{latency}-{r}"
                        )
                        for r in range(ROUNDS if not settings.quick else 1)
                    ]
                    stop.set()
                    await sampler
                    rate = median(rates)
                    ideal = agents / latency if latency > 0 else None
                    share = rate / ideal if ideal else None
                    judged = (
                        latency == max(settings.latencies) and agents == max(settings.agents) and latency > 0
                    )
                    rows.append(
                        {
                            "agents": agents,
                            "latency_s": latency,
                            "turns_per_s": rate,
                            "ideal_turns_per_s": ideal,
                            "share_of_ideal": share,
                            "judged": judged,
                            "pass": (share is not None and share >= TARGET_SHARE) if judged else None,
                        }
                    )
            finally:
                model.uninstall()
        judged_rows = [r for r in rows if r["judged"]]
        return {
            "target": f"{max(settings.agents)} agents at {max(settings.latencies)} s latency reach >= "
            f"{TARGET_SHARE:.0%} of agents / latency",
            "pool_size": POOL_SIZE,
            "peak_checked_out": peak,
            "turns_per_agent": settings.throughput_turns,
            "rows": rows,
            "pass": all(r["pass"] for r in judged_rows) if judged_rows else None,
        }
    finally:
        await store.close()


def render(backend: str, figure: dict[str, Any]) -> tuple[str, list[str], list[list[Any]], list[str]]:
    rows = [
        [
            r["agents"],
            r["latency_s"],
            r["turns_per_s"],
            r["ideal_turns_per_s"] if r["ideal_turns_per_s"] is not None else "-",
            f"{r['share_of_ideal']:.0%}" if r["share_of_ideal"] is not None else "-",
            verdict(r["pass"]),
        ]
        for r in figure["rows"]
    ]
    return (
        f"4. Throughput, {backend} (pool size {figure['pool_size']})",
        ["agents", "model latency s", "turns/s", "ideal turns/s", "share", ">= 80%"],
        rows,
        [
            f"{figure['turns_per_agent']} chained turns per agent, median of rounds; "
            f"peak connections checked out: {figure['peak_checked_out']} of {figure['pool_size']}."
        ],
    )
