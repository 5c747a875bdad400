"""Views built from rows without validation (``_store/_rows.py``) are the views validation would build.

Every read path of the store (history, lineage, load, load_agents, listing, children, find_by_name) is
compared, field by field and type by type, with views validated from the very same rows, and with the
values that were written, on SQLite and PostgreSQL, odd values included.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pydantic
import pytest
from sqlalchemy import event, select

from immagent import Message, PersistentAgent, Store, ToolCall
from immagent._orm import AGENTS
from immagent._store import _agents, _turns

ODD_METADATA: dict[str, Any] = {
    "unicode": "héllo 🌍 \ufffd 中文",
    "nested": {"list": [1, 2.5, -3, True, False, None], "empty": {}, "deep": {"a": {"b": [{}]}}},
    "big": 2**62,
    "float": 1e-300,
    "escaped": '"quotes" \\ back \\u0000 as six characters',
    "": "empty key",
}


def _odd_turn(head: Message | None) -> tuple[Message, ...]:
    """Messages with every field at an odd value: None and empty content, several tool calls, zero and
    huge token counts, a created_at given in another zone and one at the epoch."""
    depth = 0 if head is None else head.depth + 1
    parent = None if head is None else head.id
    user = Message(role="user", content="", parent_id=parent, depth=depth)
    calls = (
        ToolCall(id="call_1", name="weather", arguments='{"city": "Zürich 🌧"}'),
        ToolCall(id="c" * 200, name="n" * 64, arguments="{}"),
    )
    asking = Message(
        role="assistant",
        content=None,
        tool_calls=calls,
        input_tokens=0,
        output_tokens=2**31 - 1,
        parent_id=user.id,
        depth=depth + 1,
        created_at=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    )
    tool = Message(
        role="tool",
        content="line 1\nline 2\t\ufffd",
        tool_call_id="call_1",
        parent_id=asking.id,
        depth=depth + 2,
        created_at=datetime(1970, 1, 1, tzinfo=UTC),
    )
    reply = Message(role="assistant", content="x" * 10_000, parent_id=tool.id, depth=depth + 3)
    return user, asking, tool, reply


def _same(built: pydantic.BaseModel, validated: pydantic.BaseModel) -> None:
    """Equal as values, as payloads, field by field with the same types, and in what counts as set."""
    assert type(built) is type(validated)
    assert built == validated and validated == built
    assert built.model_dump() == validated.model_dump()
    assert built.model_dump_json() == validated.model_dump_json()
    assert built.model_fields_set == validated.model_fields_set == set(type(built).model_fields)
    for name in type(built).model_fields:
        mine, theirs = getattr(built, name), getattr(validated, name)
        assert mine == theirs, name
        assert type(mine) is type(theirs), name
        if isinstance(mine, datetime):
            assert mine.tzinfo is UTC and theirs.utcoffset() == timedelta(0), name
        if isinstance(mine, tuple):
            assert all(type(a) is type(b) for a, b in zip(mine, theirs, strict=True)), name
    with pytest.raises(pydantic.ValidationError):
        built.id = validated.id  # type: ignore[misc]  # frozen like a validated view


async def _validated_history(store: Store, head: Message, root_id: Any) -> list[Message]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(_agents.HISTORY, {"head_id": head.id, "root_id": root_id})).all()
    return [Message.model_validate(dict(row._mapping)) for row in rows]


async def _validated_agents(store: Store, *ids: Any) -> dict[Any, PersistentAgent]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(AGENTS).where(AGENTS.c.id.in_(ids)))).all()
    return {row.id: PersistentAgent.model_validate(dict(row._mapping)) for row in rows}


async def test_history_views_equal_validated_views_and_what_was_written(store: Store) -> None:
    root = await store.create_agent(
        name="odd", system_prompt="p", model="m", metadata=ODD_METADATA, model_settings={"temperature": 0.0}
    )
    written: list[Message] = []
    agent = root
    for _ in range(3):
        new = _odd_turn(written[-1] if written else None)
        agent = await _turns.commit(store, agent, tuple(written), new, None)
        written += new
    store.clear_cache()
    loaded = await store.load_agent(agent.id)
    history = await loaded.messages()

    assert history == tuple(written)
    validated = await _validated_history(store, written[-1], root.root_id)
    assert len(history) == len(validated) == 12
    for built, checked, original in zip(history, validated, written, strict=True):
        _same(built, checked)
        assert built == original and built.model_dump() == original.model_dump()
        assert hash(built) == hash(checked)
    assert history[1].tool_calls is not None and len(history[1].tool_calls) == 2
    assert history[0].tool_calls is None and history[0].content == ""
    assert history[1].created_at == datetime(2024, 2, 29, 18, 29, 59, 999999, tzinfo=UTC)


async def test_agent_views_from_every_read_path_equal_validated_views(store: Store) -> None:
    root = await store.create_agent(
        name="Odd %_ name 🌍", system_prompt="p", model="m", metadata=ODD_METADATA, model_settings={}
    )
    child = await _turns.commit(store, root, (), _odd_turn(None), None)
    meta = await child.with_metadata({"only": None})
    clone = await meta.clone()
    states = (root, child, meta, clone)
    validated = await _validated_agents(store, *(s.id for s in states))
    store.clear_cache()

    reads: list[tuple[PersistentAgent, ...]] = [
        await (await store.load_agent(clone.id)).lineage(),
        await store.load_agents([s.id for s in states]),
        await store.list_agents(name="odd %_"),
        await store.find_by_name("Odd %_ name 🌍"),
        await (await store.load_agent(child.id)).children(),
        (await store.load_agent(root.id),),
    ]
    for views in reads:
        assert views
        for view in views:
            _same(view, validated[view.id])
            assert view._store is store  # bound, unlike a validated view
    lineage = reads[0]
    assert [v.id for v in lineage] == [root.id, child.id, clone.id]  # the clone is meta's sibling
    by_id = {v.id: v for v in reads[1]}
    for state in states:  # equal to what was written (the views the writes returned)
        assert by_id[state.id] == state and by_id[state.id].model_dump() == state.model_dump()
    assert by_id[meta.id].metadata == {"only": None}
    assert by_id[root.id].metadata == ODD_METADATA


async def test_a_new_states_view_does_not_share_the_callers_dicts(store: Store) -> None:
    metadata: dict[str, Any] = {"k": "v"}
    settings: dict[str, Any] = {"temperature": 0.5}
    agent = await store.create_agent(
        name="a", system_prompt="p", model="m", metadata=metadata, model_settings=settings
    )
    changed = await agent.with_metadata(metadata)
    metadata["k"] = "changed"
    settings["temperature"] = 1.0
    assert agent.metadata == {"k": "v"} and changed.metadata == {"k": "v"}
    assert agent.model_settings == {"temperature": 0.5}


async def test_reads_on_postgresql_send_their_statement_alone_and_writes_keep_their_transaction(
    migrated_urls: dict[str, str],
) -> None:
    """asyncpg reads run in autocommit (one round trip, no BEGIN/ROLLBACK around it); a turn's inserts
    still run inside its transaction. Seen from asyncpg itself right after each statement."""
    seen: list[tuple[str, bool]] = []

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        driver = conn.connection.dbapi_connection.driver_connection
        seen.append((statement.split()[0].upper(), driver.is_in_transaction()))

    async with await Store.connect(migrated_urls["postgresql"]) as store:
        event.listen(store.engine.sync_engine, "after_cursor_execute", after)
        agent = await store.create_agent(name="r", system_prompt="p", model="m")
        state = await _turns.commit(store, agent, (), _odd_turn(None), None)
        writes = list(seen)
        store.clear_cache()
        seen.clear()
        loaded = await store.load_agent(state.id)
        await loaded.messages()
        await loaded.lineage()
        await store.list_agents()
    assert seen == [("SELECT", False), ("WITH", False), ("WITH", False), ("SELECT", False)]
    assert writes[-2:] == [("INSERT", True), ("INSERT", True)]


async def test_a_tenants_views_carry_its_tenant_like_validated_views(store: Store) -> None:
    scoped = store.tenant("acme")
    root = await scoped.create_agent(name="t", system_prompt="p", model="m", metadata={"k": 1})
    state = await _turns.commit(scoped, root, (), _odd_turn(None), None)
    validated = await _validated_agents(store, root.id, state.id)
    store.clear_cache()
    views = await (await scoped.load_agent(state.id)).lineage()
    assert [v.tenant for v in views] == ["acme", "acme"]
    for view in (*views, *await scoped.list_agents()):
        _same(view, validated[view.id])
