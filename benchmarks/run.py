"""``python -m benchmarks [--quick] [--backend sqlite|postgresql|mysql|all] [--url URL] [--mysql-url URL]
[--json PATH]``.

Runs every figure on each backend, prints one table per figure with its target and PASS/MISS beside it,
and writes everything (with the machine it ran on) as JSON. PostgreSQL comes from ``--url``, else
$IMMAGENT_TEST_DATABASE_URL, else a server started the way the test suite starts one; MySQL/MariaDB from
``--mysql-url``, else $IMMAGENT_TEST_MYSQL_URL, else 127.0.0.1:3306 (``all`` leaves it out, saying why,
when none answers). The benchmark creates its own databases on each server and drops them afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import loads, peers, persist, startup, threads, throughput, workers
from benchmarks._support import (
    ROOT,
    Backend,
    MySQLProvider,
    PostgresProvider,
    Settings,
    machine,
    sqlite_backend,
    table,
    write_json,
)

BACKEND_FIGURES = ("persist", "bytes", "cold_load", "throughput", "workers", "peers", "threads")
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "latest.json"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: the smoke run of the test suite")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "mysql", "all"), default="all")
    parser.add_argument(
        "--url", help="PostgreSQL server URL (default: $IMMAGENT_TEST_DATABASE_URL, else start one)"
    )
    parser.add_argument(
        "--mysql-url",
        help="MySQL/MariaDB server URL (default: $IMMAGENT_TEST_MYSQL_URL, else 127.0.0.1:3306 if up)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        help=f"where to write the results ({DEFAULT_JSON.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--skip-peers",
        "--skip-original",
        dest="skip_peers",
        action="store_true",
        help="do not install or run the peers (the original immagent 0.1.2, LangGraph)",
    )
    return parser.parse_args(argv)


def _print(block: tuple[str, list[str], list[list[Any]], list[str]], target: str | None = None) -> str:
    title, headers, rows, notes = block
    notes = [f"target: {target}", *notes] if target else list(notes)
    rendered = table(title, headers, rows, notes)
    print(rendered, flush=True)
    return rendered


async def _ours(backend: Backend, settings: Settings) -> dict[str, Any]:
    figures = await persist.run(backend, settings)
    figures.pop("bases")
    figures["cold_load"] = await loads.run(backend, settings)
    figures["throughput"] = await throughput.run(backend, settings)
    figures["breakdown"] = await workers.breakdown(backend, settings)
    figures["threads"] = await threads.run(backend, settings)
    if backend.is_pg and not settings.quick:
        figures["peer_cold"] = await peers.ours_cold_loads(backend, settings)
    return figures


def run_backend(
    name: str,
    backend: Backend,
    settings: Settings,
    provider: PostgresProvider | None,
    args: argparse.Namespace,
) -> tuple[dict[str, Any], list[str]]:
    """Figures 1-4 and 6 on one backend (figure 5 is run once for all, in ``main``); the peers of
    figure 6 run on PostgreSQL only."""
    out: list[str] = []
    started = time.perf_counter()
    figures = asyncio.run(_ours(backend, settings))
    for block in persist.render(name, figures["persist"], figures["bytes"]):
        target = figures["persist"]["target"] if block[0].startswith("1.") else figures["bytes"]["target"]
        out.append(_print(block, target))
    out.append(_print(loads.render(name, figures["cold_load"]), figures["cold_load"]["target"]))
    out.append(_print(throughput.render(name, figures["throughput"]), figures["throughput"]["target"]))
    breakdown = figures.pop("breakdown")
    if backend.is_pg:
        figures["workers"] = workers.run(backend, settings, breakdown)
    else:
        figures["workers"] = {
            "target": "run on PostgreSQL (on SQLite, processes queue on the file's one write lock)",
            "breakdown": breakdown,
            "rows": [],
            "pass": None,
        }
    for block in workers.render(name, figures["workers"]):
        out.append(_print(block, figures["workers"]["target"] if block[0].startswith("4c") else None))
    cold = figures.pop("peer_cold", {})
    if provider is not None and args.skip_peers:
        figures["peers"] = {
            "rows": [],
            "pass": None,
            "target": "side by side (no target)",
            "status": "not run: --skip-peers",
        }
    else:
        figures["peers"] = peers.run(provider, settings, figures, cold)
    if provider is not None:
        out.append(_print(peers.render(figures["peers"])))
    out.append(_print(threads.render(name, figures["threads"]), figures["threads"]["target"]))
    figures["seconds"] = time.perf_counter() - started
    figures["database"] = backend.version
    return figures, out


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    settings = Settings.for_run(args.quick)
    names = ("sqlite", "postgresql", "mysql") if args.backend == "all" else (args.backend,)
    started = time.perf_counter()
    provider = PostgresProvider(args.url) if "postgresql" in names else None
    mysql = MySQLProvider(args.mysql_url) if "mysql" in names else None
    if mysql is not None and mysql.server is None:
        if args.backend == "mysql":
            raise SystemExit(mysql.why)
        print(mysql.why, flush=True)
        names = tuple(n for n in names if n != "mysql")
    results: dict[str, Any] = {
        "command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
        "quick": args.quick,
        "machine": machine(),
        "postgresql_server": provider.describe() if provider else None,
        "mysql_server": mysql.why if mysql else None,
        "settings": settings.__dict__,
        "backends": {},
    }
    tables: list[str] = []
    backends: dict[str, Backend] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="immagent-bench-") as folder:
            for name in names:
                if name == "postgresql" and provider:
                    backends[name] = provider.database()
                elif name == "mysql" and mysql:
                    backends[name] = mysql.database()
                else:
                    backends[name] = sqlite_backend(Path(folder))
                print(f"## {name} ({backends[name].version})\n", flush=True)
                figures, rendered = run_backend(
                    name, backends[name], settings, provider if name == "postgresql" else None, args
                )
                results["backends"][name] = figures
                tables += [f"## {name} ({backends[name].version})\n", *rendered]
            results["startup"] = startup.run({n: b.url for n, b in backends.items()}, settings)
            tables.append(_print(startup.render(results["startup"]), results["startup"]["target"]))
            for backend in backends.values():
                backend.dispose()
    finally:
        if provider is not None:
            provider.close()
        if mysql is not None:
            mysql.close()
    results["seconds"] = time.perf_counter() - started
    results["tables_markdown"] = "\n".join(tables)
    verdicts = {
        f"{name}.{figure}": figures[figure].get("pass")
        for name, figures in results["backends"].items()
        for figure in BACKEND_FIGURES
    }
    verdicts["startup"] = results["startup"]["pass"]
    results["verdicts"] = verdicts
    write_json(args.json, results)
    summary = ", ".join(
        f"{k}={'PASS' if v else 'MISS' if v is False else 'n/a'}" for k, v in verdicts.items()
    )
    print(f"summary: {summary}\nwrote {args.json} in {results['seconds']:.0f} s", flush=True)
    return 0
