"""A Citus cluster for tests/test_citus.py, and a fresh database on it per session.

``find_citus()`` takes ``$IMMAGENT_TEST_CITUS_URL`` when set (a coordinator; a set but unusable URL is an
error, never a fallback), else starts the shared throwaway cluster with its script (``cluster.sh start``,
beside the repository's checkout: ``../shared/citus/`` or ``../../shared/citus/``; it needs root), else
returns why not in one line, and the suite leaves the Citus cases out and prints that line (the same
mechanism as MySQL's, in tests/conftest.py).

A Citus database is per node: ``create_database()`` makes one of the same unique name on the coordinator
and every worker, creates the extension in each and registers the nodes in the new one;
``drop_database()`` drops it everywhere.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.support.left_out import leave_out, why_missing
from tests.support.mysql import _run
from tests.support.schema import REPO

__all__ = ["ENV_VAR", "CitusCluster", "CitusUnavailableError", "find_citus"]

ENV_VAR = "IMMAGENT_TEST_CITUS_URL"
SCRIPT_ENV_VAR = "IMMAGENT_TEST_CITUS_SCRIPT"
_SCRIPTS = (REPO.parent / "shared/citus/cluster.sh", REPO.parent.parent / "shared/citus/cluster.sh")
_START_TIMEOUT_S = 300


class CitusUnavailableError(RuntimeError):
    """$IMMAGENT_TEST_CITUS_URL is set, but no Citus coordinator answers there."""


@dataclass(frozen=True)
class Node:
    host: str
    port: int


class CitusCluster:
    """A coordinator (``url``) and its workers, as its ``pg_dist_node`` lists them."""

    def __init__(self, url: str, workers: list[Node]) -> None:
        self.url = make_url(url).set(drivername="postgresql")
        self.workers = workers
        self.coordinator = Node(self.url.host or "127.0.0.1", self.url.port or 5432)

    def describe(self) -> str:
        shown = self.url.set(password=None).render_as_string()
        return f"{shown} (coordinator) + {len(self.workers)} workers"

    def _dsn(self, node: Node, database: str | None = None) -> str:
        url = self.url.set(host=node.host, port=node.port, database=database or self.url.database)
        return url.render_as_string(hide_password=False)

    def node_url(self, node: Node, database: str) -> str:
        """An asyncpg SQLAlchemy URL of ``database`` on one node (a worker, for checks on its shards)."""
        return self._dsn(node, database).replace("postgresql://", "postgresql+asyncpg://", 1)

    def create_database(self, prefix: str) -> str:
        """A new database of that name on every node, with the citus extension and the nodes
        registered; returns the coordinator's asyncpg URL of it."""
        name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
        nodes = [self.coordinator, *self.workers]

        async def create() -> None:
            for node in nodes:
                await _execute(self._dsn(node), f'CREATE DATABASE "{name}"')
                await _execute(self._dsn(node, name), "CREATE EXTENSION citus")
            coordinator = self._dsn(self.coordinator, name)
            await _execute(
                coordinator, "SELECT citus_set_coordinator_host($1, $2)", *_address(self.coordinator)
            )
            for worker in self.workers:
                await _execute(coordinator, "SELECT citus_add_node($1, $2)", *_address(worker))

        _run(create())
        return self.node_url(self.coordinator, name)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database

        async def drop() -> None:
            for node in [self.coordinator, *self.workers]:
                await _execute(self._dsn(node), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        _run(drop())


def _address(node: Node) -> tuple[str, int]:
    return node.host, node.port


async def _execute(dsn: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def _cluster_at(url: str) -> CitusCluster:
    """The cluster whose coordinator ``url`` is (its workers read from ``pg_dist_node``)."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    async def workers() -> list[Node]:
        rows = await _execute(
            dsn,
            "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0 AND noderole = 'primary' "
            "ORDER BY nodeport",
        )
        return [Node(r["nodename"], r["nodeport"]) for r in rows]

    return CitusCluster(url, _run(workers()))


def _script() -> Path | None:
    given = os.environ.get(SCRIPT_ENV_VAR)
    candidates = (Path(given),) if given else _SCRIPTS
    return next((p for p in candidates if p.is_file()), None)


def find_citus() -> tuple[CitusCluster | None, str]:
    """The cluster for this session (or None), and the one line that says which, or why none."""
    url = os.environ.get(ENV_VAR)
    if url:
        try:
            cluster = _cluster_at(url)
        except (OSError, asyncpg.PostgresError) as exc:
            raise CitusUnavailableError(
                f"${ENV_VAR} is set, but no Citus coordinator answers: {exc}"
            ) from None
        return cluster, f"Citus for tests: {cluster.describe()} (${ENV_VAR})"
    script = _script()
    if script is None:
        return None, f"no Citus cluster: ${ENV_VAR} is unset and no cluster script was found"
    if os.geteuid() != 0:
        return None, f"no Citus cluster: ${ENV_VAR} is unset and {script} needs root to start one"
    started = subprocess.run(
        [str(script), "start"], capture_output=True, text=True, timeout=_START_TIMEOUT_S, check=False
    )
    lines = started.stdout.strip().splitlines()
    if started.returncode != 0 or not lines:
        return None, f"no Citus cluster: {script} start failed: {started.stderr.strip()[-300:]}"
    cluster = _cluster_at(lines[-1])
    return cluster, f"Citus for tests: {cluster.describe()} (started by {script})"


# ------------------------------------------------------------------ the pytest side (a plugin module)

_CITUS = pytest.StashKey[tuple[CitusCluster | None, str]]()


def found(config: pytest.Config) -> tuple[CitusCluster | None, str]:
    """The session's cluster (or None and why), looked for on first use only."""
    if _CITUS not in config.stash:
        try:
            config.stash[_CITUS] = find_citus()
        except CitusUnavailableError as exc:  # set but unusable: an error, never a silent fallback
            raise pytest.UsageError(str(exc)) from None
    return config.stash[_CITUS]


def _on_citus(item: pytest.Item) -> bool:
    return "citus_cluster" in getattr(item, "fixturenames", ())


@pytest.hookimpl(trylast=True)  # after -k and -m have chosen
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a Citus cluster, leave its cases out of the run (reported in one line at the end)."""
    leave_out(config, items, "Citus", _on_citus, lambda: why_missing(*found(config)))


@pytest.fixture(scope="session")
def citus_cluster(pytestconfig: pytest.Config) -> CitusCluster:
    """The Citus cluster (the cases that need it were left out at collection when there is none)."""
    cluster, line = found(pytestconfig)
    if cluster is None:
        pytest.skip(line)
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\n{line}")
    return cluster
