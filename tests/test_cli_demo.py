"""``immagent demo`` and the command line's conventions (help everywhere, exit codes, one-line errors),
run through the installed console script in a subprocess, as a person would."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from immagent import Store
from immagent.cli import COMMANDS
from tests.support import cli as cli_support
from tests.support.cli import DemoRun, cli_env, run_cli

demo_run = cli_support.demo_run  # the session's demo, shared with the other CLI test modules

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def test_the_demo_succeeds_offline_on_the_default_sqlite_file_in_a_few_seconds(demo_run: DemoRun) -> None:
    out = demo_run.result.stdout
    assert demo_run.result.returncode == 0
    assert demo_run.db_path.exists(), "the demo uses ./immagent.db when no URL is given"
    assert "model immagent/scripted" in out  # offline: no key, no network
    print(f"\nimmagent demo took {demo_run.seconds:.1f} s")  # the measurement, shown with -s
    assert demo_run.seconds < 60, f"the demo took {demo_run.seconds:.1f} s"
    assert "Traceback" not in demo_run.result.stderr


def test_the_demo_shows_the_tool_turn_both_branches_and_the_tree(demo_run: DemoRun) -> None:
    out = demo_run.result.stdout
    assert 'get_weather({"city": "Paris"})' in out
    assert "Paris: 18°C, light rain" in out  # the weather server's answer, fed back to the model
    a, b = demo_run.branch_a, demo_run.branch_b
    assert f"Branch A: conversation of {a}" in out and f"Branch B: conversation of {b}" in out
    conversation_a = out.split("Branch A: conversation of")[1].split("Branch B: conversation of")[0]
    conversation_b = out.split("Branch B: conversation of")[1].split("Family tree of states")[0]
    assert "Plan a rainy day" in conversation_a and "Plan a rainy day" not in conversation_b
    assert "Where should we eat tonight?" in conversation_b and "Where should we eat" not in conversation_a
    assert conversation_a.count("[tokens in") == conversation_b.count("[tokens in") == 5

    tree = out.split("Family tree of states")[1].split("\n\n")[0]
    states = re.findall(rf"^  [│├└─ ]*({UUID})", tree, re.MULTILINE)  # the state each line is about
    assert len(states) == len(set(states)) == 7  # root, 2 advances, tool turn, clone, 2 branch turns
    assert "├── " in tree and "└── " in tree  # the clone made a second branch
    assert "same history as" in tree  # the clone is a sibling with the same history
    assert a in tree and b in tree
    assert f"{a}  10 msgs · “Plan a rainy day for me: museums?”   ⇐ thread {demo_run.thread}" in tree
    log = out.split(f"Log of thread '{demo_run.thread}'")[1].split("\n\n")[0]
    kinds = re.findall(r"^  (\d)  (\w+) +-> ", log, re.MULTILINE)
    assert kinds == [
        ("0", "create"),
        *((str(i), "advance") for i in range(1, 5)),
        ("5", "move"),
        ("6", "move"),
    ]
    assert log.splitlines()[-2].endswith(b) and log.splitlines()[-1].endswith(a)  # moved, then moved back
    assert f"\n  immagent chat --thread {demo_run.thread}\n" in out  # how to continue
    assert out.rstrip().endswith("\n  immagent ui --open")  # and where to look at it all


async def test_the_demo_database_holds_what_it_printed(demo_run: DemoRun) -> None:
    async with await Store.connect(demo_run.url) as store:
        a, b = await store.load_agents([demo_run.branch_a, demo_run.branch_b])
        lineage_a, lineage_b = await a.lineage(), await b.lineage()
        assert lineage_a[0].id == lineage_b[0].id  # one family
        assert lineage_a[-2].id != lineage_b[-2].id  # the clone: a sibling, not an ancestor
        assert lineage_a[-2].head_id == lineage_b[-2].head_id  # ... with the same history
        messages_a, messages_b = await a.messages(), await b.messages()
        assert messages_a[:8] == messages_b[:8] and messages_a[8:] != messages_b[8:]
        assert [m.role for m in messages_a[4:8]] == ["user", "assistant", "tool", "assistant"]
        assert await store.count_agents() == 7
        thread = await store.load_thread(demo_run.thread)
        assert (thread.agent_id, thread.position) == (a.id, 6)
        assert [m.agent_id for m in await thread.log()][-2:] == [b.id, a.id]


def test_a_demo_on_a_database_that_has_one_adds_a_new_family(demo_run: DemoRun, tmp_path: Path) -> None:
    shutil.copyfile(demo_run.db_path, tmp_path / "again.db")
    url = f"sqlite:///{tmp_path / 'again.db'}"
    result = run_cli("demo", "--url", url, cwd=tmp_path, env=cli_env())
    assert result.returncode == 0, result.stderr
    assert f"--url {url}\n" in result.stdout  # the continue command keeps a typed URL...
    assert result.stdout.rstrip().endswith(f"immagent ui --url {url} --open")  # ...and the inspector
    count = run_cli("agents", "--count", "--url", url, cwd=tmp_path, env=cli_env())
    assert count.stdout.strip() == "14"
    assert not (tmp_path / "immagent.db").exists()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command: str, tmp_path: Path) -> None:
    result = run_cli(command, "--help", cwd=tmp_path, env=cli_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: immagent {command}")
    assert not list(tmp_path.iterdir()), "help must not create a database"


def test_the_top_level_help_lists_every_command(tmp_path: Path) -> None:
    result = run_cli("--help", cwd=tmp_path, env=cli_env())
    assert result.returncode == 0
    for command in COMMANDS:
        assert re.search(rf"^  {command}\s", result.stdout, re.MULTILINE), command


@pytest.mark.parametrize(
    "args",
    [
        ("agents", "--limit", "-1"),
        ("chat", "--agent", "01a213bf-dead-72ad-86e9-593d79ca1943", "--name", "x"),
        ("export",),
        ("show",),
        ("nosuchcommand",),
    ],
)
def test_usage_errors_exit_with_2(args: tuple[str, ...], tmp_path: Path) -> None:
    result = run_cli(*args, cwd=tmp_path, env=cli_env())
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("not-a-uuid", "error: agent_id: not a UUID: 'not-a-uuid'"),
        (
            "01a213bf-dead-72ad-86e9-593d79ca1943",
            "error: agent 01a213bf-dead-72ad-86e9-593d79ca1943 not found",
        ),
    ],
)
@pytest.mark.parametrize("command", ["show", "tree", "export"])
def test_a_bad_id_is_one_error_line_and_exit_1(
    command: str, value: str, expected: str, demo_run: DemoRun, tmp_path: Path
) -> None:
    result = run_cli(command, value, "--url", demo_run.url, cwd=tmp_path, env=cli_env())
    assert result.returncode == 1
    assert result.stderr.splitlines() == [expected]
    assert result.stdout == ""


def test_debug_shows_the_traceback(demo_run: DemoRun, tmp_path: Path) -> None:
    result = run_cli("--debug", "show", "not-a-uuid", "--url", demo_run.url, cwd=tmp_path, env=cli_env())
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValidationError: agent_id: not a UUID" in result.stderr


def test_a_read_only_command_without_a_database_says_so_and_creates_none(tmp_path: Path) -> None:
    result = run_cli("agents", cwd=tmp_path, env=cli_env())
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: no database at immagent.db (run `immagent demo` or `immagent chat` first, or pass --url)"
    ]
    assert not (tmp_path / "immagent.db").exists()


def test_the_environment_variable_names_the_database(demo_run: DemoRun, tmp_path: Path) -> None:
    result = run_cli("agents", "--count", cwd=tmp_path, env=cli_env(IMMAGENT_DATABASE_URL=demo_run.url))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "7"
