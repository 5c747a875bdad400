"""The schema revision is checked once, by the first operation that needs it; migrate() fixes it."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory

from immagent import SchemaError, Store
from immagent._migrations import HEAD_REVISION, alembic_config
from tests.support.db import BACKENDS


def test_the_library_head_constant_matches_the_migration_scripts() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


@pytest.mark.parametrize("fresh_db_url", BACKENDS, indirect=True)
async def test_an_empty_database_connects_then_fails_clearly_until_migrated(fresh_db_url: str) -> None:
    async with await Store.connect(fresh_db_url) as store:
        assert await store.ping()
        with pytest.raises(SchemaError) as caught:
            await store.list_agents()
        message = str(caught.value)
        assert "immagent db upgrade" in message and "never migrated" in message
        assert caught.value.database_revision is None
        assert caught.value.library_revision == HEAD_REVISION
        await store.migrate()
        assert await store.schema_revision() == HEAD_REVISION
        agent = await store.create_agent(name="a", system_prompt="p", model="gpt-4o-mini")
        assert (await store.list_agents())[0].id == agent.id
