"""Conversations prepared for reading: which tool each result answers, arguments as indented JSON, token
sums, where two histories part. Pure functions over views; the templates do the markup.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from immagent._messages import Message
from immagent._views import PersistentAgent

__all__ = ["Fork", "fork", "pretty_json", "stamp", "tokens", "tool_names"]


def tool_names(messages: Sequence[Message]) -> dict[str, str]:
    """tool_call_id -> the tool's name, so a tool result can say which call it answers."""
    return {call.id: call.name for m in messages for call in m.tool_calls or ()}


def pretty_json(value: Any) -> str:
    """A JSON value, or JSON text (tool arguments), indented for reading; other text as it is."""
    if isinstance(value, str):
        text = value
        try:
            value = json.loads(text)
        except ValueError:
            return text
        if not isinstance(value, dict | list):
            return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


def tokens(messages: Sequence[Message]) -> tuple[int, int]:
    """(input, output) tokens summed over ``messages`` (None counts as 0, as ``token_usage()`` does)."""
    return sum(m.input_tokens or 0 for m in messages), sum(m.output_tokens or 0 for m in messages)


def stamp(when: datetime) -> str:
    """A time as the pages show it (UTC, to the second)."""
    return f"{when:%Y-%m-%d %H:%M:%S} UTC"


@dataclass(frozen=True)
class Fork:
    """Where two histories part: ``common`` messages they share (stored once), then each one's tail."""

    common: tuple[Message, ...]
    a_tail: tuple[Message, ...]
    b_tail: tuple[Message, ...]
    ancestor: PersistentAgent | None  # the last state both lineages hold (None across trees)


def fork(
    a: Sequence[Message],
    b: Sequence[Message],
    a_lineage: Sequence[PersistentAgent],
    b_lineage: Sequence[PersistentAgent],
) -> Fork:
    """Split two histories at their fork: messages are shared by id, so the common part is a prefix."""
    shared = 0
    for x, y in zip(a, b, strict=False):
        if x.id != y.id:
            break
        shared += 1
    in_b: Mapping[UUID, PersistentAgent] = {s.id: s for s in b_lineage}
    ancestor = next((s for s in reversed(a_lineage) if s.id in in_b), None)
    return Fork(tuple(a[:shared]), tuple(a[shared:]), tuple(b[shared:]), ancestor)
