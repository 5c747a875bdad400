"""Revision 0004 (every key of a tree carries root_id) on existing data, on every backend: states, histories
and threads written at the revision before it come through the upgrade equal, new turns work, the new keys
hold, the UPDATE-refusing triggers still refuse, and the downgrade gives back the schema it started from.

The revision before 0004 is read from the scripts, never written here: another revision may come between.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table, Uuid, insert, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from immagent import Store
from immagent._ids import uuid7
from immagent._messages import utcnow
from immagent._migrations import alembic_config
from immagent.testing import ScriptedModel
from tests.support.db import BACKENDS, backend_of
from tests.support.schema import read, rows, schema
from tests.test_migrations import write_0001_rows

ON_EVERY_BACKEND = pytest.mark.parametrize("fresh_db_url", BACKENDS, indirect=True)
TREE_TABLES = ("immagent_messages", "immagent_agents", "immagent_thread_moves")


def before_0004() -> str:
    down = ScriptDirectory.from_config(alembic_config()).get_revision("0004").down_revision
    assert isinstance(down, str)
    return down


def _thread_tables() -> tuple[Table, Table]:
    """The thread tables as 0002 made them (written out: the point is the old shape)."""
    metadata = MetaData()
    uuid = Uuid().with_variant(Uuid(native_uuid=False), "mysql", "mariadb")
    threads = Table(
        "immagent_threads", metadata, Column("tenant", String(64)), Column("key", String(255)),
        Column("metadata", JSON), Column("created_at", DateTime(timezone=True)),
    )  # fmt: skip
    moves = Table(
        "immagent_thread_moves", metadata, Column("tenant", String(64)), Column("key", String(255)),
        Column("position", Integer), Column("agent_id", uuid), Column("kind", String(16)),
        Column("created_at", DateTime(timezone=True)),
    )  # fmt: skip
    return threads, moves


async def write_rows_before_0004(url: str) -> dict[str, Any]:
    """0001's rows (a tree with a history and a clone, another root), then at the revision before 0004
    a thread over them: created at the second state, moved to the other root."""
    async with await Store.connect(url) as store:
        await store.migrate("0001")
    written = await write_0001_rows(url)
    async with await Store.connect(url) as store:
        await store.migrate(before_0004())
    agents = (await read(url, rows))["immagent_agents"]
    other = next(UUID(str(a[0])) for a in agents if a[0] == a[1] and _uuid(a[0]) != written["root"])
    threads, moves = _thread_tables()
    now = utcnow()
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(threads), [{"tenant": "default", "key": "kept", "metadata": {}, "created_at": now}]
            )
            await conn.execute(
                insert(moves),
                [
                    {"tenant": "default", "key": "kept", "position": 0, "agent_id": written["second"],
                     "kind": "create", "created_at": now},
                    {"tenant": "default", "key": "kept", "position": 1, "agent_id": other, "kind": "move",
                     "created_at": now},
                ],
            )  # fmt: skip
            # A framework's native form (0003's column): the SQLite rebuild must carry it over as written.
            await conn.execute(insert(_native_messages()), [
                {"id": uuid7(), "root_id": other, "parent_id": None, "depth": 0, "role": "user",
                 "content": "native", "created_at": now,
                 "native": {"format": "test/item", "data": {"z": 1, "a": ["é", None, 1.5]}}},
            ])  # fmt: skip
    finally:
        await engine.dispose()
    return {**written, "other": other}


def _native_messages() -> Table:
    """The columns of a message row with its native form (0003's column)."""
    uuid = Uuid().with_variant(Uuid(native_uuid=False), "mysql", "mariadb")
    return Table(
        "immagent_messages", MetaData(), *(Column(n, uuid) for n in ("id", "root_id", "parent_id")),
        Column("depth", Integer), Column("role", String(16)), Column("content", String(64)),
        Column("created_at", DateTime(timezone=True)), Column("native", JSON),
    )  # fmt: skip


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


@ON_EVERY_BACKEND
async def test_an_upgrade_to_0004_keeps_every_tree_and_thread_and_the_downgrade_restores_the_schema(
    fresh_db_url: str,
) -> None:
    url = fresh_db_url
    written = await write_rows_before_0004(url)
    before, schema_before = await read(url, rows), await read(url, schema)

    async with await Store.connect(url) as store:
        await store.migrate("0004")
    after = await read(url, rows)
    for table in ("immagent_texts", "immagent_messages", "immagent_agents", "immagent_threads"):
        assert after[table] == before[table], table
    roots = {written["second"]: written["root"], written["other"]: written["other"]}
    moved = [(*r, roots[_uuid(r[3])]) for r in before["immagent_thread_moves"]]  # each move names its tree
    assert [tuple(map(_plain, r)) for r in after["immagent_thread_moves"]] == [
        tuple(map(_plain, r)) for r in sorted(moved, key=repr)
    ]

    model = ScriptedModel("upgrade").install()
    try:
        async with await Store.connect(url) as store:
            state = await store.load_agent(written["second"])
            assert [m.content for m in await state.messages()] == ["hi", "hello", "more", "ok"]
            thread = await store.load_thread("kept")
            assert (thread.position, (await thread.head()).id) == (1, written["other"])
            advanced = await (await thread.move(state)).advance("after the upgrade")
            head = await advanced.head()
            assert [m.content for m in await head.messages()][-2:] == [
                "after the upgrade",
                "echo: after the upgrade",
            ]
            assert head.root_id == written["root"]
    finally:
        model.uninstall()

    for table in TREE_TABLES:  # rebuilt or altered: the triggers are back
        with pytest.raises(DBAPIError, match="immutable"):
            await _execute(url, f"UPDATE {table} SET created_at = created_at")
    with pytest.raises(DBAPIError):  # a parent must be in the message's own tree now
        await _execute_insert_across_trees(url, written)

    async with await Store.connect(url) as store:
        await store._downgrade(before_0004())
    assert await read(url, schema) == schema_before
    down = await read(url, rows)
    for table, kept in before.items():
        assert all(row in down[table] for row in kept), table


def _plain(value: Any) -> Any:
    """UUIDs compared as UUIDs whatever the backend returns (SQLite and MySQL reflect them as text)."""
    try:
        return _uuid(value)
    except ValueError:
        return value


async def _execute(url: str, sql: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def _execute_insert_across_trees(url: str, written: dict[str, Any]) -> None:
    """A message of the other tree whose parent is a message of the first tree: the key refuses it."""
    uuid = Uuid().with_variant(Uuid(native_uuid=False), "mysql", "mariadb")
    messages = Table(
        "immagent_messages", MetaData(), *(Column(n, uuid) for n in ("id", "root_id", "parent_id")),
        Column("depth", Integer), Column("role", String(16)), Column("created_at", DateTime(timezone=True)),
    )  # fmt: skip
    row = {"id": uuid7(), "root_id": written["other"], "parent_id": written["messages"][0]["id"], "depth": 1,
           "role": "user", "created_at": utcnow()}  # fmt: skip
    engine = create_async_engine(url)
    if backend_of(url) == "sqlite":
        from immagent._engine import prepare_engine

        prepare_engine(engine)  # foreign keys on, as the store has them
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(messages), [row])
    finally:
        await engine.dispose()
