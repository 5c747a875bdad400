"""``immagent erase``: a tenant or one tree forgotten after a confirmation, through the console script."""

from __future__ import annotations

import shutil
from pathlib import Path

from immagent import Store
from tests.support import cli as cli_support
from tests.support.cli import DemoRun, cli_env, run_cli
from tests.support.db import snapshot

demo_run = cli_support.demo_run


async def test_erase_asks_first_and_a_no_changes_nothing(demo_run: DemoRun, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    shutil.copyfile(demo_run.db_path, copy)
    url = f"sqlite+aiosqlite:///{copy}"
    async with await Store.connect(url) as store:
        before = await snapshot(store.engine)
    refused = run_cli("erase", "--tenant", "default", "--url", url, cwd=tmp_path, env=cli_env(), stdin="n\n")
    assert refused.returncode == 1
    assert "Erase every state, message and thread of tenant 'default'?" in refused.stdout
    async with await Store.connect(url) as store:
        assert await snapshot(store.engine) == before

    erased = run_cli("erase", "--tenant", "default", "--yes", "--url", url, cwd=tmp_path, env=cli_env())
    assert erased.returncode == 0, erased.stderr
    assert erased.stdout.strip() == "erased: 7 thread moves, 1 threads, 7 agents, 12 messages, 1 texts"
    async with await Store.connect(url) as store:
        assert await store.stats() == dict.fromkeys(
            ("agents", "messages", "threads", "thread_moves", "texts"), 0
        )


async def test_erase_tree_takes_any_state_of_the_tree(demo_run: DemoRun, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    shutil.copyfile(demo_run.db_path, copy)
    url = f"sqlite+aiosqlite:///{copy}"
    erased = run_cli("erase", "--tree", demo_run.branch_b, "--yes", "--url", url, cwd=tmp_path, env=cli_env())
    assert erased.returncode == 0, erased.stderr
    assert erased.stdout.strip() == "erased: 7 thread moves, 1 threads, 7 agents, 12 messages, 1 texts"
    again = run_cli("erase", "--tree", demo_run.branch_b, "--yes", "--url", url, cwd=tmp_path, env=cli_env())
    assert again.stdout.strip() == "erased: 0 thread moves, 0 threads, 0 agents, 0 messages, 0 texts"
    both = run_cli(
        "erase", "--tree", demo_run.branch_b, "--tenant", "x", "--url", url, cwd=tmp_path, env=cli_env()
    )
    assert both.returncode == 2 and "exactly one of --tenant or --tree" in both.stderr
