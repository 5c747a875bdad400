"""Whole conversation trees: every state, or every message, of one tree in one query.

A tree is what ``root_id`` names: the first state and everything grown from it (advances, clones,
metadata changes), all in one tenant. Walking it state by state (``children()``) costs a query per state;
a drawing of a thousand states needs it in one read, through the ``(tenant, root_id)`` indexes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from immagent._errors import AgentNotFoundError
from immagent._messages import Message
from immagent._orm import AGENTS, MESSAGES
from immagent._store import _agents
from immagent._store._rows import AGENT_COLUMNS, MESSAGE_COLUMNS, columns, message_views
from immagent._views import PersistentAgent

if TYPE_CHECKING:
    from uuid import UUID

    from immagent._store._store import Store


async def _root_of(store: Store, state: PersistentAgent | UUID | str) -> tuple[str, UUID]:
    """The (tenant, root_id) of the tree ``state`` belongs to: a view of this tenant, or an id loaded."""
    view = state if isinstance(state, PersistentAgent) else await _agents.load(store, state)
    if view.tenant != store.tenant_name:
        raise AgentNotFoundError(view.id)
    return view.tenant, view.root_id


async def states(store: Store, state: PersistentAgent | UUID | str) -> tuple[PersistentAgent, ...]:
    """Every state of ``state``'s tree, oldest first (creation time, then id)."""
    tenant, root_id = await _root_of(store, state)
    stmt = (
        select(*columns(AGENTS.c, AGENT_COLUMNS))
        .where(AGENTS.c.tenant == tenant, AGENTS.c.root_id == root_id)
        .order_by(AGENTS.c.created_at, AGENTS.c.id)
    )
    async with store._db.read() as s:
        return _agents._bound(store, await s.execute(stmt))


async def messages(store: Store, state: PersistentAgent | UUID | str) -> tuple[Message, ...]:
    """Every message of ``state``'s tree (all its states' histories), by depth, then creation."""
    tenant, root_id = await _root_of(store, state)
    stmt = (
        select(*columns(MESSAGES.c, MESSAGE_COLUMNS))
        .where(MESSAGES.c.tenant == tenant, MESSAGES.c.root_id == root_id)
        .order_by(MESSAGES.c.depth, MESSAGES.c.created_at, MESSAGES.c.id)
    )
    async with store._db.read() as s:
        return tuple(message_views(await s.execute(stmt)))
