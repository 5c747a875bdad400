"""Histories, lineages and trees longer than a recursive query's default limit (MySQL/MariaDB stop at 1,000
iterations: MariaDB silently, with the rows so far): every walk comes back whole and gc keeps all of it."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from immagent import Message, PersistentAgent, Store
from immagent._engine import RECURSION_LIMIT

LENGTH = 1_500  # past the 1,000 iterations of MySQL/MariaDB's default


async def long_state(store: Store) -> PersistentAgent:
    root = await store.create_agent(name="long", system_prompt="p", model="immagent/long")
    return await root.extend([Message(role="user", content=f"m{i}") for i in range(LENGTH)])


async def test_a_history_longer_than_the_default_recursion_limit_loads_whole_and_survives_gc(
    store: Store,
) -> None:
    state = await long_state(store)
    await store.gc()  # its reachability walk is recursive too: it must keep every message
    store.clear_cache()
    loaded = await store.load_agent(state.id)
    history = await loaded.messages()
    assert [m.content for m in history] == [f"m{i}" for i in range(LENGTH)]
    assert [m.depth for m in history] == list(range(LENGTH))
    store.clear_cache()
    assert [m.content for m in await loaded.messages(last=1_200)] == [f"m{i}" for i in range(300, LENGTH)]
    tree = await store.tree_messages(loaded)
    assert len(tree) == LENGTH


async def test_a_shared_engine_gets_the_limit_lifted_too(db_url: str) -> None:
    """An app's own engine: immagent lifts the limit on the connections it uses (MySQL/MariaDB only)."""
    engine = create_async_engine(db_url)
    try:
        async with await Store.connect(engine=engine) as store:
            state = await long_state(store)
            store.clear_cache()
            assert len(await (await store.load_agent(state.id)).messages()) == LENGTH
        if engine.dialect.name in ("mysql", "mariadb"):
            variable = "max_recursive_iterations" if engine.dialect.is_mariadb else "cte_max_recursion_depth"  # type: ignore[attr-defined]
            async with engine.connect() as conn:
                assert (await conn.execute(text(f"SELECT @@{variable}"))).scalar_one() == RECURSION_LIMIT
    finally:
        await engine.dispose()
