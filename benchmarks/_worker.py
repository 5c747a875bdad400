"""One worker process of figure 4b (``benchmarks.workers``): its share of the agents, on its own Store.

Usage: ``python -m benchmarks._worker URL AGENTS TURNS LATENCY TAG``. The worker connects (pool of 5),
installs the scripted model answering after LATENCY seconds, creates its AGENTS agents, warms up with
one turn, prints ``ready`` and waits for a line on stdin; then every agent takes TURNS chained turns at
once, and the worker prints one JSON line: its start and end on the shared monotonic clock
(``time.monotonic``, one clock for every process on the machine) and the turns it made.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from benchmarks._support import SYSTEM_PROMPT, user_text
from immagent import Store
from immagent.testing import ScriptedModel, ScriptedReply

POOL_SIZE = 5


async def main(url: str, agents: int, turns: int, latency: float, tag: str) -> None:
    store = await Store.connect(url, max_size=POOL_SIZE, min_size=POOL_SIZE)
    model = ScriptedModel(
        name=f"worker{int(latency * 1000)}", responder=lambda m: ScriptedReply(content="ok", delay=latency)
    ).install()
    try:
        states: list[Any] = [
            await store.create_agent(name=f"{tag}-{i}", system_prompt=SYSTEM_PROMPT, model=model.model)
            for i in range(agents)
        ]
        await states[0].advance("warm")  # LiteLLM's first call and the pool, before the clock starts
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)

        async def converse(state: Any) -> None:
            for turn in range(turns):
                state = await state.advance(user_text(turn))

        started = time.monotonic()
        await asyncio.gather(*(converse(s) for s in states))
        ended = time.monotonic()
        print(json.dumps({"start": started, "end": ended, "turns": agents * turns}), flush=True)
    finally:
        model.uninstall()
        await store.close()


if __name__ == "__main__":
    url, agents, turns, latency, tag = sys.argv[1:6]
    asyncio.run(main(url, int(agents), int(turns), float(latency), tag))
