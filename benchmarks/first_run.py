"""``python -m benchmarks.first_run [--times N] [--cold-cache]``: the README's first command on a fresh clone.

What a new user waits for: a fresh ``git clone`` of this checkout into a temp folder, then the README's
first command, split into its steps: the virtual environment with nox, ``nox -s demo`` the first time
(it installs immagent and its dependencies, with bytecode compiled at install time, then runs the demo)
and again (environment reused). The demo's own time is read from its ``Done in`` line, and the demo is
also run straight from the environment's ``immagent`` script, without nox, ``--times`` times (median).
``--cold-cache`` gives uv an empty cache, so every package is downloaded as on a new machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._support import ROOT, median, table

DONE = re.compile(r"Done in ([0-9.]+)s")
TARGET_S = 10.0


def _timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of one command, and its output; a failure stops the benchmark with that output."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed, done.stdout + done.stderr


def _demo_seconds(output: str) -> float:
    found = DONE.search(output)
    return float(found.group(1)) if found else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.first_run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--times", type=int, default=3, help="warm runs of the demo itself (default 3)")
    parser.add_argument("--cold-cache", action="store_true", help="an empty uv cache: download every package")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="immagent-first-run-") as tmp:
        clone = Path(tmp) / "immagent"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IMMAGENT_", "VIRTUAL_ENV"))}
        if args.cold_cache:
            env["UV_CACHE_DIR"] = str(Path(tmp) / "uv-cache")
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        venv, _ = _timed([sys.executable, "-m", "venv", ".venv"], clone, env)
        pip, _ = _timed([".venv/bin/pip", "install", "-q", "nox[uv]"], clone, env)
        first, out_first = _timed([".venv/bin/nox", "-s", "demo"], clone, env)
        (clone / "immagent.db").unlink()
        second, out_second = _timed([".venv/bin/nox", "-s", "demo"], clone, env)
        direct: list[float] = []
        inner: list[float] = []
        for _ in range(args.times):
            (clone / "immagent.db").unlink()
            seconds, output = _timed([".nox/demo/bin/immagent", "demo"], clone, env)
            direct.append(seconds)
            inner.append(_demo_seconds(output))
        shutil.rmtree(clone / ".nox", ignore_errors=True)
    rows = [
        ["python -m venv .venv", venv, "-"],
        ["pip install nox[uv]", pip, "-"],
        ["nox -s demo, first run (installs, then the demo)", first, _demo_seconds(out_first)],
        ["nox -s demo, second run (environment reused)", second, _demo_seconds(out_second)],
        [f"immagent demo, without nox (median of {args.times})", median(direct), median(inner)],
    ]
    load = os.getloadavg()[0]
    notes = [
        f"target: the demo itself under {TARGET_S:g} s on the first run "
        f"({'PASS' if _demo_seconds(out_first) < TARGET_S else 'MISS'})",
        f"uv cache: {'empty (every package downloaded)' if args.cold_cache else 'as this machine has it'}; "
        f"load average at the end: {load:.1f}; {os.cpu_count()} cores",
    ]
    print(
        table(
            "First run: the README's first command on a fresh clone",
            ["step", "wall s", "demo's own s"],
            rows,
            notes,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
