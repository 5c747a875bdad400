"""Declarative, insert-only ORM models. These rows never leave the store: callers see Pydantic views.

Which rows may ever change: none. A turn INSERTs messages and one agent; nothing is UPDATEd, ever (the
``before_update`` hook below refuses it in the ORM, and the migrations install triggers so the database
refuses it too). DELETE happens only through ``Store.delete()`` (one agent row) and ``Store.gc()``
(messages and texts that no remaining agent reaches).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column

from immagent._errors import ImmutabilityError

#: Constraint names are deterministic so Alembic migrations can name what they create and drop.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: JSON everywhere, JSONB on PostgreSQL (smaller, indexable); Python None is SQL NULL, not JSON 'null'.
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
Timestamp = DateTime(timezone=True)


class Base(DeclarativeBase):
    """immagent's own declarative base: its MetaData holds only immagent's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TextRow(Base):
    """A content-addressed text (system prompts): ``id`` is derived from ``content``, so one prompt
    shared by many agents is stored once. Immutable; gc removes a text no agent references."""

    __tablename__ = "immagent_texts"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class MessageRow(Base):
    """One message, a node of the conversation tree: ``parent_id`` is the previous message of its history,
    ``depth`` its position, ``root_id`` the first agent state of the lineage that wrote it (a shard key).
    Immutable; gc removes a message that no remaining agent's history contains."""

    __tablename__ = "immagent_messages"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    root_id: Mapped[UUID] = mapped_column(Uuid, index=True)
    parent_id: Mapped[UUID | None] = mapped_column(Uuid, ForeignKey("immagent_messages.id"), index=True)
    depth: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str | None] = mapped_column(Text)
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    tool_call_id: Mapped[str | None] = mapped_column(String(255))
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class AgentRow(Base):
    """One agent state. ``parent_id`` is an indexed reference, not a foreign key: deleting a state must
    not cascade to, or rewrite, its descendants. ``head_id`` is the last message of its history (null
    when empty), so two states with the same head have the same history. Immutable."""

    __tablename__ = "immagent_agents"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    root_id: Mapped[UUID] = mapped_column(Uuid, index=True)
    parent_id: Mapped[UUID | None] = mapped_column(Uuid, index=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    system_prompt_id: Mapped[UUID] = mapped_column(Uuid, ForeignKey("immagent_texts.id"), index=True)
    head_id: Mapped[UUID | None] = mapped_column(Uuid, ForeignKey("immagent_messages.id"), index=True)
    model: Mapped[str] = mapped_column(String(255))
    # "metadata" is reserved on declarative classes, so the attribute carries a trailing underscore.
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType)
    model_settings: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (Index("ix_immagent_agents_created_at_id", "created_at", "id"),)


#: The Core tables, typed, for the few statements written in Core (recursive CTEs, bulk deletes).
TEXTS = cast(Table, TextRow.__table__)
MESSAGES = cast(Table, MessageRow.__table__)
AGENTS = cast(Table, AgentRow.__table__)
TABLES = (TEXTS, MESSAGES, AGENTS)


@event.listens_for(Base, "before_update", propagate=True)
def _refuse_update(mapper: Mapper[Any], connection: Any, target: Base) -> None:
    """The ORM half of immutability: a flush that would UPDATE an immagent row fails before any SQL."""
    raise ImmutabilityError(
        f"{type(target).__name__} rows are immutable; create a new state instead of changing one"
    )
