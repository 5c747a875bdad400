"""``immagent agents``, ``show``, ``tree`` and ``gc`` on the demo's database, through the console script."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from immagent import Store
from tests.support import cli as cli_support
from tests.support.cli import DemoRun, cli_env, run_cli

demo_run = cli_support.demo_run

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def cli(demo: DemoRun, tmp_path: Path, *args: str) -> str:
    result = run_cli(*args, "--url", demo.url, cwd=tmp_path, env=cli_env())
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def test_agents_lists_newest_first_filters_and_counts(demo_run: DemoRun, tmp_path: Path) -> None:
    out = cli(demo_run, tmp_path, "agents")
    rows = [line for line in out.splitlines() if UUID.match(line)]
    assert len(rows) == 7 and out.splitlines()[-1] == "1-7 of 7 states"  # one page: no "next page"
    assert rows[0].startswith(demo_run.branch_b)  # the last state the demo made
    assert all("  demo  " in row and "immagent/scripted" in row for row in rows)

    assert cli(demo_run, tmp_path, "agents", "--count").strip() == "7"
    assert cli(demo_run, tmp_path, "agents", "--count", "--name", "DEM").strip() == "7"
    assert cli(demo_run, tmp_path, "agents", "--count", "--name", "nobody").strip() == "0"
    assert (
        cli(demo_run, tmp_path, "agents", "--name", "nobody").strip() == "no agent states matching 'nobody'"
    )
    page = cli(demo_run, tmp_path, "agents", "--limit", "2", "--offset", "2")
    assert page.splitlines()[-1] == "3-4 of 7 states"
    assert [line[:36] for line in page.splitlines() if UUID.match(line)] == [r[:36] for r in rows[2:4]]


def test_show_prints_fields_messages_tool_calls_and_token_usage(demo_run: DemoRun, tmp_path: Path) -> None:
    out = cli(demo_run, tmp_path, "show", demo_run.branch_a)
    assert f"state     {demo_run.branch_a}" in out
    assert "messages  10" in out
    assert re.search(r"^tokens    in \d+, out \d+ \(whole history\)$", out, re.MULTILINE)
    assert '[6] assistant -> get_weather({"city": "Paris"})  [call call_6]  [tokens in' in out
    assert "[7] tool (call_6): Paris: 18°C, light rain" in out
    assert "[9] user: Plan a rainy day for me: museums?" in out
    assert "You are a concise travel assistant." in out
    assert "tenant    default" in out
    assert f"threads   ⇐ thread {demo_run.thread}" in out
    assert "threads" not in cli(demo_run, tmp_path, "show", demo_run.branch_b).split("messages ")[0]


def test_threads_lists_threads_and_shows_one_log(demo_run: DemoRun, tmp_path: Path) -> None:
    listed = cli(demo_run, tmp_path, "threads")
    assert listed.splitlines()[0].split() == ["KEY", "POS", "MOVED", "(UTC)", "HEAD", "STATE"]
    assert listed.splitlines()[1].startswith(demo_run.thread) and listed.splitlines()[1].endswith(
        demo_run.branch_a
    )
    assert cli(demo_run, tmp_path, "threads", "--search", "nothing-like-it").strip() == (
        "no threads matching 'nothing-like-it'"
    )
    log = cli(demo_run, tmp_path, "threads", demo_run.thread)
    assert f"head      {demo_run.branch_a} (position 6)" in log
    rows = [line.split() for line in log.splitlines()[6:]]
    assert [(r[0], r[3]) for r in rows] == [
        ("0", "create"), *((str(i), "advance") for i in range(1, 5)), ("5", "move"), ("6", "move"),
    ]  # fmt: skip
    assert rows[5][4] == demo_run.branch_b and rows[6][4] == demo_run.branch_a
    missing = run_cli("threads", "nope", "--url", demo_run.url, cwd=tmp_path, env=cli_env())
    assert (missing.returncode, missing.stderr.strip()) == (1, "error: thread 'nope' not found")


def test_a_tenant_sees_only_its_own_states(demo_run: DemoRun, tmp_path: Path) -> None:
    assert cli(demo_run, tmp_path, "agents", "--count", "--tenant", "acme").strip() == "0"
    assert cli(demo_run, tmp_path, "threads", "--tenant", "acme").strip() == "no threads"
    hidden = run_cli(
        "show", demo_run.branch_a, "--tenant", "acme", "--url", demo_run.url, cwd=tmp_path, env=cli_env()
    )
    assert (hidden.returncode, hidden.stderr.strip()) == (1, f"error: agent {demo_run.branch_a} not found")


def test_agents_pages_by_cursor(demo_run: DemoRun, tmp_path: Path) -> None:
    first = cli(demo_run, tmp_path, "agents", "--limit", "3")
    command = first.splitlines()[-1]
    assert command.startswith("next page: immagent agents --limit 3 --after ")
    cursor = command.split()[-1]
    second = cli(demo_run, tmp_path, "agents", "--limit", "3", "--after", cursor)
    everything = cli(demo_run, tmp_path, "agents", "--limit", "7")
    ids = [line[:36] for line in everything.splitlines() if UUID.match(line)]
    assert [line[:36] for line in second.splitlines() if UUID.match(line)] == ids[3:6]


async def test_tree_draws_ancestors_and_every_descendant_branch(demo_run: DemoRun, tmp_path: Path) -> None:
    leaf = cli(demo_run, tmp_path, "tree", demo_run.branch_a)
    lines = leaf.splitlines()
    assert lines[0].endswith("root “demo” on immagent/scripted")
    assert lines[-2].startswith("│   " + demo_run.branch_a) and lines[-2].endswith("◀ current")
    assert lines[-1] == "└── … 1 other branch (see `immagent tree --all`)"
    assert demo_run.branch_b not in leaf

    # From the state before the tool turn: its ancestors, then both branches below it.
    async with await Store.connect(demo_run.url) as store:
        middle = str((await (await store.load_agent(demo_run.branch_a)).lineage())[2].id)
    below = cli(demo_run, tmp_path, "tree", middle)
    ids = re.findall(rf"^[│├└─ ]*({UUID.pattern})", below, re.MULTILINE)  # each line's state
    assert len(ids) == 7 and demo_run.branch_a in ids and demo_run.branch_b in ids
    assert f"{middle}  4 msgs · “What should I pack?”   ◀ current" in below
    assert below.count("├── ") == 1 and below.count("└── ") == 1

    whole = cli(demo_run, tmp_path, "tree", "--all", demo_run.branch_a)
    assert set(re.findall(rf"^[│├└─ ]*({UUID.pattern})", whole, re.MULTILINE)) == set(ids)
    assert f"⇐ thread {demo_run.thread}   ◀ current" in whole


async def test_gc_removes_only_what_no_state_reaches(demo_run: DemoRun, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    shutil.copyfile(demo_run.db_path, copy)
    url = f"sqlite+aiosqlite:///{copy}"
    async with await Store.connect(url) as store:
        branch_b = await store.load_agent(demo_run.branch_b)
        await store.delete_thread(demo_run.thread)  # its log pointed at branch B once
        await store.delete(branch_b)  # its two new messages are now unreachable

    result = run_cli("gc", "--url", url, cwd=tmp_path, env=cli_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "before: 6 states, 12 messages, 0 threads, 1 texts",  # the branches share 8 messages
        "removed: 2 messages, 0 texts",
        "after:  6 states, 10 messages, 0 threads, 1 texts",
    ]
    async with await Store.connect(url) as store:
        kept = await store.load_agent(demo_run.branch_a)
        assert len(await kept.messages()) == 10
