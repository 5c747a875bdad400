"""Drive the ORIGINAL immagent (0.1.2, from PyPI) through its own API; run by ``benchmarks.original``.

This file runs in a separate virtualenv where ``immagent`` is the original package (it needs Python
3.13), under ``python -I`` so this repository's immagent is not importable. Nothing of the original is
copied here: the script only calls it. Its model is LiteLLM's own ``mock_response`` (passed as the
agent's ``model_config``, which the original forwards to ``litellm.acompletion``), so no network is used.

Usage: python -I _original_driver.py DSN LENGTHS TURNS  ->  one JSON object on stdout.
"""

import asyncio
import dataclasses
import importlib.metadata
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime

import immagent
import immagent.messages as messages

REPLY = "echo: question 00000000: what is the weather like today?"
TABLES = ["text_assets", "messages", "conversations", "agents"]


def user_text(i):
    return f"question {i:08d}: what is the weather like today?"


async def relation_bytes(store):
    async with store._pool.acquire() as conn:
        return int(
            await conn.fetchval(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relname = ANY($1)", TABLES
            )
        )


async def row_bytes(store, agent):
    async with store._pool.acquire() as conn:
        a = await conn.fetchval("SELECT pg_column_size(a.*) FROM agents a WHERE id = $1", agent.id)
        ids = await conn.fetchval(
            "SELECT message_ids FROM conversations WHERE id = $1", agent.conversation_id
        )
        c = await conn.fetchval(
            "SELECT pg_column_size(c.*) FROM conversations c WHERE id = $1", agent.conversation_id
        )
        m = await conn.fetchval(
            "SELECT sum(pg_column_size(m.*)) FROM messages m WHERE id = ANY($1)", list(ids[-2:])
        )
        return int(a) + int(c) + int(m)


async def agent_with_history(store, length):
    agent = await store.create_agent(
        name=f"len{length}",
        system_prompt="You are a helpful assistant. Answer briefly.",
        model="openai/gpt-4o-mini",
        model_config={"mock_response": REPLY},
    )
    history = []
    for i in range(length // 2):
        history.append(messages.Message.user(user_text(i)))
        history.append(
            messages.Message.assistant(content=f"echo: {user_text(i)}", input_tokens=10, output_tokens=5)
        )
    conversation = messages.Conversation.create(tuple(m.id for m in history))
    # Built without _evolve, which would register it: 0.1.2's registry is a WeakKeyDictionary keyed by
    # value-equal agents, so the agent loaded below would lose its store once this copy is collected.
    state = dataclasses.replace(
        agent,
        id=uuid.uuid4(),
        created_at=datetime.now(UTC),
        parent_id=agent.id,
        conversation_id=conversation.id,
    )
    async with store._pool.acquire() as conn, conn.transaction():
        if history:
            sql = history[0].to_insert_params()[0]
            await conn.executemany(sql, [m.to_insert_params()[1] for m in history])
        for asset in (conversation, state):
            sql, params = asset.to_insert_params()
            await conn.execute(sql, *params)
    store.clear_cache()
    return await store.load_agent(state.id)


async def main(dsn, lengths, turns):
    store = await immagent.Store.connect(dsn, min_size=1, max_size=5)
    await store.init_schema()
    async with store._pool.acquire() as conn:
        for table in TABLES:
            await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    statements = 0
    save_one = store._save_one

    async def counted(conn, asset):
        nonlocal statements
        statements += 1
        await save_one(conn, asset)

    store._save_one = counted
    rows = []
    for length in lengths:
        base = await agent_with_history(store, length)
        await base.advance(user_text(0))  # warm LiteLLM
        advance_s = []
        for i in range(turns):
            started = time.perf_counter()
            await base.advance(user_text(i))
            advance_s.append(time.perf_counter() - started)

        # The persist step as its advance does it: the history in hand, then _save(new agent).
        conversation = await store._get_conversation(base.conversation_id)
        history = await store._get_messages(conversation.message_ids)
        persist_s = []
        for i in range(turns):
            new = (
                messages.Message.user(user_text(i)),
                messages.Message.assistant(content=REPLY, input_tokens=10, output_tokens=5),
            )
            new_conversation = conversation.with_messages(*(m.id for m in new))
            state = base._evolve(new_conversation)
            store._cache_all(*new, new_conversation, state)
            statements = 0
            started = time.perf_counter()
            await store._save(state)
            persist_s.append(time.perf_counter() - started)
        persist_statements = statements
        del history

        agent = base
        before = await relation_bytes(store)
        for i in range(turns):
            agent = await agent.advance(user_text(i))
        after = await relation_bytes(store)

        cold_s = []
        for _ in range(5):  # the history after clear_cache(), as the peers' cold loads
            store.clear_cache()
            loaded = await store.load_agent(base.id)
            started = time.perf_counter()
            history = await loaded.messages()
            cold_s.append(time.perf_counter() - started)
        assert len(history) == length, (len(history), length)
        rows.append(
            {
                "length": length,
                "advance_ms": statistics.median(advance_s) * 1000,
                "persist_ms": statistics.median(persist_s) * 1000,
                "statements_per_persist": persist_statements,
                "relation_bytes_per_turn": (after - before) / turns,
                "row_bytes_per_turn": await row_bytes(store, agent),
                "cold_load_ms": statistics.median(cold_s) * 1000,
                "turns": turns,
            }
        )
    await store.close()
    print(json.dumps({"version": importlib.metadata.version("immagent"), "rows": rows}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], [int(x) for x in sys.argv[2].split(",")], int(sys.argv[3])))
