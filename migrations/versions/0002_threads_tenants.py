"""Threads, tenants and erasure: a tenant on every agent and message, threads and their move log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

What changes, and which rows may ever change: still none.

- ``immagent_agents.tenant`` and ``immagent_messages.tenant``: the tenant a row belongs to. Existing rows
  (and any writer that names none) get ``'default'``, so nothing written before changes meaning. Listing
  pages by keyset within a tenant (``ix_immagent_agents_tenant_created_at_id`` replaces the index on
  ``(created_at, id)``); erasure finds a tenant's or a tree's messages through
  ``ix_immagent_messages_tenant_root_id`` (which replaces the index on ``root_id`` alone).
- ``immagent_threads``: one row per thread, ``(tenant, key)`` its primary key; inserted once, removed only
  by ``Store.delete_thread()`` or erasure.
- ``immagent_thread_moves``: the thread's log (git's reflog): ``(tenant, key, position)`` is the primary
  key, so two writers that expect the same position cannot both move the thread: the database lets one
  insert the next position and refuses the other. The head is the newest entry. ``agent_id`` is a foreign
  key to the state it points at, so a state any thread ever pointed at cannot be deleted under it.

The new tables get the same UPDATE-refusing triggers as the others. On MySQL/MariaDB the new tables get
0001's table options (InnoDB, utf8mb4, the binary NO PAD collation as default) and the added tenant
columns take their table's, so tenants and keys compare exactly, case and trailing spaces included
(``utf8mb4_bin`` would not do: it pads, so ``"a"`` and ``"a "`` would be one key); UUIDs are ``CHAR(32)``
and times ``DATETIME(6)``, as in 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

from immagent._migrations import mysql_table_options, update_guard_sql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_TABLES = ("immagent_threads", "immagent_thread_moves")
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
UuidType = sa.Uuid().with_variant(sa.Uuid(native_uuid=False), "mysql", "mariadb")


def _exact(length: int) -> sa.types.TypeEngine[str]:
    """A key column: exact on every backend (on MySQL/MariaDB through the table's NO PAD binary default)."""
    return sa.String(length)


def _tenant_column() -> sa.Column[str]:
    return sa.Column("tenant", _exact(64), nullable=False, server_default="default")


def upgrade() -> None:
    options = mysql_table_options(op.get_context().dialect)
    # Adding a column keeps SQLite's UPDATE triggers (no table copy); the defaults fill existing rows.
    op.add_column("immagent_agents", _tenant_column())
    op.add_column("immagent_messages", _tenant_column())
    op.drop_index("ix_immagent_agents_created_at_id", table_name="immagent_agents")
    op.create_index(
        "ix_immagent_agents_tenant_created_at_id", "immagent_agents", ["tenant", "created_at", "id"]
    )
    op.drop_index(op.f("ix_immagent_messages_root_id"), table_name="immagent_messages")
    op.create_index("ix_immagent_messages_tenant_root_id", "immagent_messages", ["tenant", "root_id"])
    op.create_table(
        "immagent_threads",
        sa.Column("tenant", _exact(64), nullable=False),
        sa.Column("key", _exact(255), nullable=False),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("tenant", "key", name=op.f("pk_immagent_threads")),
        **options,
    )
    op.create_index(
        "ix_immagent_threads_tenant_created_at_key", "immagent_threads", ["tenant", "created_at", "key"]
    )
    op.create_table(
        "immagent_thread_moves",
        sa.Column("tenant", _exact(64), nullable=False),
        sa.Column("key", _exact(255), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("agent_id", UuidType, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["immagent_agents.id"],
            name=op.f("fk_immagent_thread_moves_agent_id_immagent_agents"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant", "key"],
            ["immagent_threads.tenant", "immagent_threads.key"],
            name="fk_immagent_thread_moves_thread_immagent_threads",
        ),
        sa.PrimaryKeyConstraint("tenant", "key", "position", name=op.f("pk_immagent_thread_moves")),
        **options,
    )
    op.create_index(op.f("ix_immagent_thread_moves_agent_id"), "immagent_thread_moves", ["agent_id"])
    _create_update_guards(NEW_TABLES)


def downgrade() -> None:
    """Back to 0001: threads and their logs are dropped; every agent and message stays (tenants are
    forgotten, so rows of every tenant become visible to every caller: erase tenants first if that
    matters)."""
    _drop_update_guards(NEW_TABLES)
    if op.get_context().dialect.name not in ("mysql", "mariadb"):  # MySQL: its foreign key needs it
        op.drop_index(op.f("ix_immagent_thread_moves_agent_id"), table_name="immagent_thread_moves")
    op.drop_table("immagent_thread_moves")
    op.drop_index("ix_immagent_threads_tenant_created_at_key", table_name="immagent_threads")
    op.drop_table("immagent_threads")
    op.drop_index("ix_immagent_messages_tenant_root_id", table_name="immagent_messages")
    op.create_index(op.f("ix_immagent_messages_root_id"), "immagent_messages", ["root_id"])
    op.drop_index("ix_immagent_agents_tenant_created_at_id", table_name="immagent_agents")
    op.create_index("ix_immagent_agents_created_at_id", "immagent_agents", ["created_at", "id"])
    # A plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35 has it): no table copy, so SQLite keeps the
    # tables' triggers, and no DROP TABLE that the foreign keys pointing at them would refuse.
    op.drop_column("immagent_messages", "tenant")
    op.drop_column("immagent_agents", "tenant")


def _create_update_guards(tables: Sequence[str]) -> None:
    """Make the database itself refuse UPDATE on ``tables`` (0001's function is reused on PostgreSQL)."""
    _guards(tables, create=True)


def _drop_update_guards(tables: Sequence[str]) -> None:
    """Drop the UPDATE-refusing triggers of ``tables`` (the PostgreSQL function stays: 0001 owns it)."""
    _guards(tables, create=False)


def _guards(tables: Sequence[str], *, create: bool) -> None:
    dialect = op.get_context().dialect.name
    for table in tables:
        statement = update_guard_sql(dialect, table, create=create)
        if statement is not None:
            op.execute(statement)
