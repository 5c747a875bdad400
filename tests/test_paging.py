"""Keyset pages of agents and threads: every row once, newest first, whatever the ties; ``offset=`` still
works for the original API's callers. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from immagent import Page, PersistentAgent, Store, SystemPrompt, ValidationError
from immagent._ids import content_id, uuid7

MODEL = "gpt-4o-mini"
SAME_TIME = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


async def agents_at_one_instant(store: Store, count: int) -> list[PersistentAgent]:
    """``count`` roots that share one created_at, so only the id orders them (imported with ids kept)."""
    prompt = SystemPrompt(id=content_id("p"), content="p")
    made = [
        PersistentAgent(
            id=uuid7(),
            root_id=UUID(int=0),
            parent_id=None,
            name=f"tie{i}",
            system_prompt_id=prompt.id,
            head_id=None,
            model=MODEL,
            metadata={},
            model_settings={},
            created_at=SAME_TIME,
        )
        for i in range(count)
    ]
    made = [a.model_copy(update={"root_id": a.id}) for a in made]
    return list(await store.import_states(made, [], [prompt]))


async def pages(store: Store, size: int, **kw: object) -> list[Page[PersistentAgent]]:
    found: list[Page[PersistentAgent]] = []
    cursor = None
    while True:
        page = await store.list_agents(limit=size, after=cursor, **kw)  # type: ignore[arg-type]
        found.append(page)
        cursor = page.next_cursor
        if cursor is None:
            return found


async def test_keyset_pages_visit_every_state_once_newest_first_even_with_equal_times(store: Store) -> None:
    older = [await store.create_agent(name=f"a{i}", system_prompt="p", model=MODEL) for i in range(4)]
    ties = await agents_at_one_instant(store, 5)
    newer = [await store.create_agent(name=f"b{i}", system_prompt="p", model=MODEL) for i in range(3)]
    everything = await store.list_agents(limit=100)
    assert everything.next_cursor is None and len(everything) == 12
    expected = sorted(older + ties + newer, key=lambda a: (a.created_at, a.id), reverse=True)
    assert [a.id for a in everything] == [a.id for a in expected]

    for size in (1, 2, 5, 12, 13):
        walked = await pages(store, size)
        assert [a.id for page in walked for a in page] == [a.id for a in expected], size
        assert all(len(p) == size for p in walked[:-1])
    assert len(await pages(store, 12)) == 1  # an exact fit needs no empty last page
    offsets = [await store.list_agents(limit=5, offset=o) for o in (0, 5, 10)]
    assert [a.id for page in offsets for a in page] == [a.id for a in expected]


async def test_keyset_pages_combine_with_the_name_filter(store: Store) -> None:
    for i in range(5):
        await store.create_agent(name=f"match {i}", system_prompt="p", model=MODEL)
        await store.create_agent(name=f"other {i}", system_prompt="p", model=MODEL)
    walked = await pages(store, 2, name="MATCH")
    assert [a.name for page in walked for a in page] == [f"match {i}" for i in reversed(range(5))]


async def test_a_bad_cursor_is_a_validation_error_naming_after(store: Store) -> None:
    agent = await store.create_agent(name="a", system_prompt="p", model=MODEL)
    await store.create_thread("t1", agent)
    await store.create_thread("t2", agent)
    thread_cursor = (await store.list_threads(limit=1)).next_cursor
    assert thread_cursor is not None
    for cursor in ("", "garbage", "e30", thread_cursor, "x" * 2000, 42):
        with pytest.raises(ValidationError) as caught:
            await store.list_agents(after=cursor)  # type: ignore[arg-type]
        assert caught.value.field == "after"
    await store.create_agent(name="b", system_prompt="p", model=MODEL)
    agent_cursor = (await store.list_agents(limit=1)).next_cursor
    assert agent_cursor is not None
    with pytest.raises(ValidationError, match="after"):
        await store.list_threads(after=agent_cursor)
    with pytest.raises(ValidationError) as both:
        await store.list_agents(offset=1, after=agent_cursor)
    assert both.value.field == "offset"


async def test_thread_pages_visit_every_thread_once_newest_first(store: Store) -> None:
    agent = await store.create_agent(name="a", system_prompt="p", model=MODEL)
    keys = [f"thread-{i:02d}" for i in range(7)]
    for key in keys:
        await store.create_thread(key, agent)
    walked, cursor = [], None
    while True:
        page = await store.list_threads(limit=3, after=cursor)
        walked.append([t.key for t in page])
        if (cursor := page.next_cursor) is None:
            break
    assert walked == [keys[6:3:-1], keys[3:0:-1], keys[:1]]
