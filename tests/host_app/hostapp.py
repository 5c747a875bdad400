"""A tiny host app: its own SQLAlchemy models (one table) on its own MetaData, beside immagent's tables.

An order row points at the agent state that handled it; it is written in the same transaction as that
state (``agent.advance(..., session=session)``), so both exist or neither does.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import Integer, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class HostBase(DeclarativeBase):
    """The host app's declarative base (its MetaData knows nothing of immagent's tables)."""


class Order(HostBase):
    __tablename__ = "host_orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agent_id: Mapped[UUID | None] = mapped_column(Uuid, index=True)
    note: Mapped[str] = mapped_column(String(200))
