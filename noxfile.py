"""One command per job: `nox -s demo`, `nox -s tests`, `nox -s lint`, `nox -s docs`, `nox -s bench`.

Each session builds its own virtual environment (uv when available, else virtualenv) and installs
everything it needs, so a fresh machine needs only Python 3.11+ and nox.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: the offline demo on the embedded SQLite default."""
    session.install(".")
    session.run("immagent", "demo", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite: SQLite and a real PostgreSQL found or started by the suite itself."""
    session.install("-e", ".[dev]")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format check) and strict mypy on the package."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site in strict mode (a warning fails the build)."""
    session.install("-e", ".[docs]")
    # NO_MKDOCS_2_WARNING: silence mkdocs-material's end-of-life banner, which is not a build warning.
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmarks: print the tables and write benchmarks/results/*.json."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "benchmarks", *session.posargs)
