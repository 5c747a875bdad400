"""Revision 0003 (``immagent_messages.native``) on SQLite, PostgreSQL and MySQL/MariaDB: rows written at
0002 come through the upgrade unchanged with no native form, the database still refuses every UPDATE,
and a downgrade drops the native forms and nothing else."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from immagent import Message, NativeForm, Store
from immagent._ids import uuid7
from immagent._messages import utcnow
from immagent._orm import MESSAGES, THREAD_MOVES, THREADS
from tests.support.db import BACKENDS, backend_of
from tests.support.schema import execute, read, rows, schema
from tests.test_migrations import expected_schema, populate, write_0001_rows

ON_EVERY_BACKEND = pytest.mark.parametrize("fresh_db_url", BACKENDS, indirect=True)

#: One UPDATE per immagent table, each on a column no backend reserves (MySQL reserves ``key``).
UPDATES = {
    "immagent_agents": "name = 'changed'",
    "immagent_messages": "content = 'changed'",
    "immagent_texts": "content = 'changed'",
    "immagent_threads": "tenant = 'changed'",
    "immagent_thread_moves": "kind = 'changed'",
}


async def write_0002_rows(url: str, state_id: Any, root_id: Any) -> None:
    """Rows as revision 0002 writes them, with 0002's columns only: two messages of tenant ``acme`` and
    a thread (with its first move) at ``state_id``."""
    first, now = uuid7(), utcnow()
    messages = [
        {"id": first, "tenant": "acme", "root_id": root_id, "parent_id": None, "depth": 0, "role": "user",
         "content": "at 0002", "tool_calls": None, "tool_call_id": None, "input_tokens": None,
         "output_tokens": None, "created_at": now},
        {"id": uuid7(), "tenant": "acme", "root_id": root_id, "parent_id": first, "depth": 1,
         "role": "assistant", "content": None, "tool_calls": [{"id": "c1", "name": "f", "arguments": "{}"}],
         "tool_call_id": None, "input_tokens": 3, "output_tokens": 4, "created_at": now},
    ]  # fmt: skip
    thread = {"tenant": "default", "key": "at-0002", "metadata": {}, "created_at": now}
    move = {**thread, "position": 0, "agent_id": state_id, "kind": "create"}
    del move["metadata"]
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(MESSAGES), messages)
            await conn.execute(insert(THREADS), [thread])
            await conn.execute(insert(THREAD_MOVES), [move])
    finally:
        await engine.dispose()


async def assert_updates_refused(url: str, *, native: bool = True) -> None:
    """The database itself refuses an UPDATE of every immagent table (each holds rows), and of the native
    column when there is one."""
    counts = await read(url, rows)
    extra = [("immagent_messages", "native = NULL")] if native else []
    for table, assignment in [*UPDATES.items(), *extra]:
        assert counts[table], f"{table} is empty: the row trigger would prove nothing"
        with pytest.raises(DBAPIError, match="immutable"):
            await execute(url, f"UPDATE {table} SET {assignment}")


@ON_EVERY_BACKEND
async def test_an_upgrade_from_0002_keeps_every_row_with_no_native_form_and_still_refuses_updates(
    fresh_db_url: str,
) -> None:
    async with await Store.connect(fresh_db_url) as store:
        await store.migrate("0001")
    written = await write_0001_rows(fresh_db_url)
    async with await Store.connect(fresh_db_url) as store:
        await store.migrate("0002")
    await write_0002_rows(fresh_db_url, written["second"], written["root"])
    before = await read(fresh_db_url, rows)
    at_0002 = await read(fresh_db_url, schema)
    assert "native" not in at_0002["tables"]["immagent_messages"]["columns"]

    async with await Store.connect(fresh_db_url) as store:
        await store.migrate("0003")
        assert await store.schema_revision() == "0003"
    after = await read(fresh_db_url, rows)
    assert after["immagent_messages"] == sorted(((*r, None) for r in before["immagent_messages"]), key=repr)
    for table in ("immagent_agents", "immagent_texts", "immagent_threads", "immagent_thread_moves"):
        assert after[table] == before[table], table
    at_0003 = await read(fresh_db_url, schema)
    native = expected_schema(backend_of(fresh_db_url))["tables"]["immagent_messages"]["columns"]["native"]
    columns = at_0002["tables"]["immagent_messages"]["columns"]
    assert at_0003["tables"]["immagent_messages"]["columns"] == {**columns, "native": native}
    await assert_updates_refused(fresh_db_url)

    async with await Store.connect(fresh_db_url) as store:
        await store.migrate()  # on to the head: the store reads and writes at the newest schema
        state = await (await store.load_thread("at-0002")).head()
        history = await state.messages()
        assert [m.content for m in history] == ["hi", "hello", "more", "ok"]
        assert all(m.native is None for m in history)
        form = NativeForm(format="test/message", data={"parts": [{"text": "after 0003"}]})
        grown = await state.extend([Message(role="user", content="after 0003", native=form)])
        store.clear_cache()
        reread = await (await store.load_agent(grown.id)).messages()
        assert reread[:4] == history and reread[4].native == form


@ON_EVERY_BACKEND
async def test_a_downgrade_to_0002_drops_native_forms_and_keeps_every_message(fresh_db_url: str) -> None:
    async with await Store.connect(fresh_db_url) as store:
        await store.migrate()
        await populate(store)
        latest = (await store.list_agents(limit=1))[0]
        form = NativeForm(format="test/message", data=[1, "two", {"three": None}])
        grown = await latest.extend([Message(role="user", content="kept", native=form)])
        await store.create_thread("t", grown)
        await store._downgrade("0003")  # the newer revisions' own changes undone first
        at_0003 = await read(fresh_db_url, rows)
        await store._downgrade("0002")
        assert await store.schema_revision() == "0002"
    at_0002 = await read(fresh_db_url, rows)
    assert at_0002["immagent_messages"] == sorted((r[:-1] for r in at_0003["immagent_messages"]), key=repr)
    for table in ("immagent_agents", "immagent_texts", "immagent_threads", "immagent_thread_moves"):
        assert at_0002[table] == at_0003[table], table
    assert sorted(await read(fresh_db_url, lambda c: schema(c)["triggers"])) == sorted(
        f"{t}_no_update" for t in UPDATES
    )
    await assert_updates_refused(fresh_db_url, native=False)
    async with await Store.connect(fresh_db_url) as store:
        await store.migrate()
        last = (await (await store.load_agent(grown.id)).messages())[-1]
        assert (last.content, last.native) == ("kept", None)
