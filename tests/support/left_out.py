"""A backend this machine lacks: its cases are left out of the run (after -k and -m have chosen), never
skipped silently; one line at the end of the run says how many and why, per backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

_LEFT_OUT = pytest.StashKey[dict[str, tuple[int, str]]]()


def leave_out(
    config: pytest.Config,
    items: list[pytest.Item],
    what: str,
    belongs: Callable[[pytest.Item], bool],
    missing: Callable[[], str | None],
) -> None:
    """Deselect the cases that ``belongs`` to ``what`` when ``missing()`` gives a reason (asked only when
    there are such cases, so a run without them never looks for the server)."""
    chosen = [item for item in items if belongs(item)]
    if not chosen:
        return
    why = missing()
    if why is None:
        return
    config.hook.pytest_deselected(items=chosen)
    items[:] = [item for item in items if not belongs(item)]
    config.stash.setdefault(_LEFT_OUT, {})[what] = (len(chosen), why)


def why_missing(server: object | None, why: str) -> str | None:
    """A finder's ``(server or None, why)`` as ``leave_out``'s reason: None when the server is there."""
    return None if server is not None else why


def report_left_out(terminalreporter: Any, config: pytest.Config) -> None:
    """The end-of-run lines: ``N <what> test cases not run: <why>``."""
    for what, (count, why) in config.stash.get(_LEFT_OUT, {}).items():
        terminalreporter.write_line(f"{count} {what} test cases not run: {why}")
