"""Figures 1 and 2: what a turn costs to persist, and how many bytes it adds, against conversation length.

Figure 1 times, at each length, in the same rounds (lengths and methods interleaved, so the machine's
drift hits all of them alike):

- ``advance``: ``agent.advance()`` with the scripted model, i.e. the whole turn, LiteLLM included, split
  (``benchmarks/_cpu.py``) into immagent's own CPU (the turn's main-thread CPU time less LiteLLM's:
  immagent, SQLAlchemy and the driver; round trips cost no CPU while they wait), LiteLLM's call (wall
  time inside ``litellm.acompletion``) and the CPU of LiteLLM's background success logging;
- ``persist``: the store's write of one turn (``_turns.commit``: two messages and the new agent row
  in one transaction, plus everything the store does around it), against the ``floor``: the same rows,
  with the same values and types, written by the raw driver in one transaction (asyncpg: BEGIN, one
  two-row INSERT, one INSERT, COMMIT; sqlite3 with the store's pragmas likewise; asyncmy likewise).

Every timed turn starts from the same state (a sibling), so the history has exactly the stated length.
Figure 2 (PostgreSQL) chains turns and reads ``pg_total_relation_size`` of immagent's tables before and
after, divided by the number of turns, plus the exact ``pg_column_size`` of the last turn's rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from typing import Any
from uuid import UUID

from sqlalchemy import make_url, text

from benchmarks._cpu import LiteLLMMeter, TurnCost, measured
from benchmarks._support import (
    MODEL_NAME,
    Backend,
    Settings,
    agent_with_history,
    median,
    message_values,
    migrated_store,
    ms,
    timed,
    turn_messages,
    user_text,
    verdict,
)
from immagent._ids import uuid7
from immagent._messages import Message, utcnow
from immagent._store import Store, _turns
from immagent.testing import ScriptedModel
from tests.support.db import counting

TABLES = ("immagent_texts", "immagent_messages", "immagent_agents")
MESSAGE_COLUMNS = (
    "id, tenant, root_id, parent_id, depth, role, content, tool_calls, tool_call_id, input_tokens, "
    "output_tokens, created_at, native"
)
AGENT_COLUMNS = (
    "id, tenant, root_id, parent_id, name, system_prompt_id, head_id, model, metadata, model_settings, "
    "created_at"
)
N_MESSAGE, N_AGENT = MESSAGE_COLUMNS.count(",") + 1, AGENT_COLUMNS.count(",") + 1
PERSIST_RATIO_TARGET = 1.5
FLATNESS_TARGET = 1.15
OWN_CPU_FLATNESS_TARGET = 1.2
BYTES_FLATNESS_TARGET = 0.10


def _agent_values(base: Any, head: Message) -> dict[str, Any]:
    """The agent row a turn writes, as ``Store._agent_row`` builds it."""
    return {
        "id": uuid7(),
        "tenant": base.tenant,
        "root_id": base.root_id,
        "parent_id": base.id,
        "name": base.name,
        "system_prompt_id": base.system_prompt_id,
        "head_id": head.id,
        "model": base.model,
        "metadata": dict(base.metadata),
        "model_settings": dict(base.model_settings),
        "created_at": utcnow(),
    }


# -------------------------------------------------------------------------------------------- floors


class PostgresFloor:
    """The same turn written with raw asyncpg: BEGIN; one two-row INSERT; one INSERT; COMMIT."""

    name = "asyncpg"

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None
        placeholders = ", ".join(f"${i}" for i in range(1, N_MESSAGE + 1))
        second = ", ".join(f"${i}" for i in range(N_MESSAGE + 1, 2 * N_MESSAGE + 1))
        self.messages_sql = (
            f"INSERT INTO immagent_messages ({MESSAGE_COLUMNS}) VALUES ({placeholders}), ({second})"
        )
        self.agent_sql = (
            f"INSERT INTO immagent_agents ({AGENT_COLUMNS}) VALUES "
            f"({', '.join(f'${i}' for i in range(1, N_AGENT + 1))})"
        )

    async def open(self) -> None:
        import asyncpg

        from tests.support.postgres import _connect_kwargs

        self.conn = await asyncpg.connect(**_connect_kwargs(make_url(self.url)))

    async def turn(self, base: Any, messages: tuple[Message, Message]) -> None:
        values: list[Any] = []
        for message in messages:
            row = message_values(message, base.root_id)
            values += [row[c.strip()] for c in MESSAGE_COLUMNS.split(",")]
        agent = _agent_values(base, messages[-1])
        agent["metadata"] = json.dumps(agent["metadata"])
        agent["model_settings"] = json.dumps(agent["model_settings"])
        async with self.conn.transaction():
            await self.conn.execute(self.messages_sql, *values)
            await self.conn.execute(self.agent_sql, *(agent[c.strip()] for c in AGENT_COLUMNS.split(",")))

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


def _sqlite_values(row: dict[str, Any], *, times_as_text: bool = True) -> list[Any]:
    """Values as SQLAlchemy stores them in SQLite (and MySQL): hex UUIDs, text timestamps (MySQL's driver
    takes the datetime itself), JSON text."""
    out: list[Any] = []
    for value in row.values():
        if isinstance(value, UUID):
            out.append(value.hex)
        elif hasattr(value, "strftime") and times_as_text:
            out.append(value.strftime("%Y-%m-%d %H:%M:%S.%f"))
        elif isinstance(value, dict):
            out.append(json.dumps(value))
        else:
            out.append(value)
    return out


def _turn_rows(
    base: Any, messages: tuple[Message, Message], *, times_as_text: bool = True
) -> tuple[list[Any], list[Any]]:
    """A turn's message values (both rows, flat) and agent values, in the columns' order, as stored."""
    values: list[Any] = []
    for message in messages:
        values += _sqlite_values(message_values(message, base.root_id), times_as_text=times_as_text)
    return values, _sqlite_values(_agent_values(base, messages[-1]), times_as_text=times_as_text)


class MySQLFloor:
    """The same turn written with raw asyncmy: one two-row INSERT, one INSERT, COMMIT (MySQL opens the
    transaction by itself at the first statement, as it does for SQLAlchemy)."""

    name = "asyncmy"

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None
        row, agent = ", ".join(["%s"] * N_MESSAGE), ", ".join(["%s"] * N_AGENT)
        self.messages_sql = f"INSERT INTO immagent_messages ({MESSAGE_COLUMNS}) VALUES ({row}), ({row})"
        self.agent_sql = f"INSERT INTO immagent_agents ({AGENT_COLUMNS}) VALUES ({agent})"

    async def open(self) -> None:
        import asyncmy

        url = make_url(self.url)
        self.conn = await asyncmy.connect(
            host=url.host,
            port=url.port or 3306,
            user=url.username,
            password=url.password or "",
            database=url.database,
            charset="utf8mb4",
        )

    async def turn(self, base: Any, messages: tuple[Message, Message]) -> None:
        values, agent = _turn_rows(base, messages, times_as_text=False)
        async with self.conn.cursor() as cursor:
            await cursor.execute(self.messages_sql, values)
            await cursor.execute(self.agent_sql, agent)
        await self.conn.commit()

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.ensure_closed()


class SqliteFloor:
    """The same turn written with the standard library's sqlite3 and the store's pragmas."""

    name = "sqlite3"

    def __init__(self, url: str) -> None:
        self.path = make_url(url).database
        self.conn: sqlite3.Connection | None = None
        row = ", ".join("?" * N_MESSAGE)
        self.messages_sql = f"INSERT INTO immagent_messages ({MESSAGE_COLUMNS}) VALUES ({row}), ({row})"
        self.agent_sql = f"INSERT INTO immagent_agents ({AGENT_COLUMNS}) VALUES ({', '.join('?' * N_AGENT)})"

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in ("foreign_keys=ON", "busy_timeout=30000", "journal_mode=WAL", "synchronous=NORMAL"):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    async def open(self) -> None:
        self.conn = self._connect()

    def _rows(self, base: Any, messages: tuple[Message, Message]) -> tuple[list[Any], list[Any]]:
        return _turn_rows(base, messages)

    async def turn(self, base: Any, messages: tuple[Message, Message]) -> None:
        assert self.conn is not None
        values, agent = self._rows(base, messages)
        self.conn.execute("BEGIN")
        self.conn.execute(self.messages_sql, values)
        self.conn.execute(self.agent_sql, agent)
        self.conn.execute("COMMIT")

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class AiosqliteFloor(SqliteFloor):
    """The same again through aiosqlite (a thread hop per call), to show what the async driver costs."""

    name = "aiosqlite"

    async def open(self) -> None:
        import aiosqlite

        self.aconn = await aiosqlite.connect(self.path, isolation_level=None)
        for pragma in ("foreign_keys=ON", "busy_timeout=30000", "journal_mode=WAL", "synchronous=NORMAL"):
            await self.aconn.execute(f"PRAGMA {pragma}")

    async def turn(self, base: Any, messages: tuple[Message, Message]) -> None:
        values, agent = self._rows(base, messages)
        await self.aconn.execute("BEGIN")
        await self.aconn.execute(self.messages_sql, values)
        await self.aconn.execute(self.agent_sql, agent)
        await self.aconn.execute("COMMIT")

    async def close(self) -> None:
        await self.aconn.close()


# ------------------------------------------------------------------------------------------- figures


async def relation_bytes(store: Store) -> int:
    async with store.engine.connect() as conn:
        total = await conn.execute(
            text("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relname = ANY(:names)"),
            {"names": list(TABLES)},
        )
        return int(total.scalar_one())


async def row_bytes(store: Store, agent_id: UUID, message_ids: list[UUID]) -> int:
    async with store.engine.connect() as conn:
        agent = await conn.execute(
            text("SELECT pg_column_size(a.*) FROM immagent_agents a WHERE a.id = :id"), {"id": agent_id}
        )
        messages = await conn.execute(
            text("SELECT sum(pg_column_size(m.*)) FROM immagent_messages m WHERE m.id = ANY(:ids)"),
            {"ids": message_ids},
        )
        return int(agent.scalar_one()) + int(messages.scalar_one())


async def run(backend: Backend, settings: Settings) -> dict[str, Any]:
    """Figures 1 and 2 on one backend; returns their rows (figure 2 is PostgreSQL only)."""
    store = await migrated_store(backend.url)
    if backend.is_pg:
        async with store.engine.begin() as conn:
            for table in TABLES:  # no autovacuum: its FSM/VM forks would make relation sizes jump
                await conn.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
    floors: list[Any] = (
        [PostgresFloor(backend.url)]
        if backend.is_pg
        else [MySQLFloor(backend.url)]
        if backend.is_mysql
        else [SqliteFloor(backend.url), AiosqliteFloor(backend.url)]
    )
    model = ScriptedModel(name=MODEL_NAME.split("/", 1)[1]).install()
    try:
        for floor in floors:
            await floor.open()
        bases = {
            length: await agent_with_history(store, length, f"len{length}") for length in settings.lengths
        }
        histories = {length: await bases[length].messages() for length in settings.lengths}
        for length, history in histories.items():
            assert len(history) == length, (length, len(history))

        # Warm every path once (LiteLLM's first call, prepared statements, pool).
        for length in settings.lengths:
            await bases[length].advance(user_text(0))
            await _turns.commit(
                store, bases[length], histories[length], turn_messages(histories[length][-1], 0), None
            )
            for floor in floors:
                await floor.turn(bases[length], turn_messages(histories[length][-1], 0))
        model.requests.clear()

        # Figure 1a: whole advance, split into immagent's own CPU and LiteLLM's, interleaved over lengths.
        turns: dict[int, list[TurnCost]] = defaultdict(list)
        with LiteLLMMeter() as meter:
            for i in range(settings.advance_turns):
                for length in settings.lengths:
                    base = bases[length]
                    cost, _ = await measured(meter, lambda base=base, i=i: base.advance(user_text(i)))
                    turns[length].append(cost)
                    model.requests.clear()

        # Figure 1b: persist vs floor, interleaved over rounds, lengths and methods.
        persist_round: dict[int, list[float]] = defaultdict(list)
        floor_round: dict[tuple[str, int], list[float]] = defaultdict(list)
        ratios: dict[int, list[float]] = defaultdict(list)
        flatness: list[float] = []
        for _ in range(settings.rounds):
            persist: dict[int, list[float]] = defaultdict(list)
            floor_s: dict[tuple[str, int], list[float]] = defaultdict(list)
            for i in range(settings.turns):
                for length in settings.lengths:
                    base, history = bases[length], histories[length]
                    new = turn_messages(history[-1], i)
                    seconds, _ = await timed(
                        lambda base=base, history=history, new=new: _turns.commit(
                            store, base, history, new, None
                        )
                    )
                    persist[length].append(seconds)
                    for floor in floors:
                        new = turn_messages(history[-1], i)
                        seconds, _ = await timed(
                            lambda floor=floor, base=base, new=new: floor.turn(base, new)
                        )
                        floor_s[(floor.name, length)].append(seconds)
            for length in settings.lengths:
                p, f = median(persist[length]), median(floor_s[(floors[0].name, length)])
                persist_round[length].append(p)
                for floor in floors:
                    floor_round[(floor.name, length)].append(median(floor_s[(floor.name, length)]))
                ratios[length].append(p / f)
            first, last = settings.lengths[0], settings.lengths[-1]
            flatness.append(median(persist[last]) / median(persist[first]))

        statements: dict[int, int] = {}
        for length in settings.lengths:
            with counting(store.engine) as counter:
                await _turns.commit(
                    store, bases[length], histories[length], turn_messages(histories[length][-1], 1), None
                )
            statements[length] = counter.count

        rows = []
        for length in settings.lengths:
            ratio = median(ratios[length])
            costs = turns[length]
            row = {
                "length": length,
                "advance_ms": ms(median(c.wall for c in costs)),
                "own_cpu_ms": ms(median(c.own_cpu for c in costs)),
                "litellm_call_ms": ms(median(c.litellm_wall for c in costs)),
                "litellm_logging_cpu_ms": ms(median(c.litellm_logging_cpu for c in costs)),
                "persist_ms": ms(median(persist_round[length])),
                "floor_ms": ms(median(floor_round[(floors[0].name, length)])),
                "floor_driver": floors[0].name,
                "ratio": ratio,
                "statements_per_turn": statements[length],
                "pass": ratio <= PERSIST_RATIO_TARGET,
            }
            for floor in floors[1:]:
                row[f"{floor.name}_ms"] = ms(median(floor_round[(floor.name, length)]))
            rows.append(row)
        flat = median(flatness)
        own = [r["own_cpu_ms"] for r in rows]
        own_flatness = max(own) / own[0]
        figure1 = {
            "target": f"persist <= {PERSIST_RATIO_TARGET}x the floor at every length; "
            f"length-{settings.lengths[-1]} persist within {FLATNESS_TARGET - 1:.0%} "
            f"of length-{settings.lengths[0]}; immagent's own CPU per turn at every length within "
            f"{OWN_CPU_FLATNESS_TARGET - 1:.0%} of length-{settings.lengths[0]}",
            "rows": rows,
            "flatness": flat,
            "flatness_pass": flat <= FLATNESS_TARGET,
            "own_cpu_flatness": own_flatness,
            "own_cpu_flatness_pass": own_flatness <= OWN_CPU_FLATNESS_TARGET,
            "pass": all(r["pass"] for r in rows)
            and flat <= FLATNESS_TARGET
            and own_flatness <= OWN_CPU_FLATNESS_TARGET,
            "rounds": settings.rounds,
            "turns_per_round": settings.turns,
        }

        figure2: dict[str, Any] = {
            "target": f"bytes per turn flat within {BYTES_FLATNESS_TARGET:.0%}",
            "rows": [],
        }
        if backend.is_pg:
            for length in settings.lengths:
                agent, history = bases[length], histories[length]
                before = await relation_bytes(store)
                for i in range(settings.bytes_turns):
                    new = turn_messages(history[-1] if history else None, i)
                    agent = await _turns.commit(store, agent, history, new, None)
                    history = history + new
                after = await relation_bytes(store)
                figure2["rows"].append(
                    {
                        "length": length,
                        "turns": settings.bytes_turns,
                        "relation_bytes_per_turn": (after - before) / settings.bytes_turns,
                        "row_bytes_per_turn": await row_bytes(store, agent.id, [m.id for m in history[-2:]]),
                    }
                )
            per_turn = [r["relation_bytes_per_turn"] for r in figure2["rows"]]
            spread = (max(per_turn) - min(per_turn)) / min(per_turn) if min(per_turn) > 0 else float("inf")
            figure2.update(spread=spread, **{"pass": spread <= BYTES_FLATNESS_TARGET})
        else:
            figure2.update(spread=None, note="PostgreSQL relation sizes only", **{"pass": None})
        return {"persist": figure1, "bytes": figure2, "bases": {n: bases[n].id for n in settings.lengths}}
    finally:
        model.uninstall()
        for floor in floors:
            await floor.close()
        await store.close()


def render(
    backend: str, figure1: dict[str, Any], figure2: dict[str, Any]
) -> list[tuple[str, list[str], list[list[Any]], list[str]]]:
    rows1 = []
    shown = ("advance_ms", "own_cpu_ms", "litellm_call_ms", "litellm_logging_cpu_ms")
    shown += ("persist_ms", "floor_ms")
    extra = [k for k in figure1["rows"][0] if k.endswith("_ms") and k not in shown]
    for r in figure1["rows"]:
        rows1.append(
            [
                r["length"],
                r["advance_ms"],
                r["own_cpu_ms"],
                r["litellm_call_ms"],
                r["litellm_logging_cpu_ms"],
                r["persist_ms"],
                r["floor_ms"],
                *(r[k] for k in extra),
                f"{r['ratio']:.2f}x",
                r["statements_per_turn"],
                verdict(r["pass"]),
            ]
        )
    first = figure1["rows"][0]
    headers1 = [
        "length",
        "advance ms",
        "own CPU ms",
        "LiteLLM call ms",
        "LiteLLM logging CPU ms",
        "persist ms",
        f"floor ({first['floor_driver']}) ms",
        *(k.removesuffix("_ms") + " ms" for k in extra),
        "persist/floor",
        "statements",
        "<= 1.5x",
    ]
    notes1 = [
        f"length {figure1['rows'][-1]['length']} persist / length {first['length']} persist = "
        f"{figure1['flatness']:.3f} (target <= {FLATNESS_TARGET:.2f}): {verdict(figure1['flatness_pass'])}",
        f"immagent's own CPU per turn, largest / length {first['length']} = "
        f"{figure1['own_cpu_flatness']:.3f} (target <= {OWN_CPU_FLATNESS_TARGET:.2f}): "
        f"{verdict(figure1['own_cpu_flatness_pass'])}",
        "own CPU: the CPU of the turn's own steps less its LiteLLM call's (immagent, SQLAlchemy, the "
        "driver); LiteLLM call: wall time in litellm.acompletion; LiteLLM logging: CPU of its background "
        "success handler.",
        f"medians over {figure1['rounds']} rounds of {figure1['turns_per_round']} turns "
        "per length and method, interleaved.",
    ]
    out = [(f"1. Persist cost per turn, {backend}", headers1, rows1, notes1)]
    if figure2["rows"]:
        rows2 = [
            [r["length"], r["turns"], r["relation_bytes_per_turn"], r["row_bytes_per_turn"]]
            for r in figure2["rows"]
        ]
        notes2 = [
            f"spread (max - min) / min = {figure2['spread']:.1%} (target <= 10%): {verdict(figure2['pass'])}"
        ]
        out.append(
            (
                f"2. Bytes added per turn, {backend}",
                ["length", "turns", "relation bytes/turn", "row bytes/turn"],
                rows2,
                notes2,
            )
        )
    return out
