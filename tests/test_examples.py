"""Every example in examples/ runs offline, as a user would run it, and prints what its docs promise.

Each runs as a subprocess in its own temporary folder with its own SQLite database, and with
$IMMAGENT_MODEL unset so the scripted model answers. All of them start at once (LiteLLM's import alone
takes seconds), and each test then waits for its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 240.0

#: example file -> lines its output must contain (whole lines, in this order).
EXPECTED: dict[str, list[str]] = {
    "quickstart.py": [
        "assistant: Paris is the capital of France.",
        "assistant: About 2.1 million people live in the city of Paris itself.",
        "messages: original 0, first 2, second 4",
        "tokens (in, out): (20, 10)",
    ],
    "persistent_agent.py": [
        "assistant: You told me your name is Ada, and that you like astronomy.",
        "reloaded: True | lineage: 3 states",
        "tokens (in, out): (20, 10)",
    ],
    "branching.py": [
        "city branch: Ride tram 28 up to Alfama, then watch the sunset from a miradouro.",
        "away branch: Take the train to Sintra: palaces in the hills, 40 minutes away.",
        "both branches share 2 messages with their parent",
        "children of base: 2",
        "clone has the same conversation: True",
        "branches differ: True",
        "gc removed: {'messages': 2, 'texts': 0}",
        "city branch intact: 4 messages",
    ],
    "tools.py": [
        "tools: get_weather, get_forecast",
        "user: What should I wear in Paris today?",
        'assistant: calls get_weather({"city": "Paris"})',
        "tool: Paris: 18°C, light rain",  # the real MCP server's answer
        "assistant: It's 18°C with light rain in Paris: take an umbrella and a jacket.",
    ],
    "openai_agents_session.py": [
        "assistant: Paris: 18°C with light rain. Take an umbrella.",
        "assistant: Lisbon: 24°C and sunny. Sunglasses!",
        "items: 8 | kinds: function_call, function_call_output, message",
        "states in the thread's log: 7",
        "branch: Yes: it is raining in Paris. | items: 6",
        "after clear: 0 items",
        "restored: 8 items",
        "user: What's the weather in Paris?",
        'assistant: calls get_weather({"city":"Paris"})',
        "tool: 18°C, light rain",
    ],
    "pydantic_ai_history.py": [
        "assistant: Paris: light rain, 18°C.",
        "assistant: Oslo: snow, -3°C.",
        "thread at position 2: 8 messages",
        '  assistant: weather({"city":"Oslo"})',
        "  tool: snow, -3°C",
        "loaded back exactly: True",
        "after undo: 4 messages",
        "branch: Lima: sunny, 24°C. (8 messages)",
    ],
    "streaming.py": [
        "assistant: Once upon a time, a small robot learned to paint the sunrise.",
        "stopped after the first piece: 'This'",
        "states before: 2 after stopping early: 2",
    ],
}


def _has_offline_mode(path: Path) -> bool:
    """examples/fastapi_app.py is tested here only when it can run offline by itself (a __main__ mode)."""
    return path.exists() and 'if __name__ == "__main__":' in path.read_text(encoding="utf-8")


@dataclass
class Run:
    process: subprocess.Popen[str]
    folder: Path
    result: tuple[int, str, str] | None = None

    def finish(self) -> tuple[int, str, str]:
        """Wait for the example: (exit code, stdout, stderr)."""
        if self.result is None:
            try:
                out, err = self.process.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                out, err = self.process.communicate()
                pytest.fail(f"timed out after {TIMEOUT:g} s\nstdout:\n{out}\nstderr:\n{err}")
            self.result = (self.process.returncode, out, err)
        return self.result


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Start every example at once, each in a fresh folder with a fresh SQLite database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMMAGENT_")}
    env["PYTHONIOENCODING"] = "utf-8"
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # never reach for the network
    started: dict[str, Run] = {}
    for name in EXPECTED:
        folder = tmp_path_factory.mktemp(name.removesuffix(".py"))
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / name)],
            cwd=folder,
            env={**env, "IMMAGENT_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'example.db'}"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        started[name] = Run(process, folder)
    try:
        yield started
    finally:
        for run in started.values():
            if run.process.poll() is None:
                run.process.kill()
                run.process.communicate()


def test_every_example_is_tested() -> None:
    shipped = {p.name for p in EXAMPLES.glob("*.py")} - {"weather_server.py"}
    if not _has_offline_mode(EXAMPLES / "fastapi_app.py"):
        shipped.discard("fastapi_app.py")
    assert shipped == set(EXPECTED), "add each new example to EXPECTED with the lines it must print"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXPECTED))
def test_example_runs_offline_and_prints_what_the_docs_say(name: str, runs: dict[str, Run]) -> None:
    code, out, err = runs[name].finish()
    assert code == 0, f"exit code {code}\nstdout:\n{out}\nstderr:\n{err}"
    assert "Traceback" not in err, err
    lines = [line.rstrip() for line in out.splitlines()]
    position = 0
    for expected in EXPECTED[name]:
        assert expected in lines[position:], f"{expected!r} missing (in order) from:\n{out}"
        position = lines.index(expected, position) + 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["persistent_agent.py", "branching.py", "streaming.py"])
def test_persistent_examples_write_to_the_database_they_are_given(name: str, runs: dict[str, Run]) -> None:
    code, _, _ = runs[name].finish()
    assert code == 0
    assert (runs[name].folder / "example.db").stat().st_size > 0
    assert not (runs[name].folder / "immagent.db").exists()  # the env URL won over the default
