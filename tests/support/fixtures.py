"""Pytest fixtures that point LiteLLM at the scripted OpenAI-compatible server.

Load with ``pytest_plugins = ["tests.support.fixtures"]`` (tests/conftest.py does). ``openai_server`` is
session-scoped: it starts the server once, sets ``OPENAI_API_KEY`` (a dummy), ``OPENAI_BASE_URL`` and
``OPENAI_API_BASE`` for the whole session and restores them afterwards. ``llm`` is the per-test handle: the
same server, reset (empty queue, no recorded requests, echo default). Use model names such as
``gpt-4o-mini`` or ``openai/<anything>``.

Importing this module sets ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (unless already set) so that LiteLLM,
whenever it is imported later in the session, uses its bundled cost map instead of downloading one.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from immagent import _llm
from tests.support.openai_server import ScriptedOpenAIServer

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")

__all__ = ["LITELLM_WARNING_FILTERS", "llm", "openai_server", "pytest_configure"]

#: Warnings LiteLLM triggers that tests cannot avoid (added to the session's ``filterwarnings``, which turns
#: every other warning into an error). Pydantic notes that some of LiteLLM's TypedDicts (thinking blocks,
#: the GitHub Copilot auth payloads) use ``ReadOnly``; LiteLLM builds their schemas lazily during calls.
#: ``litellm.acompletion`` runs ``completion()`` in a thread and awaits the coroutine it returns: a turn
#: cancelled during that hop drops the provider's ``acompletion`` coroutine unawaited (any provider; the
#: cancellation tests hit it now and then), and Python warns when it is collected.
LITELLM_WARNING_FILTERS = (
    "ignore:Items? .* on TypedDict class .* using the `ReadOnly` qualifier:UserWarning:pydantic._internal.*",
    "ignore:coroutine '.*acompletion' was never awaited:RuntimeWarning",
    "ignore:Exception ignored in. <coroutine object .*acompletion at:pytest.PytestUnraisableExceptionWarning",
)


def pytest_configure(config: pytest.Config) -> None:
    """Register the narrowly targeted LiteLLM warning filters (after the ini's ``error``, so they win)."""
    for line in LITELLM_WARNING_FILTERS:
        config.addinivalue_line("filterwarnings", line)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def openai_server() -> AsyncIterator[ScriptedOpenAIServer]:
    """The scripted server for the whole session, with LiteLLM's OpenAI environment pointed at it."""
    server = ScriptedOpenAIServer().start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", "sk-immagent-test")
        patch.setenv("OPENAI_BASE_URL", server.base_url)
        patch.setenv("OPENAI_API_BASE", server.base_url)
        try:
            yield server
        finally:
            await _llm.close_clients()  # on the loop that opened them: no unclosed-socket warnings
            server.stop()


@pytest.fixture
def llm(openai_server: ScriptedOpenAIServer) -> ScriptedOpenAIServer:
    """The session's scripted server, reset for this test."""
    openai_server.reset()
    return openai_server
