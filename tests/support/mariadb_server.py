"""A MariaDB server of the caller's own, for tests that stop and start a server (never the shared one).

`start_dedicated_mariadb()` initialises a data directory in a fresh temporary folder with
``mariadb-install-db``, runs ``mariadbd`` on a free loopback port with grant checks off (nothing but the
test can reach it), and returns a `MySQLServer` whose ``halt("fast")`` is a clean shutdown (a restart),
``halt("immediate")`` a SIGKILL (a crash: InnoDB recovers at the next start) and ``resume()`` a start on
the same data and port. ``close()`` stops it and deletes the folder; folders left by a test session that
died are reaped by the next one.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import URL

from tests.support.mysql import MySQLServer, MySQLUnavailableError

__all__ = ["start_dedicated_mariadb"]

DIR_PREFIX = "immagent-mariadb-"
START_TIMEOUT = 60.0


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if found is None:
        raise MySQLUnavailableError(f"{name} is not installed: a dedicated MariaDB needs the server package")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Mariadbd:
    """One mariadbd process on a data directory, started and stopped at will."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        subprocess.run(
            [
                _binary("mariadb-install-db"),
                "--no-defaults",
                f"--datadir={root / 'data'}",
                f"--user={getpass.getuser()}",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT,
        )

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                _binary("mariadbd"),
                "--no-defaults",
                f"--datadir={self.root / 'data'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.root / 'mariadb.sock'}",
                f"--pid-file={self.root / 'mariadb.pid'}",
                f"--log-error={self.root / 'error.log'}",
                f"--user={getpass.getuser()}",
                "--skip-grant-tables",  # loopback only, for this test's own process
                "--skip-log-bin",
                "--innodb-buffer-pool-size=16M",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise MySQLUnavailableError(f"mariadbd exited at start; see {self.root / 'error.log'}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                return
            if time.monotonic() > deadline:
                raise MySQLUnavailableError(f"mariadbd did not listen within {START_TIMEOUT:g} s")
            time.sleep(0.05)

    def halt(self, mode: str) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if mode == "immediate" else signal.SIGTERM)
        try:
            self.process.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        self.halt("fast")
        shutil.rmtree(self.root, ignore_errors=True)


def start_dedicated_mariadb() -> MySQLServer:
    """A MariaDB of the caller's own (never the shared one) that ``halt()`` and ``resume()`` stop and
    start again."""
    _reap_stale()
    root = Path(tempfile.mkdtemp(prefix=DIR_PREFIX)).resolve()
    (root / "owner").write_text(str(os.getpid()))
    server: _Mariadbd | None = None
    try:
        server = _Mariadbd(root)
        server.start()
        url = URL.create("mysql+asyncmy", username="root", host="127.0.0.1", port=server.port)
        return MySQLServer(url, "dedicated", stop=server.stop, halt=server.halt, resume=server.start)
    except BaseException:
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise


def _reap_stale() -> None:
    """Stop and delete dedicated servers whose test session died without closing them."""
    for root in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        try:
            owner = int((root / "owner").read_text())
            os.kill(owner, 0)
            continue  # its session is alive
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue  # being set up now, or not ours to judge
        with contextlib.suppress(OSError, ValueError):
            pid = int((root / "mariadb.pid").read_text())
            if str(root) in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
