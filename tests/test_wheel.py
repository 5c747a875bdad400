"""The built wheel, installed into a fresh virtual environment with no checkout on the path, runs its
migrations (``immagent db upgrade``, and a host's alembic.ini naming ``immagent:migrations``) and a
create/advance script with the offline scripted model, on SQLite, PostgreSQL and MySQL/MariaDB (the wheel
is installed with its ``mysql`` extra).

Building and installing take a few seconds with uv and its cache (uv comes with the dev extras); without
uv, ``python -m build`` and pip do the same, slower.
"""

from __future__ import annotations

import shutil
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from immagent._migrations import HEAD_REVISION
from tests.support.db import BACKENDS, empty_database
from tests.support.schema import REPO, run

SCRIPT = """\
import asyncio
import sys

import immagent
from immagent import Store
from immagent.testing import ScriptedModel

assert "site-packages" in immagent.__file__, immagent.__file__


async def main(url: str) -> None:
    model = ScriptedModel().install()
    model.reply("hello from the wheel", input_tokens=7, output_tokens=3)
    async with await Store.connect(url) as store:
        agent = await store.create_agent(name="wheel", system_prompt="be brief", model=model.model)
        new = await agent.advance("hi")
    async with await Store.connect(url) as store:
        again = await store.load_agent(new.id)
        print(immagent.__file__)
        print(again.parent_id == agent.id, await again.last_response(), await again.token_usage())


asyncio.run(main(sys.argv[1]))
"""


@dataclass(frozen=True)
class Installed:
    wheel: Path
    bin: Path
    seconds: float  # build + venv + install

    def tool(self, name: str) -> str:
        return str(self.bin / name)


def _uv() -> str | None:
    try:
        from uv import find_uv_bin
    except ImportError:
        return shutil.which("uv")
    return str(find_uv_bin())


def _check(argv: list[str], cwd: Path) -> None:
    import subprocess

    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{argv[:3]} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """immagent's wheel (with its mysql extra), built from this checkout, installed into a new virtual env."""
    root = tmp_path_factory.mktemp("wheel")
    dist, venv = root / "dist", root / "venv"
    started = time.monotonic()
    uv = _uv()
    if uv is not None:
        _check([uv, "build", "--wheel", "--out-dir", str(dist), str(REPO)], cwd=root)
        _check([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=root)
        wheel = next(dist.glob("immagent-*.whl"))
        _check(
            [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), f"{wheel}[mysql]"],
            cwd=root,
        )
    else:
        _check([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(REPO)], cwd=root)
        _check([sys.executable, "-m", "venv", str(venv)], cwd=root)
        wheel = next(dist.glob("immagent-*.whl"))
        _check([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"{wheel}[mysql]"], cwd=root)
    yield Installed(wheel, venv / "bin", time.monotonic() - started)


@pytest.fixture(params=BACKENDS)
def host_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A second empty database of the same backend, for the host app's pipeline."""
    with empty_database(request, request.param, tmp_path / "host.db", "immagent_wheelhost") as url:
        yield url


def test_the_wheel_carries_the_migrations_and_installs_quickly(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert {
        "immagent/migrations/env.py",
        "immagent/migrations/script.py.mako",
        "immagent/migrations/versions/0001_initial.py",
        "immagent/migrations/versions/0002_threads_tenants.py",
        "immagent/_migrations.py",
        "immagent/cli/db.py",
        "immagent/ui/_app.py",  # the inspector, with its templates and stylesheet (the ui extra's code)
        "immagent/ui/templates/tree.html",
        "immagent/ui/static/ui.css",
    } <= names
    assert not any("__pycache__" in n for n in names)
    print(f"\nwheel built and installed into a fresh venv in {installed.seconds:.1f}s")
    assert installed.seconds < 300


@pytest.mark.parametrize("fresh_db_url", BACKENDS, indirect=True)
async def test_the_installed_wheel_migrates_and_runs_an_agent(
    installed: Installed, fresh_db_url: str, tmp_path: Path
) -> None:
    upgraded = await run(installed.tool("immagent"), "db", "upgrade", "--url", fresh_db_url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == f"immagent schema at revision {HEAD_REVISION} (head)"

    script = tmp_path / "agent_script.py"
    script.write_text(SCRIPT)
    ran = await run(installed.tool("python"), str(script), fresh_db_url, cwd=tmp_path, env={"PYTHONPATH": ""})
    assert ran.returncode == 0, ran.stderr
    where, result = ran.stdout.strip().splitlines()
    assert where.startswith(str(installed.bin.parent)) and not where.startswith(str(REPO))
    assert result == "True hello from the wheel (7, 3)"

    check = await run(installed.tool("immagent"), "db", "check", "--url", fresh_db_url, cwd=tmp_path)
    assert check.returncode == 0, check.stderr


async def test_a_host_alembic_ini_runs_the_migrations_from_the_package_resource(
    installed: Installed, host_db_url: str, tmp_path: Path
) -> None:
    host = tmp_path / "host_app"
    shutil.copytree(REPO / "tests" / "host_app", host, ignore=shutil.ignore_patterns("__pycache__"))
    assert "script_location = immagent:migrations" in (host / "alembic.ini").read_text()
    env = {"IMMAGENT_DATABASE_URL": host_db_url, "APP_DATABASE_URL": host_db_url, "PYTHONPATH": ""}

    for section in ("immagent", "alembic"):
        done = await run(installed.tool("alembic"), "-n", section, "upgrade", "head", cwd=host, env=env)
        assert done.returncode == 0, done.stderr
    current = await run(installed.tool("immagent"), "db", "current", "--url", host_db_url, cwd=tmp_path)
    assert current.stdout.strip() == f"{HEAD_REVISION} (head)"
    host_current = await run(installed.tool("alembic"), "current", cwd=host, env=env)
    assert host_current.returncode == 0, host_current.stderr
    assert "h001 (head)" in host_current.stdout
