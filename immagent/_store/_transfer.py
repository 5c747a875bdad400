"""Sizes, and recreating exported states (``immagent import``) with their ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from uuid import UUID

from sqlalchemy import func, select

from immagent import _validation as check
from immagent import limits
from immagent._errors import ValidationError
from immagent._ids import content_id
from immagent._messages import Message, utcnow
from immagent._orm import AGENTS, MESSAGES, TEXTS, THREAD_MOVES, THREADS
from immagent._sql import insert_ignore
from immagent._store import _agents
from immagent._store._rows import derived_agent, message_values
from immagent._views import PersistentAgent, SystemPrompt

if TYPE_CHECKING:
    from immagent._store._store import Store


async def stats(store: Store) -> dict[str, int]:
    """Row counts in one query: of the whole database for the store ``connect()`` returned, of the
    tenant for a scoped store (texts: those its states use)."""
    tables = {"agents": AGENTS, "messages": MESSAGES, "threads": THREADS, "thread_moves": THREAD_MOVES}
    counts = {}
    for kind, table in tables.items():
        stmt = select(func.count()).select_from(table)
        counts[kind] = stmt.where(table.c.tenant == store.tenant_name) if store.scoped else stmt
    texts = select(func.count()).select_from(TEXTS)
    if store.scoped:
        used = select(AGENTS.c.system_prompt_id).where(AGENTS.c.tenant == store.tenant_name)
        texts = texts.where(TEXTS.c.id.in_(used))
    counts["texts"] = texts
    async with store._db.read() as s:
        row = (await s.execute(select(*(c.scalar_subquery() for c in counts.values())))).one()
    return {kind: int(n) for kind, n in zip(counts, row, strict=True)}


async def import_states(
    store: Store,
    agents: Sequence[PersistentAgent],
    messages: Sequence[Message],
    system_prompts: Sequence[SystemPrompt],
) -> tuple[PersistentAgent, ...]:
    by_id = {m.id: m for m in messages}
    root_of = _roots_of_messages(agents, by_id)
    prompts = {p.id: p.content for p in system_prompts}
    for prompt_id, content in prompts.items():
        if content_id(content) != prompt_id:
            raise ValidationError("system_prompts", f"{prompt_id} is not the id of its content")
    if missing := [str(a.id) for a in agents if a.system_prompt_id not in prompts]:
        raise ValidationError("system_prompts", f"the system prompt of state {missing[0]} is missing")
    rows = []
    for agent in agents:
        row = derived_agent(agent, parent_id=agent.parent_id, head_id=agent.head_id, metadata=agent.metadata)
        row.update(id=agent.id, created_at=agent.created_at, root_id=agent.root_id, tenant=store.tenant_name)
        rows.append(row)
    now = utcnow()
    async with store._db.write() as s:
        if prompts:
            texts = [{"id": i, "content": c, "created_at": now} for i, c in prompts.items()]
            await insert_ignore(s, TEXTS, texts)
        if by_id:  # parents first: a message's parent_id is a foreign key
            ordered = sorted(by_id.values(), key=lambda m: m.depth)
            await insert_ignore(
                s, MESSAGES, [message_values(m, root_of[m.id], store.tenant_name) for m in ordered]
            )
        if rows:
            await insert_ignore(s, AGENTS, rows)
    return await _agents.load_many(store, (a.id for a in agents))


def _roots_of_messages(agents: Sequence[PersistentAgent], by_id: dict[UUID, Message]) -> dict[UUID, UUID]:
    """Check every state and its history (before anything is written); map each message id to the
    root_id of the lineage whose history holds it."""
    root_of: dict[UUID, UUID] = {}
    for agent in agents:
        check.text("name", agent.name, max_length=limits.NAME_MAX_LENGTH)
        check.text("model", agent.model, max_length=limits.MODEL_MAX_LENGTH)
        check.json_object("metadata", agent.metadata)
        check.model_settings(agent.model_settings)
        cursor = agent.head_id
        while cursor is not None and cursor not in root_of:
            message = by_id.get(cursor)
            if message is None:
                raise ValidationError("messages", f"message {cursor} of state {agent.id} is missing")
            parent = by_id.get(message.parent_id) if message.parent_id is not None else None
            known = parent is not None or message.parent_id is None  # else: reported as missing next
            if known and message.depth != (parent.depth + 1 if parent is not None else 0):
                raise ValidationError("messages", f"message {message.id} has an inconsistent depth")
            root_of[cursor] = agent.root_id
            cursor = message.parent_id
        if cursor is not None and root_of[cursor] != agent.root_id:  # a history reaches another tree
            raise ValidationError("agents", f"state {agent.id} shares messages with another tree")
    if extra := [str(i) for i in by_id if i not in root_of]:
        raise ValidationError("messages", f"no state's history holds {', '.join(extra[:3])}")
    return root_of
