"""Figure 5: ``import immagent`` time, and the latency of a first turn in a fresh process.

The import is timed as a subprocess ``python -c "import immagent"`` minus a bare ``python -c pass``
(median of several), and the same subprocess reports which heavy packages the import pulled in. The
first turn is a fresh process that connects, creates an agent and advances it once with the scripted
model; it reports each step, so the lazy imports of SQLAlchemy and LiteLLM show where they land.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from benchmarks._support import ROOT, Settings, median, verdict

IMPORT_TARGET_S = 0.3
HEAVY = ("litellm", "mcp", "sqlalchemy", "alembic", "asyncpg", "aiosqlite", "pydantic")

FIRST_TURN = """
import time
t0 = time.perf_counter()
import asyncio, json, sys
import immagent
t_import = time.perf_counter()
from immagent.testing import ScriptedModel

async def main(url):
    t1 = time.perf_counter()
    store = await immagent.Store.connect(url)
    t2 = time.perf_counter()
    agent = await store.create_agent(name="first", system_prompt="p", model="immagent/first")
    t3 = time.perf_counter()
    ScriptedModel(name="first").install()
    t4 = time.perf_counter()
    agent = await agent.advance("hello")
    t5 = time.perf_counter()
    await store.close()
    print(json.dumps({"import_s": t_import - t0, "connect_s": t2 - t1, "create_s": t3 - t2,
                      "install_model_s": t4 - t3, "advance_s": t5 - t4, "in_process_s": t5 - t0}))

asyncio.run(main(sys.argv[1]))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["PYTHONPATH"] = str(ROOT)
    return env


def _wall(args: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=_env(), cwd=ROOT, check=True)
    return time.perf_counter() - started, done.stdout


def run(urls: dict[str, str], settings: Settings) -> dict[str, Any]:
    """Import time once; the first turn on each backend in ``urls`` (on the first only with --quick,
    since each fresh process pays LiteLLM's import again)."""
    runs = max(settings.startup_runs, 3) if not settings.quick else 2
    bare: list[float] = []
    imported: list[float] = []
    for _ in range(runs):  # interleaved, so both see the same machine
        bare.append(_wall([sys.executable, "-c", "pass"])[0])
        imported.append(_wall([sys.executable, "-c", "import immagent"])[0])
    probe = f"import sys, immagent, json; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    loaded = json.loads(_wall([sys.executable, "-c", probe])[1])
    import_s = median(imported) - median(bare)

    first_turn: dict[str, dict[str, float]] = {}
    for name, url in list(urls.items())[: 1 if settings.quick else None]:
        first: list[dict[str, float]] = []
        walls: list[float] = []
        for _ in range(settings.startup_runs):
            wall, out = _wall([sys.executable, "-c", FIRST_TURN, url])
            walls.append(wall)
            first.append(json.loads(out.strip().splitlines()[-1]))
        first_turn[name] = {
            **{key: median(r[key] for r in first) for key in first[0]},
            "process_wall_s": median(walls),
        }
    return {
        "target": f"import immagent < {IMPORT_TARGET_S} s, without LiteLLM or MCP",
        "import_s": import_s,
        "bare_python_s": median(bare),
        "heavy_modules_loaded_by_import": loaded,
        "first_turn": first_turn,
        "runs": runs,
        "first_turn_runs": settings.startup_runs,
        "pass": import_s < IMPORT_TARGET_S and not ({"litellm", "mcp"} & set(loaded)),
    }


def render(figure: dict[str, Any]) -> tuple[str, list[str], list[list[Any]], list[str]]:
    rows: list[list[Any]] = [
        ["import immagent", figure["import_s"], f"< {IMPORT_TARGET_S}", verdict(figure["pass"])],
        [
            "  heavy modules it loads",
            ", ".join(figure["heavy_modules_loaded_by_import"]) or "none",
            "no litellm/mcp",
            "",
        ],
    ]
    for backend, first in figure["first_turn"].items():
        rows += [
            [f"first turn, fresh process ({backend}): import", first["import_s"], "", ""],
            ["  Store.connect (imports SQLAlchemy, opens the pool)", first["connect_s"], "", ""],
            ["  create_agent (schema check + insert)", first["create_s"], "", ""],
            ["  ScriptedModel().install() (imports LiteLLM)", first["install_model_s"], "", ""],
            ["  first advance", first["advance_s"], "", ""],
            ["  whole process, wall", first["process_wall_s"], "", ""],
        ]
    return (
        "5. Import time and first-turn latency",
        ["what", "seconds", "target", "verdict"],
        rows,
        [
            f"import: median of {figure['runs']} subprocesses minus a bare `python -c pass` "
            f"({figure['bare_python_s']:.3f} s)."
        ],
    )
