"""A store's cache of immutable views: states and histories by weak reference, texts by content id.

Nothing cached can go stale, because nothing stored changes: a state's fields and its history are fixed
when it is written, and a text's id is its content's hash. The cache only decides when to read again.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any
from uuid import UUID

from immagent._messages import Message
from immagent._views import PersistentAgent

__all__ = ["ViewCache"]

_TEXT_CACHE_SIZE = 1024


class _History:
    """A cached history (a tuple cannot be weakly referenced, this holder can), and its wire form for the
    model once a turn needed it (kept with the tuple it was made from, so the two always match)."""

    __slots__ = ("__weakref__", "messages", "wire")

    def __init__(self, messages: tuple[Message, ...], wire: list[dict[str, Any]] | None = None) -> None:
        self.messages = messages
        self.wire = wire


class ViewCache:
    """States live while a caller holds them; a history lives while a state that has it does."""

    def __init__(self) -> None:
        self.agents: weakref.WeakValueDictionary[UUID, PersistentAgent] = weakref.WeakValueDictionary()
        self._histories: weakref.WeakValueDictionary[UUID, _History] = weakref.WeakValueDictionary()
        self._texts: OrderedDict[UUID, str] = OrderedDict()

    def clear(self) -> None:
        self.agents.clear()
        self._histories.clear()
        self._texts.clear()

    def history_of(self, view: PersistentAgent) -> tuple[Message, ...] | None:
        """The history known for a state (its own, or another state's with the same head), else None."""
        if view._history is not None:
            return view._history.messages  # type: ignore[no-any-return]
        if view.head_id is None:
            return ()
        holder = self._histories.get(view.head_id)
        return holder.messages if holder is not None else None

    def share_history(
        self, view: PersistentAgent, messages: tuple[Message, ...], wire: list[dict[str, Any]] | None = None
    ) -> None:
        """Attach ``messages`` (and their wire form, when known) to ``view``; states with the same head
        share one holder."""
        if view._history is not None:
            return
        head_id = view.head_id
        holder = self._histories.get(head_id) if head_id is not None else None
        if holder is None:
            holder = _History(messages, wire)
            if head_id is not None:
                self._histories[head_id] = holder
        view._history = holder

    @staticmethod
    def history_wire(view: PersistentAgent) -> list[dict[str, Any]] | None:
        """The wire form kept with the history attached to ``view`` (None when no turn needed it yet)."""
        holder = view._history
        return None if holder is None else holder.wire

    @staticmethod
    def keep_history_wire(view: PersistentAgent, wire: list[dict[str, Any]]) -> None:
        """Keep ``wire`` (made from the history attached to ``view``) with that history."""
        if view._history is not None:
            view._history.wire = wire

    def text(self, text_id: UUID) -> str | None:
        return self._texts.get(text_id)

    def remember_text(self, text_id: UUID, content: str) -> None:
        self._texts[text_id] = content
        self._texts.move_to_end(text_id)
        while len(self._texts) > _TEXT_CACHE_SIZE:
            self._texts.popitem(last=False)

    def forget_texts(self) -> None:
        self._texts.clear()
