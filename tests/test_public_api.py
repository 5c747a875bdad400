"""The public surface: one sorted ``__all__``, every name importable, and ``import immagent`` stays light."""

from __future__ import annotations

import subprocess
import sys

import immagent


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert immagent.__all__ == sorted(immagent.__all__)
    for name in immagent.__all__:
        assert getattr(immagent, name) is not None, name
    public = {n for n in dir(immagent) if not n.startswith("_")}
    assert set(immagent.__all__) <= public


def test_errors_form_one_tree_with_caller_mistakes_on_their_own_branch() -> None:
    errors = [getattr(immagent, n) for n in immagent.__all__ if n.endswith("Error")]
    assert all(issubclass(e, immagent.ImmAgentError) for e in errors)
    assert issubclass(immagent.ValidationError, ValueError)
    assert issubclass(immagent.AgentNotFoundError, immagent.AssetNotFoundError)
    assert not issubclass(immagent.ValidationError, immagent.LLMError)


def test_importing_immagent_loads_no_sqlalchemy_litellm_mcp_the_inspector_or_a_framework() -> None:
    heavy = (
        "sqlalchemy", "litellm", "mcp", "alembic", "immagent.ui", "starlette", "jinja2", "uvicorn",
        "pydantic_ai", "agents", "openai", "immagent.integrations",
    )  # fmt: skip
    code = f"import sys, immagent; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
