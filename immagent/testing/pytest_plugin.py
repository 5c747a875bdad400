"""pytest plugin (entry point ``immagent``): fixtures for apps that test code built on immagent.

- ``scripted_model``: an installed ScriptedModel (``scripted_model.model`` is the name to use), reset for
  every test, so no real model is ever called.
- ``immagent_store``: a Store on a fresh, migrated SQLite file in the test's temporary folder.

Async fixtures need an async test runner such as pytest-asyncio (auto mode, or mark the tests).
"""

from __future__ import annotations

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


try:  # the store fixture is async: offer it when pytest-asyncio is there to run it
    import pytest_asyncio
except ImportError:  # pragma: no cover - pytest-asyncio is a dev dependency of immagent itself
    pass
else:

    @pytest_asyncio.fixture
    async def immagent_store(tmp_path: Path) -> AsyncIterator[Store]:
        """A Store on a fresh, migrated SQLite database in the test's temporary folder."""
        from immagent._store import Store

        async with await Store.connect(f"sqlite+aiosqlite:///{tmp_path / 'immagent.db'}") as store:
            await store.migrate()
            yield store
