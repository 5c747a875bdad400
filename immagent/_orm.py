"""Declarative, insert-only ORM models. These rows never leave the store: callers see Pydantic views.

Which rows may ever change: none. A turn INSERTs messages and one agent; a thread moves by INSERTing a
log entry; nothing is UPDATEd, ever (the ``before_update`` hook below refuses it in the ORM, and the
migrations install triggers so the database refuses it too). DELETE happens only through
``Store.delete()`` (one agent row), ``Store.delete_thread()`` (one thread and its log), ``Store.gc()``
(messages and texts that no remaining agent reaches) and erasure (``erase_tenant``, ``erase_tree``).

Every agent, message and thread belongs to a tenant (``tenant``, ``"default"`` unless a scoped store
wrote it); texts are content-addressed and shared, reached only through a tenant's own agents.

The column types carry their MySQL/MariaDB variants (CHAR(32) UUIDs, DATETIME(6), LONGTEXT). Text compares
exactly there because the migrations give every table a binary NO PAD default collation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Uuid,
    event,
)
from sqlalchemy.dialects.mysql import DATETIME as MYSQL_DATETIME
from sqlalchemy.dialects.mysql import LONGTEXT
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column

from immagent._constants import DEFAULT_TENANT
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
#: JSON kept as the exact text written, on every backend (PostgreSQL's ``json``, not ``jsonb``, which
#: reorders keys and turns ``1e16`` into an integer): for native forms, which must come back unchanged.
ExactJSON = JSON(none_as_null=True)
#: MySQL's DATETIME keeps no zone (values are UTC, read back as UTC) and drops microseconds unless fsp=6.
Timestamp = DateTime(timezone=True).with_variant(MYSQL_DATETIME(fsp=6), "mysql", "mariadb")
#: UUIDs as 32 hex characters on MySQL/MariaDB, as on SQLite: MariaDB's native UUID type (which
#: SQLAlchemy 2.1 picks on 10.7+) refuses some valid version-8 UUIDs, such as ~1.5% of content ids, and
#: sorts versions 1-5 in an order of its own.
UuidType = Uuid().with_variant(Uuid(native_uuid=False), "mysql", "mariadb")
#: Unbounded text; MySQL's TEXT stops at 64 KiB, so LONGTEXT there.
LongText = Text().with_variant(LONGTEXT(), "mysql", "mariadb")


def exact_string(length: int) -> String:
    """A VARCHAR compared byte for byte everywhere. MySQL's default collations ignore case and trailing
    spaces (the keys ``"a"``, ``"A"`` and ``"a "`` would be one key, even under ``utf8mb4_bin``, which
    pads); there the tables' own binary NO PAD collation, set by the migrations and checked by
    ``immagent db check``, makes the column exact."""
    return String(length)


TenantType = exact_string(64)


class Base(DeclarativeBase):
    """immagent's own declarative base: its MetaData holds only immagent's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TextRow(Base):
    """A content-addressed text (system prompts): ``id`` is derived from ``content``, so one prompt
    shared by many agents is stored once. Immutable; gc removes a text no agent references."""

    __tablename__ = "immagent_texts"

    id: Mapped[UUID] = mapped_column(UuidType, primary_key=True)
    content: Mapped[str] = mapped_column(LongText)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class MessageRow(Base):
    """One message, a node of the conversation tree: ``parent_id`` is the previous message of its history,
    ``depth`` its position, ``root_id`` the first agent state of the lineage that wrote it (the shard key:
    the primary key and the parent link carry it, so one tree can live on one Citus shard).
    Immutable; gc removes a message that no remaining agent's history contains."""

    __tablename__ = "immagent_messages"

    id: Mapped[UUID] = mapped_column(UuidType)
    tenant: Mapped[str] = mapped_column(TenantType, server_default=DEFAULT_TENANT)
    root_id: Mapped[UUID] = mapped_column(UuidType)
    parent_id: Mapped[UUID | None] = mapped_column(UuidType)
    depth: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str | None] = mapped_column(LongText)
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    tool_call_id: Mapped[str | None] = mapped_column(String(255))
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    # The message as another framework wrote it, ``{"format": ..., "data": ...}`` (revision 0003); null
    # for immagent's own messages. The columns above stay its readable projection.
    native: Mapped[dict[str, Any] | None] = mapped_column(ExactJSON)

    # (id, root_id): id first, so a lookup by id alone is still an index lookup on one database.
    # Erasure finds a tenant's or a tree's messages through the (tenant, root_id) index.
    __table_args__ = (
        PrimaryKeyConstraint("id", "root_id", name="pk_immagent_messages"),
        ForeignKeyConstraint(
            ["parent_id", "root_id"],
            ["immagent_messages.id", "immagent_messages.root_id"],
            name="fk_immagent_messages_parent_immagent_messages",
        ),
        Index("ix_immagent_messages_parent_id_root_id", "parent_id", "root_id"),
        Index("ix_immagent_messages_tenant_root_id", "tenant", "root_id"),
    )


class AgentRow(Base):
    """One agent state. ``parent_id`` is an indexed reference, not a foreign key: deleting a state must
    not cascade to, or rewrite, its descendants. ``head_id`` is the last message of its history (null
    when empty), so two states with the same head have the same history; the head is in the state's own
    tree (the foreign key carries ``root_id``, the shard key). Immutable."""

    __tablename__ = "immagent_agents"

    id: Mapped[UUID] = mapped_column(UuidType)
    tenant: Mapped[str] = mapped_column(TenantType, server_default=DEFAULT_TENANT)
    root_id: Mapped[UUID] = mapped_column(UuidType, index=True)
    parent_id: Mapped[UUID | None] = mapped_column(UuidType, index=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    system_prompt_id: Mapped[UUID] = mapped_column(UuidType, ForeignKey("immagent_texts.id"), index=True)
    head_id: Mapped[UUID | None] = mapped_column(UuidType)
    model: Mapped[str] = mapped_column(String(255))
    # "metadata" is reserved on declarative classes, so the attribute carries a trailing underscore.
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType)
    model_settings: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    # (id, root_id) as for messages; keyset listing, newest first, within a tenant.
    __table_args__ = (
        PrimaryKeyConstraint("id", "root_id", name="pk_immagent_agents"),
        ForeignKeyConstraint(
            ["head_id", "root_id"],
            ["immagent_messages.id", "immagent_messages.root_id"],
            name="fk_immagent_agents_head_immagent_messages",
        ),
        Index("ix_immagent_agents_head_id_root_id", "head_id", "root_id"),
        Index("ix_immagent_agents_tenant_created_at_id", "tenant", "created_at", "id"),
    )


class ThreadRow(Base):
    """A thread: a key, unique within its tenant, naming one conversation. The row itself never changes;
    where the thread points is the newest entry of its log (``ThreadMoveRow``)."""

    __tablename__ = "immagent_threads"

    tenant: Mapped[str] = mapped_column(TenantType, primary_key=True)
    key: Mapped[str] = mapped_column(exact_string(255), primary_key=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType)
    created_at: Mapped[datetime] = mapped_column(Timestamp)

    __table_args__ = (Index("ix_immagent_threads_tenant_created_at_key", "tenant", "created_at", "key"),)


class ThreadMoveRow(Base):
    """One move of a thread (git's reflog): position 0 is its creation, each move appends position + 1.
    The primary key (tenant, key, position) is what makes concurrent moves safe: two writers that
    expect the same position both try to insert the next one, and the database lets exactly one win.
    ``(agent_id, root_id)`` is a foreign key, so a state a thread ever pointed at cannot be deleted under
    it; ``root_id`` (the state's tree) also lets the head be loaded from its one shard. On Citus that key
    is dropped by ``distribute()`` (threads are sharded by tenant, states by tree) and the store checks
    it instead (see docs/deploy.md)."""

    __tablename__ = "immagent_thread_moves"

    tenant: Mapped[str] = mapped_column(TenantType, primary_key=True)
    key: Mapped[str] = mapped_column(exact_string(255), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    agent_id: Mapped[UUID] = mapped_column(UuidType)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    root_id: Mapped[UUID] = mapped_column(UuidType)

    __table_args__ = (
        ForeignKeyConstraint(
            ["agent_id", "root_id"],
            ["immagent_agents.id", "immagent_agents.root_id"],
            name="fk_immagent_thread_moves_agent_immagent_agents",
        ),
        Index("ix_immagent_thread_moves_agent_id_root_id", "agent_id", "root_id"),
        ForeignKeyConstraint(
            ["tenant", "key"],
            ["immagent_threads.tenant", "immagent_threads.key"],
            name="fk_immagent_thread_moves_thread_immagent_threads",
        ),
    )


#: The Core tables, typed, for the few statements written in Core (recursive CTEs, bulk deletes).
TEXTS = cast(Table, TextRow.__table__)
MESSAGES = cast(Table, MessageRow.__table__)
AGENTS = cast(Table, AgentRow.__table__)
THREADS = cast(Table, ThreadRow.__table__)
THREAD_MOVES = cast(Table, ThreadMoveRow.__table__)
TABLES = (TEXTS, MESSAGES, AGENTS, THREADS, THREAD_MOVES)


@event.listens_for(Base, "before_update", propagate=True)
def _refuse_update(mapper: Mapper[Any], connection: Any, target: Base) -> None:
    """The ORM half of immutability: a flush that would UPDATE an immagent row fails before any SQL."""
    raise ImmutabilityError(
        f"{type(target).__name__} rows are immutable; create a new state instead of changing one"
    )
