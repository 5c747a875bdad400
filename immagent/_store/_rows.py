"""The one mapping between rows and views, each way: every part of the store builds views and row values
here and nowhere else."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from immagent._ids import uuid7
from immagent._messages import Message, utcnow
from immagent._views import PersistentAgent, Thread, ThreadMove

__all__ = ["agent_view", "derived_agent", "message_values", "message_view", "move_view", "thread_view"]


def agent_view(row: Any) -> PersistentAgent:
    """An agent row (ORM object or result row) as its view."""
    return PersistentAgent.model_validate(row, from_attributes=True)


def message_view(row: Any) -> Message:
    """A message row as its view."""
    return Message.model_validate(row, from_attributes=True)


def thread_view(row: Any) -> Thread:
    """A thread row joined with its newest move (``agent_id``, ``position``, ``moved_at``) as its view."""
    return Thread.model_validate(row, from_attributes=True)


def move_view(row: Any) -> ThreadMove:
    """A thread-log row as its view."""
    return ThreadMove.model_validate(row, from_attributes=True)


def message_values(message: Message, root_id: UUID, tenant: str) -> dict[str, Any]:
    """The column values of the row that stores ``message`` in the tree ``root_id`` of ``tenant``."""
    return {
        "id": message.id,
        "tenant": tenant,
        "root_id": root_id,
        "parent_id": message.parent_id,
        "depth": message.depth,
        "role": message.role,
        "content": message.content,
        "tool_calls": [c.model_dump() for c in message.tool_calls] if message.tool_calls else None,
        "tool_call_id": message.tool_call_id,
        "input_tokens": message.input_tokens,
        "output_tokens": message.output_tokens,
        "created_at": message.created_at,
    }


def derived_agent(
    agent: PersistentAgent,
    *,
    parent_id: UUID | None,
    head_id: UUID | None,
    metadata: Mapping[str, Any],
) -> dict[str, Any]:
    """Column values of a new state derived from ``agent`` (same tenant, tree, name, prompt, model and
    settings)."""
    return {
        "id": uuid7(),
        "tenant": agent.tenant,
        "root_id": agent.root_id,
        "parent_id": parent_id,
        "name": agent.name,
        "system_prompt_id": agent.system_prompt_id,
        "head_id": head_id,
        "model": agent.model,
        "metadata_": dict(metadata),
        "model_settings": dict(agent.model_settings),
        "created_at": utcnow(),
    }
