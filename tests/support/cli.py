"""Running the installed ``immagent`` console script as a person would: a subprocess with its own working
folder and environment, plus one demo run shared by the CLI test modules (``demo_run``).

The child's environment is the test's, less immagent's and OpenAI's variables (each test says what it
wants). Bytecode goes to a shared cache folder, as an installed package has it compiled: without that,
every child would recompile LiteLLM from source when PYTHONDONTWRITEBYTECODE is set.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

__all__ = ["IMMAGENT", "ChatProcess", "DemoRun", "cli_env", "demo_run", "run_cli"]

IMMAGENT = str(Path(sys.executable).with_name("immagent"))
if not os.path.exists(IMMAGENT):  # pragma: no cover - an unusual layout: fall back to PATH
    IMMAGENT = shutil.which("immagent") or IMMAGENT

PYCACHE = Path(tempfile.gettempdir()) / "immagent-cli-test-pycache"
TIMEOUT = 120.0  # generous: the machine is shared, and LiteLLM's first import takes seconds


def cli_env(**overrides: str) -> dict[str, str]:
    """The child's environment: no IMMAGENT_*/OPENAI_* from the test run, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMMAGENT_", "OPENAI_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.update(overrides)
    return env


def run_cli(
    *args: str, cwd: Path, env: dict[str, str], stdin: str | None = None, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``immagent ARGS`` to completion; its output as text."""
    return subprocess.run(
        [IMMAGENT, *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class DemoRun:
    """One ``immagent demo`` in a fresh folder with no database URL set (so ./immagent.db is used)."""

    result: subprocess.CompletedProcess[str]
    seconds: float
    folder: Path
    branch_a: str
    branch_b: str
    thread: str  # the key of the thread the demo moved

    @property
    def db_path(self) -> Path:
        return self.folder / "immagent.db"

    @property
    def url(self) -> str:
        return f"sqlite+aiosqlite:///{self.db_path}"


_DEMO: list[DemoRun] = []  # one demo per test session, whichever CLI test module asks first


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The demo, run once per session (each module that imports this fixture gets the same run); its
    database serves the read-only CLI tests, which copy it before changing anything."""
    if _DEMO:
        return _DEMO[0]
    folder = tmp_path_factory.mktemp("demo")
    started = time.monotonic()
    result = run_cli("demo", cwd=folder, env=cli_env())
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    ids = dict(re.findall(r"^Branch ([AB]): ([0-9a-f-]{36})$", result.stdout, re.MULTILINE))
    [thread] = re.findall(r"^Thread: (\S+)$", result.stdout, re.MULTILINE)
    _DEMO.append(DemoRun(result, seconds, folder, ids["A"], ids["B"], thread))
    return _DEMO[0]


class ChatProcess:
    """``immagent chat`` (or another long-running ``command``, such as ``ui``) with pipes: write lines,
    wait for text on stdout or stderr, send signals."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str], command: str = "chat") -> None:
        self.proc = subprocess.Popen(
            [IMMAGENT, command, *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.out = ""
        self.err = ""
        self._chunks: queue.Queue[tuple[str, str]] = queue.Queue()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(name, stream), daemon=True)
            for name, stream in (("out", self.proc.stdout), ("err", self.proc.stderr))
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, name: str, stream: IO[str]) -> None:
        while piece := stream.read(1):
            self._chunks.put((name, piece))

    def _drain(self, wait: float) -> None:
        try:
            name, piece = self._chunks.get(timeout=wait)
        except queue.Empty:
            return
        while True:
            if name == "out":
                self.out += piece
            else:
                self.err += piece
            try:
                name, piece = self._chunks.get_nowait()
            except queue.Empty:
                return

    def expect(self, pattern: str, *, where: str = "out", timeout: float = TIMEOUT) -> re.Match[str]:
        """Wait until ``pattern`` (a regex) appears in stdout (or stderr); fail with both on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.out if where == "out" else self.err)
            if found:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.proc.poll() is not None and self._chunks.empty()):
                self._drain(0.2)
                found = re.search(pattern, self.out if where == "out" else self.err)
                if found:
                    return found
                raise AssertionError(f"{pattern!r} never appeared.\nstdout:\n{self.out}\nstderr:\n{self.err}")
            self._drain(min(remaining, 0.1))

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float = TIMEOUT) -> int:
        """Close stdin, wait for the exit, collect the rest of the output; the exit code."""
        assert self.proc.stdin is not None
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        code = self.proc.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout=10)
        while not self._chunks.empty():
            self._drain(0)
        return code

    def close(self) -> None:
        """Kill the chat if it still runs (only this process, by its pid), then close the pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for thread in self._threads:
            thread.join(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()


@pytest.fixture
def chat_processes() -> Iterator[list[ChatProcess]]:
    """Chats a test starts; any still running at the end is killed (only these, by their pid)."""
    started: list[ChatProcess] = []
    yield started
    for chat in started:
        chat.close()
