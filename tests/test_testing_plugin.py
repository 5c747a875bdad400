"""immagent's pytest plugin, used the way an app's test suite uses it: a separate pytest run (pytester, in a
subprocess) of an app's test file that asks for ``immagent_store`` and ``scripted_model`` by name, with no
conftest of its own: the fixtures come from the ``pytest11`` entry point that installing immagent adds."""

from __future__ import annotations

import pytest

APP_TESTS = '''
from immagent import LLMError, PersistentAgent, Store


async def greet(store: Store, model: str, name: str) -> PersistentAgent:
    """The app's code under test: one persisted turn."""
    agent = await store.create_agent(name="greeter", system_prompt="Greet people.", model=model)
    return await agent.advance(f"My name is {name}.")


async def test_the_app_greets_with_the_scripted_reply(immagent_store, scripted_model):
    scripted_model.reply("Hello, Ada!", input_tokens=6, output_tokens=3)
    greeted = await greet(immagent_store, scripted_model.model, "Ada")
    assert await greeted.last_response() == "Hello, Ada!"
    [request] = scripted_model.requests
    assert request.messages[-1] == {"role": "user", "content": "My name is Ada."}
    immagent_store.clear_cache()
    stored = await immagent_store.load_agent(greeted.id)
    assert await stored.token_usage() == (6, 3)


async def test_each_test_gets_an_empty_store_and_a_reset_model(immagent_store, scripted_model):
    assert await immagent_store.count_agents() == 0
    assert scripted_model.requests == [] and scripted_model.pending == 0
    greeted = await greet(immagent_store, scripted_model.model, "Bob")
    assert await greeted.last_response() == "echo: My name is Bob."


async def test_model_failures_reach_the_app(immagent_store, scripted_model):
    scripted_model.fail(400)
    try:
        await greet(immagent_store, scripted_model.model, "Eve")
    except LLMError as exc:
        assert exc.status_code == 400
    else:
        raise AssertionError("no LLMError")
    assert await immagent_store.count_agents() == 1  # the agent was created; the failed turn wrote nothing


async def test_a_wrong_expectation_fails(immagent_store, scripted_model):
    scripted_model.reply("Goodbye")
    greeted = await greet(immagent_store, scripted_model.model, "Joe")
    assert await greeted.last_response() == "Hello"


def test_a_sync_test_cannot_use_the_async_store(immagent_store):
    immagent_store.clear_cache()
'''


def test_an_app_suite_uses_the_plugin_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope = function
        """
    )
    pytester.makepyfile(test_app=APP_TESTS)
    # One run (a subprocess, like an app's own pytest): three tests pass, and the one with a wrong
    # expectation fails, so the fixtures neither break an app's tests nor hide their failures; a sync test
    # asking for the async store errors at its setup, saying what to write instead.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error::pytest.PytestWarning")
    result.assert_outcomes(passed=3, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*FAILED test_app.py::test_a_wrong_expectation_fails*"])
    result.stdout.fnmatch_lines(["*assert 'Goodbye' == 'Hello'*"])
    result.stdout.fnmatch_lines(
        [
            "*immagent_store is an async fixture: make test_a_sync_test_cannot_use_the_async_store an async "
            "test (`async def test_a_sync_test_cannot_use_the_async_store(immagent_store): ...`)*"
        ]
    )


def test_without_pytest_asyncio_the_store_fixture_says_what_is_missing(pytester: pytest.Pytester) -> None:
    # pytest-asyncio hidden: its plugin is not loaded, and importing it fails as if it were not installed.
    pytester.makepyfile(pytest_asyncio="raise ImportError('pytest-asyncio is not installed here')")
    pytester.makepyfile(
        test_app="""
        async def test_uses_the_store(immagent_store):
            await immagent_store.count_agents()

        def test_the_model_fixture_needs_no_event_loop(scripted_model):
            assert scripted_model.reply("hi").pending == 1
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*immagent_store is an async fixture: install pytest-asyncio*"])
    result.stdout.no_fnmatch_line("*fixture 'immagent_store' not found*")
