"""Conversation trees of any size and shape, built as views (no model call), to draw or to import.

``synthetic_tree(n, shape)`` returns ``n`` states of one tree and their messages: each turn adds a user
message and an assistant reply to its parent's history; clones share their original's parent and head;
metadata changes share their parent's head. Shapes:

- ``linear``: one long chat (every state the child of the previous one);
- ``chat``: a long chat with a branch every 25 states, a clone now and then, a metadata change;
- ``bushy``: each state grows from a random earlier one (many short branches).

``store_tree(store, ...)`` imports such a tree with ``store.import_states`` (one transaction).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Literal

from immagent import Message, PersistentAgent, Store, SystemPrompt
from immagent._ids import content_id, uuid7

__all__ = ["Shape", "new_root", "store_tree", "synthetic_tree"]

Shape = Literal["linear", "chat", "bushy"]
PROMPT = "You are a patient tester."
START = datetime(2026, 1, 1, tzinfo=UTC)


def new_root(name: str, prompt: SystemPrompt, created_at: datetime, **fields: object) -> PersistentAgent:
    """A root state built by hand (no store): an empty history, ``fields`` overriding the defaults."""
    root_id = uuid7()
    values: dict[str, object] = {
        "id": root_id,
        "root_id": root_id,
        "parent_id": None,
        "name": name,
        "system_prompt_id": prompt.id,
        "head_id": None,
        "model": "immagent/synthetic",
        "metadata": {},
        "model_settings": {},
        "created_at": created_at,
    }
    return PersistentAgent.model_validate({**values, **fields})


def synthetic_tree(
    n: int, shape: Shape = "chat", *, seed: int = 7, name: str = "synthetic"
) -> tuple[list[PersistentAgent], list[Message], SystemPrompt]:
    """``n`` states (the root first, creation order) of one tree, their messages, and the prompt."""
    rng = random.Random(seed)
    prompt = SystemPrompt(id=content_id(PROMPT), content=PROMPT)
    clock = iter(START + timedelta(milliseconds=i) for i in range(10 * n + 10))
    root = new_root(name, prompt, next(clock))
    states, messages = [root], []
    depth_of: dict[object, int] = {}
    for i in range(1, n):
        parent = _parent(states, i, shape, rng)
        kind = "turn"
        if shape != "linear" and i % 37 == 0 and parent.parent_id is not None:
            kind = "clone"
        elif shape == "chat" and i % 53 == 0:
            kind = "metadata"
        head = parent.head_id
        metadata: dict[str, object] = {}
        # a clone is a sibling of ``parent``: the same parent, the same history
        above = next(s for s in states if s.id == parent.parent_id) if kind == "clone" else parent
        if kind == "metadata":
            metadata = {"step": i}
        if kind == "turn":
            depth = depth_of.get(head, -1) + 1
            ask = Message(role="user", content=f"question {i}: what about branch {i % 7}?", parent_id=head,
                          depth=depth, created_at=next(clock))  # fmt: skip
            reply = Message(role="assistant", content=f"answer {i}: it depends on {rng.randint(1, 99)}.",
                            parent_id=ask.id, depth=depth + 1, input_tokens=10 + depth, output_tokens=7,
                            created_at=next(clock))  # fmt: skip
            messages += [ask, reply]
            depth_of[ask.id], depth_of[reply.id] = depth, depth + 1
            head = reply.id
        states.append(
            root.model_copy(
                update={
                    "id": uuid7(),
                    "parent_id": above.id,
                    "head_id": head,
                    "metadata": metadata,
                    "created_at": next(clock),
                }
            )
        )
    return states, messages, prompt


def _parent(states: list[PersistentAgent], i: int, shape: Shape, rng: random.Random) -> PersistentAgent:
    if shape == "linear" or len(states) < 3:
        return states[-1]
    if shape == "bushy":
        return rng.choice(states)
    return states[-1] if i % 25 else rng.choice(states[len(states) // 2 :])


async def store_tree(
    store: Store, n: int, shape: Shape = "chat", *, seed: int = 7, name: str = "synthetic"
) -> tuple[PersistentAgent, ...]:
    """A synthetic tree written to ``store`` (ids kept); its states, root first."""
    states, messages, prompt = synthetic_tree(n, shape, seed=seed, name=name)
    return await store.import_states(states, messages, [prompt])
