"""Figure 6: the original immagent (0.1.2 on PyPI) on the same workload, side by side with ours.

0.1.2 needs Python >= 3.13 and PostgreSQL (asyncpg). It is installed with uv into its own virtualenv
(``benchmarks/.venv-original``, not committed) and driven through its own API by
``_original_driver.py`` in a subprocess, against a fresh PostgreSQL database. When it cannot be
installed or run here, the figure says exactly why instead of a number.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks._support import Backend, Settings

VENV = Path(__file__).resolve().parent / ".venv-original"
DRIVER = Path(__file__).resolve().parent / "_original_driver.py"
REQUIREMENT = "immagent==0.1.2"


def _uv() -> str | None:
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.exists() else shutil.which("uv")


def _python() -> Path:
    return VENV / "bin" / "python"


def _works(candidate: str) -> bool:
    """True when ``candidate`` runs and is Python >= 3.13 (a pyenv shim may exist yet not run)."""
    try:
        done = subprocess.run(
            [candidate, "-c", "import sys; sys.exit(sys.version_info < (3, 13))"],
            capture_output=True,
            check=False,
            timeout=30,
        )
    except OSError:
        return False
    return done.returncode == 0


def _find_python(uv: str) -> str | None:
    """A Python >= 3.13 for 0.1.2: $IMMAGENT_ORIGINAL_PYTHON, uv's own search, PATH, pyenv's versions."""
    candidates = [os.environ.get("IMMAGENT_ORIGINAL_PYTHON", "")]
    found = subprocess.run([uv, "python", "find", ">=3.13"], capture_output=True, text=True, check=False)
    candidates.append(found.stdout.strip() if found.returncode == 0 else "")
    candidates += [shutil.which(f"python3.{minor}") or "" for minor in range(13, 20)]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += [str(p) for p in sorted(pyenv.glob("3.1[3-9]*/bin/python3"), reverse=True)]
    return next((c for c in candidates if c and _works(c)), None)


def ensure_venv(create: bool) -> tuple[Path | None, str]:
    """The original's interpreter, installing it first when ``create``; else (None, why not)."""
    python = _python()
    if python.exists():
        check = subprocess.run(
            [
                str(python),
                "-I",
                "-c",
                "import immagent, importlib.metadata as m; print(m.version('immagent'))",
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
        )
        if check.returncode == 0 and check.stdout.strip() == REQUIREMENT.split("==")[1]:
            return python, f"immagent {check.stdout.strip()} in {VENV.name}"
    if not create:
        return (
            None,
            f"not run: {VENV.name} does not exist yet and --quick does not install it (a full run does)",
        )
    uv = _uv()
    if uv is None:
        return None, "cannot install: uv is not available to build its virtualenv"
    interpreter = _find_python(uv)
    if interpreter is None:
        return (
            None,
            "cannot install: immagent 0.1.2 requires Python >= 3.13 "
            "and no such interpreter is installed here",
        )
    steps = [
        [uv, "venv", "--quiet", "--python", interpreter, str(VENV)],
        [uv, "pip", "install", "--quiet", "--python", str(python), REQUIREMENT],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            return None, f"cannot install: `{' '.join(step[1:3])}` failed: {tail}"
    return python, f"immagent 0.1.2 installed into {VENV.name} with Python {interpreter}"


def run(backend: Backend, settings: Settings, ours: dict[str, Any]) -> dict[str, Any]:
    """Run the original on ``backend`` (a fresh PostgreSQL database) and pair its rows with ours."""
    figure: dict[str, Any] = {
        "target": "side by side (no target): per-turn cost and bytes per turn against length",
        "pass": None,
        "rows": [],
    }
    if settings.quick:  # a fresh process importing LiteLLM costs 10-20 s here: not for the smoke run
        figure["status"] = "not run in --quick (a full run installs immagent 0.1.2 and runs it)"
        return figure
    python, how = ensure_venv(create=True)
    figure["status"] = how
    if python is None:
        return figure
    dsn = backend.url.replace("postgresql+asyncpg://", "postgresql://", 1)
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [
            str(python),
            "-I",
            str(DRIVER),
            dsn,
            ",".join(map(str, settings.lengths)),
            str(settings.original_turns),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        check=False,
        timeout=1800,
    )
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])
        figure["status"] = f"installed but failed to run: {tail}"
        return figure
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    persist = {r["length"]: r for r in ours["persist"]["rows"]}
    sizes = {r["length"]: r for r in ours["bytes"]["rows"]}
    for row in theirs["rows"]:
        length = row["length"]
        figure["rows"].append(
            {
                "length": length,
                "ours_advance_ms": persist[length]["advance_ms"],
                "original_advance_ms": row["advance_ms"],
                "ours_persist_ms": persist[length]["persist_ms"],
                "original_persist_ms": row["persist_ms"],
                "ours_statements": persist[length]["statements_per_turn"],
                "original_statements": row["statements_per_persist"],
                "ours_relation_bytes_per_turn": sizes[length]["relation_bytes_per_turn"],
                "original_relation_bytes_per_turn": row["relation_bytes_per_turn"],
                "ours_row_bytes_per_turn": sizes[length]["row_bytes_per_turn"],
                "original_row_bytes_per_turn": row["row_bytes_per_turn"],
                "original_turns": row["turns"],
            }
        )
    return figure


def render(figure: dict[str, Any]) -> tuple[str, list[str], list[list[Any]], list[str]]:
    title = "6. The original immagent 0.1.2 vs ours, PostgreSQL"
    if not figure["rows"]:
        return title, ["status"], [[figure["status"]]], []
    headers = [
        "length",
        "advance ms ours",
        "advance ms 0.1.2",
        "persist ms ours",
        "persist ms 0.1.2",
        "statements ours",
        "statements 0.1.2",
        "relation B/turn ours",
        "relation B/turn 0.1.2",
        "row B/turn ours",
        "row B/turn 0.1.2",
    ]
    keys = [
        "length",
        "ours_advance_ms",
        "original_advance_ms",
        "ours_persist_ms",
        "original_persist_ms",
        "ours_statements",
        "original_statements",
        "ours_relation_bytes_per_turn",
        "original_relation_bytes_per_turn",
        "ours_row_bytes_per_turn",
        "original_row_bytes_per_turn",
    ]
    rows = [[r[k] for k in keys] for r in figure["rows"]]
    notes = [
        f"{figure['status']}; driven through its own API (model: LiteLLM mock_response), "
        f"{figure['rows'][0]['original_turns']} turns per length, medians; ours from figures 1 and 2.",
        "0.1.2 rewrites the whole message-id array per turn and re-inserts every cached history message "
        "(ON CONFLICT DO NOTHING), so its cost and bytes grow with the length.",
    ]
    return title, headers, rows, notes
