"""A peer library's own virtualenv, made with uv from PyPI: what the peers figure runs them in.

Each peer (the original immagent 0.1.2, LangGraph with its PostgreSQL checkpointer) gets its own
``benchmarks/.venv-<name>`` (not committed), so its dependencies never meet ours; its driver script runs
there under ``python -I``. When a peer cannot be installed here, the reason is returned instead of a path,
and the figure prints it in place of numbers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class PeerEnv:
    """Where a peer lives and what it needs: the requirements, the oldest Python it runs on, and the
    distribution whose version proves an existing virtualenv is complete."""

    name: str
    requirements: tuple[str, ...]
    min_python: tuple[int, int]
    probe: str
    probe_version: str | None = None  # the exact version wanted, when pinned

    @property
    def venv(self) -> Path:
        return HERE / f".venv-{self.name}"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


def _uv() -> str | None:
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.exists() else shutil.which("uv")


def _works(candidate: str, minimum: tuple[int, int]) -> bool:
    """True when ``candidate`` runs and is at least ``minimum`` (a pyenv shim may exist yet not run)."""
    try:
        done = subprocess.run(
            [candidate, "-c", f"import sys; sys.exit(sys.version_info < {minimum!r})"],
            capture_output=True,
            check=False,
            timeout=30,
        )
    except OSError:
        return False
    return done.returncode == 0


def _find_python(uv: str, minimum: tuple[int, int]) -> str | None:
    """A Python >= ``minimum``: $IMMAGENT_PEER_PYTHON, this one, uv's own search, PATH, pyenv's versions."""
    major, minor = minimum
    candidates = [os.environ.get("IMMAGENT_PEER_PYTHON", ""), os.environ.get("IMMAGENT_ORIGINAL_PYTHON", "")]
    candidates.append(sys.executable if sys.version_info >= minimum else "")
    found = subprocess.run(
        [uv, "python", "find", f">={major}.{minor}"], capture_output=True, text=True, check=False
    )
    candidates.append(found.stdout.strip() if found.returncode == 0 else "")
    candidates += [shutil.which(f"python{major}.{m}") or "" for m in range(minor, 20)]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += [str(p) for p in sorted(pyenv.glob(f"{major}.*/bin/python3"), reverse=True)]
    return next((c for c in candidates if c and _works(c, minimum)), None)


def _installed(env: PeerEnv) -> str | None:
    """The probe's version in an existing virtualenv, or None."""
    if not env.python.exists():
        return None
    probe = f"import importlib.metadata as m; print(m.version({env.probe!r}))"
    check = subprocess.run(
        [str(env.python), "-I", "-c", probe], capture_output=True, text=True, check=False, cwd="/"
    )
    return check.stdout.strip() if check.returncode == 0 else None


def ensure(env: PeerEnv, create: bool) -> tuple[Path | None, str]:
    """The peer's interpreter, installing it first when ``create``; else (None, why not)."""
    version = _installed(env)
    if version is not None and env.probe_version in (None, version):
        return env.python, f"{env.probe} {version} in {env.venv.name}"
    if not create:
        return None, f"not run: {env.venv.name} does not exist yet and --quick does not install it"
    uv = _uv()
    if uv is None:
        return None, "cannot install: uv is not available to build its virtualenv"
    interpreter = _find_python(uv, env.min_python)
    if interpreter is None:
        wanted = ".".join(map(str, env.min_python))
        return None, f"cannot install: {env.probe} needs Python >= {wanted} and none is installed here"
    steps = [
        [uv, "venv", "--quiet", "--python", interpreter, str(env.venv)],
        [uv, "pip", "install", "--quiet", "--python", str(env.python), *env.requirements],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            return None, f"cannot install: `{' '.join(step[1:3])}` failed: {tail}"
    return env.python, f"{env.probe} {_installed(env)} installed into {env.venv.name} with {interpreter}"


def run_driver(python: Path, driver: Path, *args: str, timeout: float = 1800) -> tuple[dict | None, str]:
    """Run a peer's driver script in its virtualenv; (its JSON line, "") or (None, why it failed)."""
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [str(python), "-I", str(driver), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        check=False,
        timeout=timeout,
    )
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])
        return None, f"installed but failed to run: {tail}"
    import json

    return json.loads(done.stdout.strip().splitlines()[-1]), ""
