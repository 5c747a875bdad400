"""Drive LangGraph with its PostgreSQL checkpointer on the benchmark's workload; run by ``benchmarks.peers``.

This file runs in its own virtualenv (``benchmarks/.venv-langgraph``: langgraph, langgraph-checkpoint-
postgres, psycopg, litellm), under ``python -I``, so nothing of this repository is importable. The graph
is the plain chat graph: ``MessagesState``, one node that calls the model and appends its reply, so a
turn (``ainvoke`` with one user message) appends one message per step. Durability is LangGraph's
default (not set: ``"async"``). The model is LiteLLM's ``mock_response``, as for the original immagent.

Per length: the history is put in place with one ``aupdate_state``; timed turns each fork from that
same checkpoint (so every turn sees exactly that length); bytes per turn chain turns on the thread and
divide the growth of the checkpoint tables' ``pg_total_relation_size``; a cold load is a new saver's
``aget_state`` of the thread, messages materialised.

Usage: python -I _langgraph_driver.py DSN LENGTHS TURNS  ->  one JSON object on stdout.
"""

import asyncio
import importlib.metadata
import json
import statistics
import sys
import time

import litellm
from langchain_core.messages import AIMessage, HumanMessage, convert_to_openai_messages
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, MessagesState, StateGraph

REPLY = "echo: question 00000000: what is the weather like today?"
TABLES = ["checkpoints", "checkpoint_blobs", "checkpoint_writes"]
COLD_LOADS = 5


def user_text(i):
    return f"question {i:08d}: what is the weather like today?"


async def model(state):
    response = await litellm.acompletion(
        model="openai/gpt-4o-mini",
        messages=convert_to_openai_messages(state["messages"]),
        mock_response=REPLY,
    )
    return {"messages": [AIMessage(content=response.choices[0].message.content)]}


def build(saver):
    graph = StateGraph(MessagesState)
    graph.add_node("model", model)
    graph.add_edge(START, "model")
    graph.add_edge("model", END)
    return graph.compile(checkpointer=saver)


async def relation_bytes(saver):
    async with saver.conn.cursor() as cur:
        await cur.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relname = ANY(%s)", (TABLES,)
        )
        return int((await cur.fetchone())["sum"])


async def main(dsn, lengths, turns):
    rows = []
    async with AsyncPostgresSaver.from_conn_string(dsn) as saver:
        await saver.setup()
        async with saver.conn.cursor() as cur:
            for table in TABLES:
                await cur.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        graph = build(saver)
        for length in lengths:
            thread = {"configurable": {"thread_id": f"len{length}"}}
            history = []
            for i in range(length // 2):
                history += [HumanMessage(user_text(i)), AIMessage(f"echo: {user_text(i)}")]
            await graph.aupdate_state(thread, {"messages": history}, as_node="model")
            base = (await graph.aget_state(thread)).config
            await graph.ainvoke({"messages": [HumanMessage(user_text(0))]}, base)  # warm
            turn_s = []
            for i in range(turns):
                started = time.perf_counter()
                await graph.ainvoke({"messages": [HumanMessage(user_text(i))]}, base)
                turn_s.append(time.perf_counter() - started)

            chain = {"configurable": {"thread_id": f"chain{length}"}}
            await graph.aupdate_state(chain, {"messages": history}, as_node="model")
            await asyncio.sleep(0.5)  # async durability: let pending writes land before measuring
            before = await relation_bytes(saver)
            for i in range(turns):
                await graph.ainvoke({"messages": [HumanMessage(user_text(i))]}, chain)
            await asyncio.sleep(0.5)
            after = await relation_bytes(saver)

            cold_s = []
            async with AsyncPostgresSaver.from_conn_string(dsn) as fresh:
                cold_graph = build(fresh)
                for _ in range(COLD_LOADS):
                    started = time.perf_counter()
                    state = await cold_graph.aget_state(base)
                    messages = state.values["messages"]
                    cold_s.append(time.perf_counter() - started)
                assert len(messages) == length, (len(messages), length)
            rows.append(
                {
                    "length": length,
                    "turn_ms": statistics.median(turn_s) * 1000,
                    "relation_bytes_per_turn": (after - before) / turns,
                    "cold_load_ms": statistics.median(cold_s) * 1000,
                    "turns": turns,
                }
            )
    versions = {
        name: importlib.metadata.version(name)
        for name in ("langgraph", "langgraph-checkpoint-postgres", "psycopg", "litellm")
    }
    print(json.dumps({"versions": versions, "rows": rows}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], [int(x) for x in sys.argv[2].split(",")], int(sys.argv[3])))
