"""pytest plugin (entry point ``immagent``): fixtures for apps that test code built on immagent.

- ``scripted_model``: an installed ScriptedModel (``scripted_model.model`` is the name to use), reset for
  every test, so no real model is ever called.
- ``immagent_store``: a Store on a fresh, migrated SQLite file in the test's temporary folder.

Async fixtures need an async test runner such as pytest-asyncio (auto mode, or mark the tests); without
it, or from a test that is not ``async def``, ``immagent_store`` fails the test with a message saying so.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from immagent.testing._scripted import ScriptedModel

if TYPE_CHECKING:
    from immagent._store import Store


@pytest.fixture
def scripted_model() -> Iterator[ScriptedModel]:
    """An offline model answering as ``immagent/scripted``; queue replies with ``.reply()``."""
    model = ScriptedModel().install()
    model.reset()
    try:
        yield model
    finally:
        model.reset()


_NEEDS_ASYNCIO = (
    "immagent_store is an async fixture: install pytest-asyncio (`pip install pytest-asyncio`) and set "
    "asyncio_mode = auto in your pytest configuration (or mark the tests with @pytest.mark.asyncio)"
)

try:  # the store fixture is async: offer it when pytest-asyncio is there to run it
    import pytest_asyncio
except ImportError:

    @pytest.fixture(name="immagent_store")
    def _store_without_pytest_asyncio() -> Store:
        """Fails the test that asks for it, saying what is missing (rather than "fixture not found")."""
        pytest.fail(_NEEDS_ASYNCIO, pytrace=False)

else:

    @pytest_asyncio.fixture(name="immagent_store")
    async def _store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
        """A Store on a fresh, migrated SQLite database in the test's temporary folder."""
        from immagent._store import Store

        test = getattr(request, "function", None)
        if test is not None and not inspect.iscoroutinefunction(test):
            pytest.fail(
                f"immagent_store is an async fixture: make {test.__name__} an async test "
                f"(`async def {test.__name__}(immagent_store): ...`) and await the store's methods",
                pytrace=False,
            )
        async with await Store.connect(f"sqlite+aiosqlite:///{tmp_path / 'immagent.db'}") as store:
            await store.migrate()
            yield store
