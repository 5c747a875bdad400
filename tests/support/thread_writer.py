"""A separate process that advances one thread: ``python -m tests.support.thread_writer URL KEY TURNS GO``.

It waits until the file GO exists (so two processes start racing together), then advances the thread
KEY until it has won TURNS moves, reloading and retrying on every ConflictError, with the offline
scripted model. It prints one JSON line: {"wins": n, "conflicts": n}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from immagent import ConflictError, Store
from immagent.testing import ScriptedModel


async def main(url: str, key: str, turns: int, go: Path) -> None:
    ScriptedModel().install()
    async with await Store.connect(url, min_size=1, max_size=2) as store:
        await store.load_thread(key)  # warm: imports, pool, schema check
        deadline = time.monotonic() + 60
        while not await asyncio.to_thread(go.exists):
            if time.monotonic() > deadline:
                raise SystemExit("the start signal never came")
            await asyncio.sleep(0.01)
        wins = conflicts = 0
        while wins < turns:
            thread = await store.load_thread(key)
            try:
                await thread.advance(f"turn {wins}")
                wins += 1
            except ConflictError:
                conflicts += 1
    print(json.dumps({"wins": wins, "conflicts": conflicts}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])))
