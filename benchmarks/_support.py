"""What every figure shares: settings, timing, databases, bulk setup and tables (statement counting is the
test suite's own ``tests.support.db.counting``)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import insert

from immagent import Store
from immagent._constants import DEFAULT_TENANT
from immagent._ids import uuid7
from immagent._messages import Message, utcnow
from immagent._orm import AGENTS, MESSAGES
from immagent._store._rows import message_values as _message_values

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PROMPT = "You are a helpful assistant. Answer briefly."
MODEL_NAME = "immagent/bench"


@dataclass(frozen=True)
class Settings:
    """How much each figure does: the full run, or the smoke run (``--quick``)."""

    quick: bool
    lengths: tuple[int, ...]
    rounds: int  # repeated rounds; every timing figure is a median over them
    turns: int  # timed turns per round (persist vs floor, alternating)
    advance_turns: int  # timed agent.advance() calls per length
    bytes_turns: int  # chained turns between two relation-size readings
    loads: int  # cold loads per figure-3 row
    lineage: int  # states in the figure-3 lineage
    history: int  # messages in the figure-3 history
    agents: tuple[int, ...]
    latencies: tuple[float, ...]
    throughput_turns: int  # turns each agent takes in a throughput run
    breakdown_turns: int  # sequential turns whose CPU figure 4b splits
    workers: tuple[int, ...]  # worker process counts of figure 4c (PostgreSQL)
    worker_rounds: int
    startup_runs: int
    original_turns: int

    @classmethod
    def for_run(cls, quick: bool) -> Settings:
        if quick:
            return cls(
                quick=True,
                lengths=(10, 40),
                rounds=2,
                turns=3,
                advance_turns=2,
                bytes_turns=4,
                loads=2,
                lineage=20,
                history=40,
                agents=(1, 4),
                latencies=(0.0, 0.01),
                throughput_turns=2,
                breakdown_turns=10,
                workers=(2,),
                worker_rounds=1,
                startup_runs=1,
                original_turns=2,
            )
        return cls(
            quick=False,
            lengths=(10, 100, 1000, 5000),
            rounds=5,
            turns=40,
            advance_turns=40,
            bytes_turns=2000,  # page-granular sizes need many turns to average out
            loads=7,
            lineage=1000,
            history=5000,
            agents=(1, 8, 64),
            latencies=(0.0, 0.2),
            throughput_turns=5,
            breakdown_turns=200,
            workers=(1, 2, 4),
            worker_rounds=3,
            startup_runs=3,
            original_turns=10,
        )


# ---------------------------------------------------------------------------------------------- timing


def median(values: Iterable[float]) -> float:
    data = list(values)
    return statistics.median(data) if data else float("nan")


async def timed(work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    """(seconds, result) of one awaited call."""
    started = time.perf_counter()
    result = await work()
    return time.perf_counter() - started, result


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


# ------------------------------------------------------------------------------------------- databases


@dataclass
class Backend:
    """One database to benchmark on: its SQLAlchemy URL and how to get rid of it."""

    name: str  # "postgresql" | "sqlite" | "mysql"
    url: str
    dispose: Callable[[], None]
    version: str = ""

    @property
    def is_pg(self) -> bool:
        return self.name == "postgresql"

    @property
    def is_mysql(self) -> bool:
        return self.name == "mysql"


class PostgresProvider:
    """A PostgreSQL server found or started the way the test suite does (tests/support/postgres.py)."""

    def __init__(self, url: str | None) -> None:
        from tests.support.postgres import PostgresServer, start_postgres

        # --url names a server to use as is; else $IMMAGENT_TEST_DATABASE_URL, testcontainers, embedded.
        self.server = PostgresServer(source="--url", admin_url=url) if url else start_postgres()

    def database(self, prefix: str = "immagent_bench") -> Backend:
        url = self.server.create_database(prefix)
        return Backend(
            "postgresql", url, lambda: self.server.drop_database(url), f"PostgreSQL {self.server.version}"
        )

    def describe(self) -> str:
        return self.server.describe()

    def close(self) -> None:
        self.server.close()


class MySQLProvider:
    """A MySQL/MariaDB server found the way the test suite finds one (tests/support/mysql.py):
    ``--mysql-url``, else $IMMAGENT_TEST_MYSQL_URL, else 127.0.0.1:3306; without one ``server`` is None
    and ``why`` says why."""

    def __init__(self, url: str | None) -> None:
        from tests.support.mysql import MySQLServer, find_mysql, normalize_url

        if url:
            self.server: MySQLServer | None = MySQLServer(normalize_url(url), "--mysql-url")
            self.why = self.server.describe()
        else:
            self.server, self.why = find_mysql()

    def database(self, prefix: str = "immagent_bench") -> Backend:
        assert self.server is not None
        server = self.server
        url = server.create_database(prefix)
        product = server.describe().split(" via ")[0]
        return Backend("mysql", url, lambda: server.drop_database(url), product)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def sqlite_backend(folder: Path, name: str = "bench") -> Backend:
    import sqlite3

    path = folder / f"{name}.db"

    def dispose() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    return Backend("sqlite", f"sqlite+aiosqlite:///{path}", dispose, f"SQLite {sqlite3.sqlite_version}")


async def migrated_store(url: str, **options: Any) -> Store:
    store = await Store.connect(url, **options)
    await store.migrate()
    return store


# --------------------------------------------------------------------------------------------- setup


def user_text(i: int) -> str:
    """Fixed-width text, so row sizes do not drift with the turn number."""
    return f"question {i:08d}: what is the weather like today?"


def reply_text(text: str) -> str:
    return f"echo: {text}"


def turn_messages(head: Message | None, i: int) -> tuple[Message, Message]:
    """A turn as the scripted model makes it: the user's message and the echoed reply, linked."""
    depth = 0 if head is None else head.depth + 1
    parent = None if head is None else head.id
    text = user_text(i)
    user = Message(role="user", content=text, parent_id=parent, depth=depth)
    reply = Message(
        role="assistant",
        content=reply_text(text),
        parent_id=user.id,
        depth=depth + 1,
        input_tokens=10,
        output_tokens=5,
    )
    return user, reply


def message_values(message: Message, root_id: UUID) -> dict[str, Any]:
    """The column values the store writes for a message of the default tenant (its own mapping, so the
    floor writes the same)."""
    return _message_values(message, root_id, DEFAULT_TENANT)


async def agent_with_history(store: Store, length: int, name: str) -> Any:
    """A state whose history has ``length`` messages, its rows inserted in bulk (not by advancing
    ``length / 2`` times), then loaded back through the store like any other state."""
    root = await store.create_agent(name=name, system_prompt=SYSTEM_PROMPT, model=MODEL_NAME)
    rows: list[dict[str, Any]] = []
    head: Message | None = None
    for i in range(length // 2):
        for message in turn_messages(head, i):
            rows.append(message_values(message, root.root_id))
            head = message
    if not rows:
        return root
    state_id = uuid7()
    async with store.engine.begin() as conn:
        for start in range(0, len(rows), 1000):
            await conn.execute(insert(MESSAGES), rows[start : start + 1000])
        await conn.execute(
            insert(AGENTS),
            [
                {
                    "id": state_id,
                    "root_id": root.root_id,
                    "parent_id": root.id,
                    "name": name,
                    "system_prompt_id": root.system_prompt_id,
                    "head_id": rows[-1]["id"],
                    "model": MODEL_NAME,
                    "metadata": {},
                    "model_settings": {},
                    "created_at": utcnow(),
                }
            ],
        )
    return await store.load_agent(state_id)


async def lineage_of(store: Store, states: int, name: str) -> UUID:
    """The id of the last of ``states`` agent states chained by ``parent_id`` (inserted in bulk)."""
    root = await store.create_agent(name=name, system_prompt=SYSTEM_PROMPT, model=MODEL_NAME)
    rows: list[dict[str, Any]] = []
    parent = root.id
    for _ in range(states - 1):
        state_id = uuid7()
        rows.append(
            {
                "id": state_id,
                "root_id": root.root_id,
                "parent_id": parent,
                "name": name,
                "system_prompt_id": root.system_prompt_id,
                "head_id": None,
                "model": MODEL_NAME,
                "metadata": {},
                "model_settings": {},
                "created_at": utcnow(),
            }
        )
        parent = state_id
    async with store.engine.begin() as conn:
        for start in range(0, len(rows), 1000):
            await conn.execute(insert(AGENTS), rows[start : start + 1000])
    return parent


# ---------------------------------------------------------------------------------------------- output


def table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], notes: Sequence[str] = ()
) -> str:
    """A plain-text table (also valid Markdown) with a title line and notes under it."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda values: "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"  # noqa: E731
    out = [f"### {title}", "", line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    out += [""] + [f"{n}" for n in notes] if notes else []
    return "\n".join(out) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ms(seconds: float) -> float:
    return seconds * 1000.0


def machine() -> dict[str, Any]:
    """The machine and the versions a table came from."""
    import importlib.metadata as metadata

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in (
        "immagent",
        "sqlalchemy",
        "asyncpg",
        "aiosqlite",
        "asyncmy",
        "alembic",
        "litellm",
        "pydantic",
    ):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "packages": versions,
        "commit": commit,
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
