"""A conversation tree as the inspector reads it: what each state is (a root, a turn or a rewind, a clone, a
metadata change, or a gap where a state was deleted) and a one-line label for it, from the tree's states and
messages. Pure: views in, values out; no database, no markup.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from uuid import UUID

from immagent._messages import Message
from immagent._views import PersistentAgent, Thread
from immagent.cli._common import one_line_text

__all__ = ["Family", "Member", "family", "short_id", "turn_messages"]

Kind = Literal["root", "turn", "clone", "metadata", "gap"]
LABEL_WIDTH = 90


def short_id(state_id: UUID) -> str:
    """The last 8 hex digits of an id: a state's random part (the first digits of a UUIDv7 are its time,
    the same for states made close together)."""
    return state_id.hex[-8:]


@dataclass(frozen=True)
class Member:
    """One node of the tree: a state (or, for ``gap``, a deleted state that others still point at)."""

    id: UUID
    parent: UUID | None  # the node above it in the drawing (None for a root or a gap)
    kind: Kind
    label: str
    created_at: datetime | None = None
    threads: tuple[str, ...] = ()  # keys of the threads whose head this state is
    twin_of: UUID | None = None  # an earlier sibling with the same history (a clone)
    children: list[UUID] = field(default_factory=list)


@dataclass(frozen=True)
class Family:
    """Every member of one tree, roots first-come (the root, then any gaps), children oldest first."""

    members: dict[UUID, Member]
    roots: list[UUID]
    states: int


def turn_messages(head_id: UUID | None, stop: UUID | None, by_id: Mapping[UUID, Message]) -> list[Message]:
    """The messages from ``head_id`` back to (not including) ``stop``, oldest first: what a state added to
    its parent's history."""
    found: list[Message] = []
    cursor = head_id
    while cursor is not None and cursor != stop:
        message = by_id.get(cursor)
        if message is None:
            break
        found.append(message)
        cursor = message.parent_id
    found.reverse()
    return found


def _turn_label(new: Sequence[Message]) -> str:
    """“what the user said” → what came back (a reply, or the tool calls it asked for)."""
    said = next((m.content for m in reversed(new) if m.role == "user" and m.content), None)
    reply = next((m for m in reversed(new) if m.role == "assistant"), None)
    parts = [f"“{one_line_text(said, 50)}”"] if said else []
    if reply is not None and reply.content:
        parts.append(one_line_text(reply.content, 60))
    elif reply is not None and reply.tool_calls:
        parts.append(", ".join(f"{c.name}()" for c in reply.tool_calls))
    if not parts:
        parts.append(f"{len(new)} message{'s' if len(new) != 1 else ''}")
    return one_line_text(" → ".join(parts), LABEL_WIDTH)


def _rewound(parent_head: UUID | None, head: UUID | None, by_message: Mapping[UUID, Message]) -> int:
    """How many messages back ``head`` is from ``parent_head`` when it is an earlier message of the same
    history (``rewind()`` made the state), else 0."""
    top = by_message.get(parent_head) if parent_head is not None else None
    below = by_message.get(head) if head is not None else None
    if top is None or (head is not None and below is None):
        return 0
    back = top.depth - (below.depth if below is not None else -1)
    cursor: Message | None = top
    for _ in range(back if back > 0 else 0):
        cursor = by_message.get(cursor.parent_id) if cursor and cursor.parent_id is not None else None
    return back if back > 0 and (cursor.id if cursor else None) == head else 0


def family(
    states: Sequence[PersistentAgent],
    messages: Sequence[Message],
    threads: Mapping[UUID, Sequence[Thread]],
) -> Family:
    """The members of one tree (``states`` oldest first, as ``store.tree()`` returns them)."""
    by_id = {s.id: s for s in states}
    by_message = {m.id: m for m in messages}
    members: dict[UUID, Member] = {}
    roots: list[UUID] = []
    first_with_head: dict[tuple[UUID | None, UUID | None], UUID] = {}  # (parent, head) -> first state
    for state in states:
        parent = by_id.get(state.parent_id) if state.parent_id is not None else None
        keys = tuple(t.key for t in threads.get(state.id, ()))
        twin = first_with_head.setdefault((state.parent_id, state.head_id), state.id)
        twin_of = twin if twin != state.id else None
        if state.parent_id is None:
            label = one_line_text(f"root “{state.name}” · {state.model}", LABEL_WIDTH)
            kind: Kind = "root"
        elif twin_of is not None:
            label, kind = f"clone: same history as {short_id(twin_of)}", "clone"
        elif parent is not None and (back := _rewound(parent.head_id, state.head_id, by_message)):
            label, kind = f"rewind: {back} message{'s' if back != 1 else ''} back", "turn"
        elif parent is not None and parent.head_id == state.head_id:
            meta = json.dumps(state.metadata, ensure_ascii=False, sort_keys=True)
            label, kind = one_line_text(f"metadata {meta}", LABEL_WIDTH), "metadata"
        else:
            stop = parent.head_id if parent is not None else None
            label, kind = _turn_label(turn_messages(state.head_id, stop, by_message)), "turn"
        above = state.parent_id
        if above is not None and above not in by_id and above not in members:
            members[above] = Member(above, None, "gap", f"deleted state {short_id(above)}")
        members[state.id] = Member(state.id, above, kind, label, state.created_at, keys, twin_of)
    for member in members.values():  # a second pass: a parent may sort after its child (clock skew)
        if member.parent is None:
            roots.append(member.id)
        else:
            members[member.parent].children.append(member.id)
    return Family(members, roots, len(states))
