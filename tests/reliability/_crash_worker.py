"""The process the crash test kills: ``python -m tests.reliability._crash_worker``.

Importing LiteLLM and the store takes seconds, so this process imports them once and then forks a fresh
child per kill (it starts no thread and no event loop, so forking is safe). It reads commands on stdin
and answers one line each on stdout:

- ``run <url> <progress-file>`` forks a child that opens a store on ``url`` and runs turns until it is
  killed, each from a random existing state (so lineages branch); answers ``pid <n>``. The child appends
  one byte per step to the progress file: ``i`` before each INSERT, ``c`` at the COMMIT, ``t`` once the
  turn has returned, so the test can tell where its SIGKILL landed.
- ``wait <pid>`` reaps that child; answers ``exit <pid> <signal or status>``.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import threading
import traceback
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: F401  (imported once here, inherited by every child)
from sqlalchemy import event

from immagent import Store
from immagent._store import _store  # noqa: F401
from immagent.testing import ScriptedModel

MODEL = "crash"


async def turns(url: str, progress: int) -> None:
    """Turns from random existing states, forever (the parent kills this process)."""
    ScriptedModel(MODEL).install()
    rng = random.Random(os.getpid())
    async with await Store.connect(url, min_size=1, max_size=2) as store:

        def mark(byte: bytes) -> None:
            os.write(progress, byte)

        def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.lstrip().upper().startswith("INSERT"):
                mark(b"i")

        event.listen(store.engine.sync_engine, "before_cursor_execute", on_execute)
        event.listen(store.engine.sync_engine, "commit", lambda conn: mark(b"c"))
        i = 0
        while True:
            agent = rng.choice(await store.list_agents(limit=50))  # the test made a root first
            await agent.advance(f"turn {os.getpid()}.{i}")
            mark(b"t")
            i += 1


def child(url: str, progress_path: str) -> None:
    progress = os.open(progress_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        asyncio.run(turns(url, progress))
    except BaseException:
        traceback.print_exc()
        os._exit(3)
    os._exit(4)  # turns() never returns


async def warm_up(folder: str) -> None:
    """One turn on a scratch SQLite, so the lazy imports of a first call happen here, once."""
    model = ScriptedModel(MODEL).install()
    async with await Store.connect(f"sqlite+aiosqlite:///{folder}/warm.db") as store:
        await store.migrate()
        await (await store.create_agent(name="warm", system_prompt="p", model=model.model)).advance("hi")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(warm_up(folder))
    threads = threading.active_count()
    print("ready" if threads == 1 else f"not fork-safe: {threads} threads", flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "run":
            url, progress_path = args
            pid = os.fork()
            if pid == 0:
                child(url, progress_path)
            print(f"pid {pid}", flush=True)
        elif command == "wait":
            pid = int(args[0])
            _, status = os.waitpid(pid, 0)
            code = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"status {status >> 8}"
            print(f"exit {pid} {code}", flush=True)


if __name__ == "__main__":
    main()
