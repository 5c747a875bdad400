"""Figure 6: immagent side by side with what users would use instead, on the same workload, one run.

The peers are the original immagent (0.1.2 on PyPI, needs Python >= 3.13; it rewrites the whole
message-id array per turn) and LangGraph with its PostgreSQL checkpointer (a ``MessagesState`` graph
whose one node appends the model's reply, default durability). Each is installed with uv into its own
virtualenv (``benchmarks/.venv-original``, ``benchmarks/.venv-langgraph``; ``_peer_env.py``), driven
through its own API by a driver script in a subprocess (``_original_driver.py``,
``_langgraph_driver.py``) against its own fresh PostgreSQL database on the same server, and compared on
the same lengths: the cost of a turn, the bytes a turn adds to the tables (``pg_total_relation_size``)
and a cold load of the history. Their model is LiteLLM's ``mock_response``; ours is the scripted model
through LiteLLM's custom-provider path. Their numbers come from other processes at other moments than
ours, so compare growth, not single milliseconds. When a peer cannot be installed or run, the figure
says why instead of a number; ``--quick`` never installs or runs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks._peer_env import PeerEnv, ensure, run_driver
from benchmarks._support import (
    Backend,
    PostgresProvider,
    Settings,
    agent_with_history,
    median,
    migrated_store,
    ms,
    timed,
)

HERE = Path(__file__).resolve().parent
ORIGINAL = PeerEnv("original", ("immagent==0.1.2",), (3, 13), "immagent", "0.1.2")
LANGGRAPH = PeerEnv(
    "langgraph",
    ("langgraph", "langgraph-checkpoint-postgres", "psycopg[binary,pool]", "litellm"),
    (3, 10),
    "langgraph",
)
DRIVERS = {"original": HERE / "_original_driver.py", "langgraph": HERE / "_langgraph_driver.py"}
COLD_LOADS = 5


async def ours_cold_loads(backend: Backend, settings: Settings) -> dict[int, float]:
    """Our cold load of the history at each length (``messages()`` after ``clear_cache()``), in ms."""
    store = await migrated_store(backend.url)
    try:
        out: dict[int, float] = {}
        for length in settings.lengths:
            state = await agent_with_history(store, length, f"peers{length}")
            times = []
            for _ in range(COLD_LOADS):
                store.clear_cache()
                loaded = await store.load_agent(state.id)
                seconds, history = await timed(loaded.messages)
                assert len(history) == length
                times.append(seconds)
            out[length] = ms(median(times))
        return out
    finally:
        await store.close()


def _peer(name: str, env: PeerEnv, provider: PostgresProvider, settings: Settings) -> dict[str, Any]:
    python, status = ensure(env, create=True)
    if python is None:
        return {"status": status, "rows": []}
    database = provider.database(f"immagent_peer_{name}")
    try:
        dsn = database.url.replace("postgresql+asyncpg://", "postgresql://", 1)
        lengths = ",".join(map(str, settings.lengths))
        result, failure = run_driver(python, DRIVERS[name], dsn, lengths, str(settings.original_turns))
    finally:
        database.dispose()
    if result is None:
        return {"status": failure, "rows": []}
    return {"status": status, **result}


def run(
    provider: PostgresProvider | None, settings: Settings, ours: dict[str, Any], cold: dict[int, float]
) -> dict[str, Any]:
    """Run both peers (PostgreSQL) and pair their rows with ours (figures 1 and 2, and ``cold``)."""
    figure: dict[str, Any] = {
        "target": "side by side (no target): turn cost, bytes per turn and cold load against length",
        "pass": None,
        "rows": [],
        "peers": {},
    }
    if provider is None:
        figure["status"] = "PostgreSQL only (0.1.2 and LangGraph's checkpointer need it)"
        return figure
    if settings.quick:  # fresh processes importing LiteLLM cost 10-20 s here: not for the smoke run
        figure["status"] = "not run in --quick (a full run installs the peers and runs them)"
        return figure
    figure["status"] = "run"
    peers = {"original": _peer("original", ORIGINAL, provider, settings)}
    peers["langgraph"] = _peer("langgraph", LANGGRAPH, provider, settings)
    figure["peers"] = peers
    persist = {r["length"]: r for r in ours["persist"]["rows"]}
    sizes = {r["length"]: r for r in ours["bytes"]["rows"]}
    theirs = {name: {r["length"]: r for r in peer["rows"]} for name, peer in peers.items()}
    nan = float("nan")
    for length in settings.lengths:
        original = theirs["original"].get(length, {})
        langgraph = theirs["langgraph"].get(length, {})
        figure["rows"].append(
            {
                "length": length,
                "turn_ms": {
                    "immagent": persist[length]["advance_ms"],
                    "original": original.get("advance_ms", nan),
                    "langgraph": langgraph.get("turn_ms", nan),
                },
                "relation_bytes_per_turn": {
                    "immagent": sizes[length]["relation_bytes_per_turn"],
                    "original": original.get("relation_bytes_per_turn", nan),
                    "langgraph": langgraph.get("relation_bytes_per_turn", nan),
                },
                "cold_load_ms": {
                    "immagent": cold[length],
                    "original": original.get("cold_load_ms", nan),
                    "langgraph": langgraph.get("cold_load_ms", nan),
                },
                "statements_per_turn": {
                    "immagent": persist[length]["statements_per_turn"],
                    "original": original.get("statements_per_persist", nan),
                },
            }
        )
    return figure


NAMES = (("immagent", "ours"), ("original", "0.1.2"), ("langgraph", "LangGraph"))


def render(figure: dict[str, Any]) -> tuple[str, list[str], list[list[Any]], list[str]]:
    title = "6. Peers side by side, PostgreSQL: immagent, the original 0.1.2, LangGraph"
    if not figure["rows"]:
        return title, ["status"], [[figure["status"]]], []
    headers = ["length"]
    for what in ("turn ms", "B/turn", "cold load ms"):
        headers += [f"{what} {label}" for _, label in NAMES]
    rows = []
    for r in figure["rows"]:
        row: list[Any] = [r["length"]]
        for key in ("turn_ms", "relation_bytes_per_turn", "cold_load_ms"):
            row += [r[key][name] for name, _ in NAMES]
        rows.append(row)
    notes = [f"{name}: {peer['status']}" for name, peer in figure["peers"].items()]
    langgraph = figure["peers"].get("langgraph", {}).get("versions")
    if langgraph:
        notes.append("LangGraph versions: " + ", ".join(f"{k} {v}" for k, v in langgraph.items()))
    notes += [
        "turn: ours is agent.advance() (figure 1), 0.1.2 its agent.advance(), LangGraph graph.ainvoke() "
        "with one user message (default durability); medians. B/turn: growth of the tables' "
        "pg_total_relation_size per chained turn. cold load: the history read back with empty caches "
        "(ours: messages() after clear_cache(); 0.1.2: messages() after clear_cache(); LangGraph: a "
        "new saver's aget_state()).",
        "statements per turn, ours / 0.1.2: "
        + ", ".join(
            f"{r['length']}: {r['statements_per_turn']['immagent']} / {r['statements_per_turn']['original']}"
            for r in figure["rows"]
        )
        + " (0.1.2 rewrites the message-id array and re-inserts every cached message per turn).",
    ]
    return title, headers, rows, notes
