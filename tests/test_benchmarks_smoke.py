"""The benchmark's smoke run (``python -m benchmarks --quick``) on every backend, so it never rots.

It checks that every figure is measured and written, never the timing targets (the machine is shared).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks.run import main
from tests.support.mysql import MySQLServer
from tests.support.postgres import PostgresServer

BACKEND_FIGURES = ("persist", "bytes", "cold_load", "throughput", "workers", "peers", "threads")


def _positive(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_the_quick_benchmark_measures_and_writes_every_figure_on_every_backend(
    pg_server: PostgresServer,
    mysql_found: tuple[MySQLServer | None, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "bench.json"
    argv = ["--quick", "--backend", "all", "--url", pg_server.url(), "--json", str(out)]
    mysql, why = mysql_found
    if mysql is not None:
        argv += ["--mysql-url", mysql.url()]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    results = json.loads(out.read_text())

    expected = {"sqlite", "postgresql"} | ({"mysql"} if mysql is not None else set())
    assert set(results["backends"]) == expected
    if mysql is None:
        assert why in printed
    assert results["machine"]["cores"] >= 1 and results["machine"]["python"]
    for name, figures in results["backends"].items():
        assert set(BACKEND_FIGURES) <= set(figures), name
        for figure in BACKEND_FIGURES:
            assert figures[figure]["target"], (name, figure)
        persist = figures["persist"]["rows"]
        assert [r["length"] for r in persist] == results["settings"]["lengths"]
        for row in persist:
            for key in ("advance_ms", "own_cpu_ms", "litellm_call_ms", "persist_ms", "floor_ms", "ratio"):
                assert _positive(row[key]), (name, key, row)
            assert row["statements_per_turn"] >= 1
        assert _positive(figures["persist"]["flatness"])
        loads = figures["cold_load"]["rows"]
        lineage = results["settings"]["lineage"]
        assert [r["rows"] for r in loads] == [results["settings"]["history"], lineage, lineage]
        assert all(
            _positive(r["cold_ms"]) and _positive(r["core_rows_ms"]) and r["statements"] == 1 for r in loads
        )
        throughput = figures["throughput"]["rows"]
        assert len(throughput) == len(results["settings"]["agents"]) * len(results["settings"]["latencies"])
        assert all(_positive(r["turns_per_s"]) for r in throughput)
        assert figures["throughput"]["peak_checked_out"] <= figures["throughput"]["pool_size"]
        turns, paging = figures["threads"]["turns"], figures["threads"]["paging"]
        assert turns["statements"]["thread"] == turns["statements"]["plain"] + 1
        assert all(_positive(paging[k]) for k in ("first_ms", "keyset_ms", "offset_ms"))
        assert "status" in figures["peers"] and not figures["peers"]["rows"]  # peers: full runs only
        breakdown = figures["workers"]["breakdown"]
        assert all(_positive(breakdown[k]) for k in ("wall", "loop", "own", "call"))
        assert f"1. Persist cost per turn, {name}" in printed

    sizes = results["backends"]["postgresql"]["bytes"]["rows"]
    assert [r["length"] for r in sizes] == results["settings"]["lengths"]
    assert all(r["row_bytes_per_turn"] > 0 and r["relation_bytes_per_turn"] >= 0 for r in sizes)
    workers = results["backends"]["postgresql"]["workers"]["rows"]
    assert [r["workers"] for r in workers] == results["settings"]["workers"]
    assert all(_positive(r["turns_per_s"]) for r in workers)

    startup = results["startup"]
    assert _positive(startup["import_s"]) and startup["first_turn"]
    assert all(_positive(first["advance_s"]) for first in startup["first_turn"].values())
    assert "litellm" not in startup["heavy_modules_loaded_by_import"]
    assert set(results["verdicts"]) >= {f"{b}.{f}" for b in expected for f in BACKEND_FIGURES}


def test_the_inspectors_tree_benchmark_measures_every_shape_and_view(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from benchmarks.ui import main as ui_main

    assert ui_main(["--quick", "--backend", "sqlite"]) == 0
    printed = capsys.readouterr().out
    rows = [line.split("|")[1:-1] for line in printed.splitlines() if line.startswith("| SQLite")]
    assert [(r[1].strip(), r[2].strip()) for r in rows] == [
        (shape, view) for shape in ("linear", "chat", "bushy") for view in ("folded", "full")
    ]
    for row in rows:
        nodes, draw_ms, page_ms = int(row[4].replace(",", "")), float(row[5]), float(row[6].replace(",", ""))
        assert 0 < nodes <= 50 and draw_ms > 0 and page_ms > 0 and row[8].strip() in ("PASS", "MISS")
    assert "target: the tree page of 50 states in under 1 s" in printed
