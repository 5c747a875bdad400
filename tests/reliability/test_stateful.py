"""A property-based stateful test: random create / advance / clone / with_metadata / delete / gc /
clear_cache sequences against a plain model of what the store should hold.

After every step, every remaining agent loads, and its history (contents and message ids) and lineage
match the model. After gc, the database holds exactly the messages and texts that remaining agents reach
(so gc never removes anything reachable, and leaves no garbage). An engine event watches every statement
of the whole run: the library never issues an UPDATE.

Hypothesis drives the machine synchronously, so each rule runs its coroutine on an event loop the test
owns (``asyncio.Runner``); stores are closed in ``teardown`` and the loop at the end.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar
from uuid import UUID

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from immagent import PersistentAgent, Store
from immagent._orm import AgentRow, MessageRow, TextRow
from immagent.testing import ScriptedModel
from tests.reliability._support import Tally
from tests.support.db import UpdateGuard, empty_tables

_T = TypeVar("_T")

NAMES = st.sampled_from(["alpha", "beta", "Beta", "100%_done"])
PROMPTS = st.sampled_from(["You are terse.", "You are kind.", "Réponds en français."])
METADATA = st.dictionaries(
    st.text("abcxyz", min_size=1, max_size=3), st.integers(-5, 5) | st.booleans(), max_size=2
)
TEXTS = st.sampled_from(["hi", "what now?", "ünïcödé 🙂", "'; DROP TABLE immagent_agents; --"])
PICK = st.integers(min_value=0, max_value=10_000)


@dataclass(frozen=True)
class Expected:
    """What one state should look like: its parent, name, metadata and history (ids and contents)."""

    parent_id: UUID | None
    name: str
    metadata: dict[str, Any]
    prompt: str
    history: tuple[tuple[UUID, str, str | None], ...]  # (message id, role, content)


class StoreMachine(RuleBasedStateMachine):
    """One example: a store on an emptied database, and the model it must agree with."""

    url: ClassVar[str]
    runner: ClassVar[asyncio.Runner]
    guard: ClassVar[UpdateGuard]
    model_name: ClassVar[str]
    steps: ClassVar[list[str]]

    def __init__(self) -> None:
        super().__init__()
        self.run(empty_tables(self.url))
        self.store = self.run(Store.connect(self.url, min_size=1, max_size=3))
        self.guard.watch(self.store.engine)
        self.expected: dict[UUID, Expected] = {}
        self.views: dict[UUID, PersistentAgent] = {}

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return self.runner.run(coroutine)

    def teardown(self) -> None:
        self.run(self.store.close())

    # -- helpers ---------------------------------------------------------------------------------------

    def _pick(self, index: int) -> PersistentAgent:
        ids = sorted(self.views)
        return self.views[ids[index % len(ids)]]

    def _remember(self, view: PersistentAgent, expected: Expected, step: str) -> None:
        assert view.id not in self.expected
        self.expected[view.id] = expected
        self.views[view.id] = view
        self.steps.append(step)

    async def _history(self, view: PersistentAgent) -> tuple[tuple[UUID, str, str | None], ...]:
        return tuple((m.id, m.role, m.content) for m in await view.messages())

    # -- rules -----------------------------------------------------------------------------------------

    @initialize(name=NAMES, prompt=PROMPTS, text=TEXTS)
    def start(self, name: str, prompt: str, text: str) -> None:
        """Every example starts with a root and its first turn, so every rule has something to act on."""
        self.create(name, prompt, {})
        self.advance(0, text)

    @rule(name=NAMES, prompt=PROMPTS, metadata=METADATA)
    def create(self, name: str, prompt: str, metadata: dict[str, Any]) -> None:
        view = self.run(
            self.store.create_agent(name=name, system_prompt=prompt, model=self.model_name, metadata=metadata)
        )
        self._remember(view, Expected(None, name, metadata, prompt, ()), "create")

    @precondition(lambda self: self.views)
    @rule(pick=PICK, text=TEXTS)
    def advance(self, pick: int, text: str) -> None:
        agent = self._pick(pick)
        old = self.expected[agent.id]

        async def go() -> tuple[PersistentAgent, tuple[tuple[UUID, str, str | None], ...]]:
            new = await agent.advance(text)
            return new, await self._history(new)

        new, history = self.run(go())
        assert history[:-2] == old.history
        assert [(role, content) for _, role, content in history[-2:]] == [
            ("user", text),
            ("assistant", f"echo: {text}"),
        ]
        self._remember(new, Expected(agent.id, old.name, old.metadata, old.prompt, history), "advance")

    @precondition(lambda self: self.views)
    @rule(pick=PICK)
    def clone(self, pick: int) -> None:
        agent = self._pick(pick)
        old = self.expected[agent.id]
        new = self.run(agent.clone())
        self._remember(new, Expected(old.parent_id, old.name, old.metadata, old.prompt, old.history), "clone")

    @precondition(lambda self: self.views)
    @rule(pick=PICK, metadata=METADATA)
    def with_metadata(self, pick: int, metadata: dict[str, Any]) -> None:
        agent = self._pick(pick)
        old = self.expected[agent.id]
        new = self.run(agent.with_metadata(metadata))
        self._remember(new, Expected(agent.id, old.name, metadata, old.prompt, old.history), "with_metadata")

    @precondition(lambda self: self.views)
    @rule(pick=PICK)
    def delete(self, pick: int) -> None:
        agent = self._pick(pick)
        self.run(self.store.delete(agent))
        del self.views[agent.id]
        del self.expected[agent.id]
        self.steps.append("delete")

    @rule()
    def gc(self) -> None:
        async def go() -> tuple[dict[str, int], set[UUID], set[UUID], set[UUID], set[UUID]]:
            async with self.store.engine.connect() as conn:
                messages_before = set((await conn.execute(select(MessageRow.id))).scalars())
                texts_before = set((await conn.execute(select(TextRow.id))).scalars())
            removed = await self.store.gc()
            async with self.store.engine.connect() as conn:
                messages = set((await conn.execute(select(MessageRow.id))).scalars())
                texts = set((await conn.execute(select(TextRow.id))).scalars())
            return removed, messages_before, texts_before, messages, texts

        removed, messages_before, texts_before, messages, texts = self.run(go())
        reachable = {mid for e in self.expected.values() for mid, _, _ in e.history}
        prompts = {v.system_prompt_id for v in self.views.values()}
        assert messages == reachable  # nothing reachable removed, nothing unreachable left
        assert texts == prompts
        assert removed == {"messages": len(messages_before - messages), "texts": len(texts_before - texts)}
        self.steps.append("gc")

    @rule()
    def clear_cache(self) -> None:
        self.store.clear_cache()

        async def reload() -> dict[UUID, PersistentAgent]:
            return {agent_id: await self.store.load_agent(agent_id) for agent_id in self.views}

        self.views = self.run(reload())  # later rules work on states read back from the database
        self.steps.append("clear_cache")

    # -- what must hold after every step ---------------------------------------------------------------

    @invariant()
    def every_remaining_agent_loads_and_matches(self) -> None:
        async def check() -> None:
            async with self.store.engine.connect() as conn:
                ids = set((await conn.execute(select(AgentRow.id))).scalars())
            assert ids == set(self.expected)
            for agent_id, expected in self.expected.items():
                view = await self.store.load_agent(agent_id)
                assert view.parent_id == expected.parent_id
                assert (view.name, view.metadata) == (expected.name, expected.metadata)
                assert await view.system_prompt() == expected.prompt
                assert await self._history(view) == expected.history
                lineage = [a.id for a in await view.lineage()]
                assert lineage == self._expected_lineage(agent_id)

        self.run(check())

    def _expected_lineage(self, agent_id: UUID) -> list[UUID]:
        """Root first; it stops at a deleted ancestor (the gap)."""
        chain: list[UUID] = []
        current: UUID | None = agent_id
        while current is not None and current in self.expected:
            chain.append(current)
            current = self.expected[current].parent_id
        return chain[::-1]


def test_random_operation_sequences_keep_the_store_consistent_and_never_update(
    db_url: str, scripted: ScriptedModel, tally: Tally
) -> None:
    guard = UpdateGuard()
    steps: list[str] = []
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:  # a loop of our own, not pytest's
        machine = type(
            "Machine",
            (StoreMachine,),
            {"url": db_url, "runner": runner, "guard": guard, "model_name": scripted.model, "steps": steps},
        )
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=15,
                stateful_step_count=15,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    assert guard.updates == []
    assert guard.statements > 0
    tried = Counter(steps)
    for kind in ("create", "advance", "clone", "with_metadata", "delete", "gc", "clear_cache"):
        assert tried[kind] > 0, f"the run never tried {kind}: {tried}"
    print(f"\nstateful run: {dict(tried)}")
    tally.add("stateful operations", len(steps))
    tally.add("stateful statements checked for UPDATE", guard.statements)
