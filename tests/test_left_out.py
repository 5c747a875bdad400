"""The suite's rule for a backend this machine lacks: its cases are left out with one line saying how many
and why, never skipped silently (tests/support/left_out.py, used for MySQL/MariaDB and Citus)."""

from __future__ import annotations

import pytest

CONFTEST = """
import pytest
from tests.support.left_out import leave_out, report_left_out, why_missing

@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    missing, present = lambda: why_missing(None, "no widget here"), lambda: why_missing(object(), "unused")
    leave_out(config, items, "Widget", lambda item: "widget" in item.name, missing)
    leave_out(config, items, "Gadget", lambda item: "gadget" in item.name, present)

def pytest_terminal_summary(terminalreporter, exitstatus, config):
    report_left_out(terminalreporter, config)
"""

TESTS = """
def test_widget_one(): pass
def test_widget_two(): pass
def test_gadget(): pass
def test_plain(): pass
"""


def test_a_missing_backend_leaves_its_cases_out_and_says_so_in_one_line(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, deselected=2)
    result.stdout.fnmatch_lines(["2 Widget test cases not run: no widget here"])
    assert "Gadget" not in result.stdout.str()
