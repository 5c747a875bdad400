"""One command per job: `nox -s demo`, `nox -s tests`, `nox -s lint`, `nox -s docs`, `nox -s bench`.

Each session builds its own virtual environment (uv when available, else virtualenv) and installs
everything it needs, so a fresh machine needs only Python 3.11+ and nox.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

#: uv, unlike pip, does not compile bytecode when it installs: the first import of LiteLLM would then
#: compile a few thousand modules, one at a time, seconds of the first demo. uv compiles them at install
#: time instead, on every core (and, reusing an environment, only the packages it just installed).
COMPILE_BYTECODE = {"UV_COMPILE_BYTECODE": "1"}


def install(session: nox.Session, *args: str) -> None:
    """``session.install`` with bytecode compiled at install time, whichever backend installs."""
    session.install(*args, env=COMPILE_BYTECODE)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: the offline demo on the embedded SQLite default."""
    install(session, ".")
    session.run("immagent", "demo", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite: SQLite, a real PostgreSQL found or started by the suite itself, and MySQL/MariaDB
    when one answers ($IMMAGENT_TEST_MYSQL_URL, else 127.0.0.1:3306)."""
    install(session, "-e", ".[dev]")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format check) and strict mypy on the package."""
    install(session, "-e", ".[dev]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site in strict mode (a warning fails the build)."""
    install(session, "-e", ".[docs]")
    # NO_MKDOCS_2_WARNING: silence mkdocs-material's end-of-life banner, which is not a build warning.
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmarks: print the tables and write benchmarks/results/*.json."""
    install(session, "-e", ".[dev]")
    session.run("python", "-m", "benchmarks", *session.posargs)
