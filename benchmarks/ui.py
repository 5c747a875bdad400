"""``python -m benchmarks.ui [--quick] [--states N] [--backend sqlite|postgresql|all] [--url URL]``: how long
the inspector takes to draw a family tree of N states (default 1,000; target: under a second).

For three shapes of tree (one long chat; a chat with branches, clones and a metadata change; a bushy tree
grown from random earlier states), folded (linear runs collapsed) and full (every state a node), it times:

- draw: from the tree's views to the page's HTML (labels, layout, the SVG template), no database;
- page: the whole request, ``GET /state/{tip}/tree`` through the inspector's ASGI app (lifespan opened
  once, as a served instance has it): the store's reads (the state, ``tree()``, ``tree_messages()``,
  ``threads_pointing_at()``), the drawing, and the response.

Each figure is the median of several runs after a warm-up run; the machine is shared, so the figures are
noisy: compare them with the target, not with each other's last digit.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._support import Backend, PostgresProvider, sqlite_backend, table
from immagent import Store
from immagent.ui import create_app
from immagent.ui._app import templates
from immagent.ui._family import family
from immagent.ui._graph import draw
from tests.support.trees import Shape, store_tree, synthetic_tree

TARGET_S = 1.0
SHAPES: tuple[Shape, ...] = ("linear", "chat", "bushy")


def _median_s(work: Callable[[], object], runs: int) -> float:
    work()  # warm-up: templates compiled, caches filled
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def drawing_s(n: int, shape: Shape, full: bool, runs: int) -> tuple[float, int]:
    """Seconds from views to HTML, and the nodes drawn."""
    states, messages, _ = synthetic_tree(n, shape)
    page = templates().get_template("tree.html")
    drawn = draw(family(states, messages, {}), current=states[-1].id, full=full)

    def work() -> None:
        fam = family(states, messages, {})
        drawing = draw(fam, current=states[-1].id, full=full)
        tips = [m for m in fam.members.values() if not m.children or m.threads]
        page.render(ctx={"tenant": "default", "database": ""}, agent=states[-1], drawing=drawing, full=full,
                    tips=tips)  # fmt: skip

    return _median_s(work, runs), len(drawn.nodes)


async def _seed(url: str, n: int) -> dict[Shape, str]:
    """One tree per shape in a migrated database; the id of each tree's newest state."""
    tips: dict[Shape, str] = {}
    async with await Store.connect(url) as store:
        await store.migrate()
        for seed, shape in enumerate(SHAPES):
            states = await store_tree(store, n, shape, seed=seed, name=f"bench {shape}")
            await store.create_thread(f"bench/{shape}", states[-1])
            tips[shape] = str(states[-1].id)
    return tips


def page_s(backend: Backend, n: int, runs: int) -> dict[tuple[Shape, bool], tuple[float, int]]:
    """Seconds per whole tree request, and the response's size, per (shape, full)."""
    from starlette.testclient import TestClient

    tips = asyncio.run(_seed(backend.url, n))
    found: dict[tuple[Shape, bool], tuple[float, int]] = {}
    with TestClient(create_app(backend.url), base_url="http://127.0.0.1") as client:
        for shape in SHAPES:
            for full in (False, True):
                path = f"/state/{tips[shape]}/tree" + ("?full=1" if full else "")
                size = len(client.get(path).content)

                def work(path: str = path) -> None:
                    response = client.get(path)
                    assert response.status_code == 200, response.text

                found[(shape, full)] = (_median_s(work, runs), size)
    return found


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    runs = 3 if args.quick else 7
    n = args.states or (50 if args.quick else 1000)
    names = ("sqlite", "postgresql") if args.backend == "all" else (args.backend,)
    rows: list[dict[str, Any]] = []
    provider = PostgresProvider(args.url) if "postgresql" in names else None
    try:
        with tempfile.TemporaryDirectory(prefix="immagent-bench-ui-") as folder:
            for name in names:
                backend = (
                    provider.database("immagent_bench_ui") if provider and name == "postgresql" else None
                )
                backend = backend or sqlite_backend(Path(folder), "ui")
                try:
                    pages = page_s(backend, n, runs)
                finally:
                    backend.dispose()
                for shape in SHAPES:
                    for full in (False, True):
                        drawn_s, nodes = drawing_s(n, shape, full, runs)
                        page, size = pages[(shape, full)]
                        rows.append(
                            {
                                "backend": backend.version,
                                "shape": shape,
                                "view": "full" if full else "folded",
                                "states": n,
                                "nodes": nodes,
                                "draw_ms": drawn_s * 1000,
                                "page_ms": page * 1000,
                                "kib": size / 1024,
                                "pass": page < TARGET_S,
                            }
                        )
    finally:
        if provider is not None:
            provider.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ui", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 states, 3 runs: the smoke run")
    parser.add_argument("--states", type=int, default=None, help="states per tree (default 1,000)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "all"), default="sqlite")
    parser.add_argument(
        "--url", help="PostgreSQL server URL (default: $IMMAGENT_TEST_DATABASE_URL, else start one)"
    )
    args = parser.parse_args(argv)
    rows = run(args)
    headers = [
        "database",
        "shape",
        "view",
        "states",
        "nodes drawn",
        "draw ms",
        "page ms",
        "page KiB",
        "< 1 s",
    ]
    cells = [
        [
            r["backend"],
            r["shape"],
            r["view"],
            r["states"],
            r["nodes"],
            r["draw_ms"],
            r["page_ms"],
            r["kib"],
            "PASS" if r["pass"] else "MISS",
        ]
        for r in rows
    ]
    notes = [
        f"target: the tree page of {rows[0]['states']:,} states in under {TARGET_S:.0f} s (page ms)",
        "draw: views -> labels, layout, SVG and HTML (no database); page: GET /state/{tip}/tree, whole",
        f"median of {3 if args.quick else 7} runs after a warm-up; Python {sys.version.split()[0]}",
    ]
    print(table("Inspector: drawing a family tree", headers, cells, notes), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
