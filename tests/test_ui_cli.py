"""``immagent ui`` as a person runs it: it serves until Ctrl+C, says where, opens a browser when asked,
warns before exposing the data to the network, and explains in one line what stops it from starting."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from immagent import Store
from tests.support import cli as cli_support
from tests.support.cli import ChatProcess, cli_env
from tests.support.schema import immagent_cli
from tests.support.ui import seed_story, text_of

chat_processes = cli_support.chat_processes

SERVING = r"immagent ui: serving (http://127\.0\.0\.1:\d+/) \(read-only; Ctrl\+C to stop\)"


async def seeded(tmp_path: Path, *, revision: str = "head") -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'seeded.db'}"
    async with await Store.connect(url) as store:
        await store.migrate(revision)
        if revision == "head":
            await seed_story(store)
    return url


async def test_ui_serves_until_ctrl_c_and_opens_the_browser_when_asked(
    tmp_path: Path, chat_processes: list[ChatProcess]
) -> None:
    url = await seeded(tmp_path)
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(0o755)
    ui = ChatProcess(
        "--url", url, "--port", "0", "--open", cwd=tmp_path, env=cli_env(BROWSER=str(browser)), command="ui"
    )
    chat_processes.append(ui)
    address = ui.expect(SERVING).group(1)
    async with httpx.AsyncClient(base_url=address, timeout=30) as http:
        page = await http.get("/agents")
        assert page.status_code == 200 and "7 in all" in text_of(page.text)
        assert (await http.get("/agents", headers={"host": "elsewhere.example"})).status_code == 400
    for _ in range(100):  # the browser is opened in a thread once the server listens
        if opened.exists():
            break
        await asyncio.sleep(0.05)
    assert opened.read_text().strip() == address
    ui.interrupt()
    assert ui.finish() == 0
    assert "immagent ui: stopped" in ui.out and ui.err == ""


async def test_a_database_behind_its_schema_is_served_with_a_warning(
    tmp_path: Path, chat_processes: list[ChatProcess]
) -> None:
    url = await seeded(tmp_path, revision="0001")
    ui = ChatProcess("--url", url, "--port", "0", cwd=tmp_path, env=cli_env(), command="ui")
    chat_processes.append(ui)
    address = ui.expect(SERVING).group(1)
    assert "warning: the database is at immagent revision 0001, behind this library's head" in ui.out
    async with httpx.AsyncClient(timeout=30) as http:
        page = await http.get(address)
    assert page.status_code == 503 and "immagent db upgrade" in page.text


async def test_what_stops_the_inspector_from_starting_is_one_line(tmp_path: Path) -> None:
    missing = await immagent_cli("ui", "--url", f"sqlite:///{tmp_path / 'none.db'}")
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith(f"error: no database at {tmp_path / 'none.db'}")
    assert not (tmp_path / "none.db").exists()

    exposed = await immagent_cli("ui", "--host", "0.0.0.0", "--url", f"sqlite:///{tmp_path / 'none.db'}")
    warning, error = exposed.stderr.strip().splitlines()
    assert warning == (
        "warning: --host 0.0.0.0 is not a loopback address: every state, message and thread of this database "
        "becomes readable by anyone on the network who can reach port 8765 (the inspector has no login)"
    )
    assert error.startswith("error: no database at")

    url = await seeded(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        busy = await immagent_cli("ui", "--url", url, "--port", str(port))
    assert busy.returncode == 1
    assert busy.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_without_the_ui_extra_the_command_says_what_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['starlette'] = None; from immagent.cli import main; "
        "main(['ui', '--url', 'sqlite:///x.db'], prog_name='immagent')"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMMAGENT_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: the inspector needs the ui extra (starlette is not installed): pip install 'immagent[ui]'"
    )
