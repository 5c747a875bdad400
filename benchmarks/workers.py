"""Figure 4b: where a turn's CPU goes, how many turns per second one process sustains, and the way past
it: several worker processes on one database.

The breakdown runs turns one at a time in this process (short histories, instant model) and splits each
turn's CPU time (``benchmarks/_cpu.py``): immagent's own (with SQLAlchemy and the driver), LiteLLM's in
the event loop's thread (its call and its background success logging), and other threads (LiteLLM's
executor; on SQLite also aiosqlite's). Every turn's event-loop work runs on one thread, so one process
cannot exceed about 1 / (event-loop CPU per turn) turns per second, whatever the model's latency.

The worker runs start N processes (``benchmarks/_worker.py``), each with its own Store and pool on the
same database and its share of the agents, release them at once, and count turns per second from the
first start to the last end on the machine's monotonic clock. PostgreSQL only: several processes on
one SQLite file would queue on its single write lock, and the documented way past one process is a
database server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from benchmarks._cpu import LiteLLMMeter, measured
from benchmarks._support import (
    ROOT,
    SYSTEM_PROMPT,
    Backend,
    Settings,
    median,
    migrated_store,
    ms,
    user_text,
    verdict,
)
from immagent.testing import ScriptedModel

TARGET_SHARE = 0.8


async def breakdown(backend: Backend, settings: Settings) -> dict[str, Any]:
    """Per-turn CPU, split, over sequential turns of fresh agents (histories of 0-8 messages)."""
    store = await migrated_store(backend.url)
    model = ScriptedModel(name="breakdown").install()
    try:
        rows: dict[str, list[float]] = {k: [] for k in ("wall", "loop", "own", "call", "logging", "other")}
        await (await store.create_agent(name="w", system_prompt=SYSTEM_PROMPT, model=model.model)).advance(
            "warm"
        )
        with LiteLLMMeter() as meter:
            agent: Any = None
            for i in range(settings.breakdown_turns):
                if i % 5 == 0:
                    agent = await store.create_agent(name="b", system_prompt=SYSTEM_PROMPT, model=model.model)
                cpu, proc = time.thread_time(), time.process_time()
                turn, agent = await measured(meter, lambda agent=agent, i=i: agent.advance(user_text(i)))
                cpu, proc = time.thread_time() - cpu, time.process_time() - proc  # its logging included
                rows["wall"].append(turn.wall)
                rows["loop"].append(cpu)
                rows["own"].append(turn.own_cpu)
                rows["call"].append(turn.litellm_cpu)
                rows["logging"].append(turn.litellm_logging_cpu)
                rows["other"].append(max(0.0, proc - cpu))
                model.requests.clear()
        out = {key: ms(median(values)) for key, values in rows.items()}
        out["ceiling_turns_per_s"] = 1000.0 / out["loop"]
        out["turns"] = settings.breakdown_turns
        return out
    finally:
        model.uninstall()
        await store.close()


def _start(url: str, agents: int, turns: int, latency: float, tag: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), LITELLM_LOCAL_MODEL_COST_MAP="True")
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks._worker", url, str(agents), str(turns), str(latency), tag],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _round(url: str, workers: int, agents: int, turns: int, latency: float, tag: str) -> float:
    """Turns per second of ``agents`` agents spread over ``workers`` processes, released together."""
    shares = [agents // workers + (1 if i < agents % workers else 0) for i in range(workers)]
    procs = [_start(url, n, turns, latency, f"{tag}-w{i}") for i, n in enumerate(shares) if n]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(
                    f"worker failed to start: {line} {proc.stderr.read() if proc.stderr else ''}"
                )
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"worker failed: {err.strip().splitlines()[-1:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    elapsed = max(r["end"] for r in results) - min(r["start"] for r in results)
    return sum(r["turns"] for r in results) / elapsed


def run(backend: Backend, settings: Settings, breakdown_figure: dict[str, Any]) -> dict[str, Any]:
    """Figure 4b on ``backend`` (PostgreSQL): the breakdown (measured before) and the worker rounds."""
    agents, latency = max(settings.agents), max(settings.latencies)
    judged_workers = min(os.cpu_count() or 1, max(settings.workers))
    rows = []
    for workers in settings.workers:
        rates = [
            _round(backend.url, workers, agents, settings.throughput_turns, latency, f"p{workers}-{r}")
            for r in range(settings.worker_rounds)
        ]
        rate = median(rates)
        ideal = agents / latency
        judged = workers == judged_workers
        rows.append(
            {
                "workers": workers,
                "agents": agents,
                "latency_s": latency,
                "turns_per_s": rate,
                "ideal_turns_per_s": ideal,
                "share_of_ideal": rate / ideal,
                "judged": judged,
                "pass": rate / ideal >= TARGET_SHARE if judged else None,
            }
        )
    return {
        "target": f"{agents} agents at {latency} s latency over {judged_workers} worker processes (one per "
        f"core) reach >= {TARGET_SHARE:.0%} of agents / latency",
        "breakdown": breakdown_figure,
        "rows": rows,
        "rounds": settings.worker_rounds,
        "turns_per_agent": settings.throughput_turns,
        "pass": all(r["pass"] for r in rows if r["judged"]),
    }


def render(backend: str, figure: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]], list[str]]]:
    b = figure["breakdown"]
    cpu = (
        f"4b. Where a turn's CPU goes, {backend}",
        ["per turn", "ms"],
        [
            ["wall time of a turn (instant model)", b["wall"]],
            ["CPU in the event loop's thread", b["loop"]],
            ["  immagent, SQLAlchemy and the driver", b["own"]],
            ["  LiteLLM's call", b["call"]],
            ["  LiteLLM's background success logging", b["logging"]],
            ["CPU in other threads (LiteLLM's executor, aiosqlite)", b["other"]],
        ],
        [
            f"medians of {b['turns']} turns; one process's ceiling: 1 / event-loop CPU per turn = "
            f"{b['ceiling_turns_per_s']:.0f} turns/s (figure 4's 0 s rows are what it reached)."
        ],
    )
    out = [cpu]
    if figure.get("rows"):
        rows = [
            [
                r["workers"],
                r["agents"],
                r["latency_s"],
                r["turns_per_s"],
                r["ideal_turns_per_s"],
                f"{r['share_of_ideal']:.0%}",
                verdict(r["pass"]),
            ]
            for r in figure["rows"]
        ]
        out.append(
            (
                f"4c. Throughput with worker processes on one database, {backend}",
                [
                    "worker processes",
                    "agents",
                    "model latency s",
                    "turns/s",
                    "ideal turns/s",
                    "share",
                    ">= 80%",
                ],
                rows,
                [
                    "each worker process: its own Store (pool of 5) and its share of the agents; "
                    f"{figure['turns_per_agent']} chained turns per agent; median of {figure['rounds']} "
                    "rounds; turns counted from the first start to the last end (one monotonic clock)."
                ],
            )
        )
    return out
