"""Initial schema: texts, messages, agents, and triggers that refuse UPDATE.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

What each table holds, and which of its rows may ever change: none of them.

- ``immagent_texts``: system prompts, content-addressed (the id is derived from a SHA-256 of the content),
  so a prompt shared by a million agents is stored once. Rows are inserted (``ON CONFLICT DO NOTHING``)
  and removed only by ``Store.gc()`` once no agent references them.
- ``immagent_messages``: one row per message; ``parent_id`` points at the previous message, ``depth`` is
  the position, so the messages form a tree and a history is the path from the root to a head. A turn
  inserts only its new messages. Removed only by ``Store.gc()`` when no agent reaches them.
- ``immagent_agents``: one row per agent state; ``head_id`` is the last message of its history,
  ``parent_id`` the state it came from (an indexed reference, deliberately not a foreign key, so deleting
  a state neither cascades nor rewrites its descendants). Removed only by ``Store.delete()``.

UPDATE is refused by the database itself: a statement-level trigger on PostgreSQL, a row trigger on SQLite,
a row trigger on MySQL/MariaDB (``SIGNAL SQLSTATE '45000'``). ``root_id`` (the first state of the tree) is
on agents and messages so one conversation tree can live on one shard (Citus ``create_distributed_table``).

MySQL/MariaDB: InnoDB tables in utf8mb4 whose default collation is binary and NO PAD (``utf8mb4_nopad_bin``
on MariaDB, ``utf8mb4_0900_bin`` on MySQL 8), so every text column compares exactly: ``"a"``, ``"A"`` and
``"a "`` are three names, as on the other backends (the server's default collations ignore case and
trailing spaces). UUIDs are ``CHAR(32)`` hex, as on SQLite (MariaDB's own UUID type refuses some
version-8 UUIDs, which content ids are). Timestamps are ``DATETIME(6)`` (UTC; plain DATETIME would drop
the microseconds) and texts ``LONGTEXT`` (TEXT stops at 64 KiB). MySQL commits each DDL statement on
its own, so an upgrade that fails halfway (say, ``CREATE TRIGGER`` refused for want of the TRIGGER
privilege) leaves the tables it created and no revision recorded: drop those ``immagent_`` tables, fix
the cause, upgrade again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

from immagent._migrations import mysql_table_options

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("immagent_texts", "immagent_messages", "immagent_agents")
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
UuidType = sa.Uuid().with_variant(sa.Uuid(native_uuid=False), "mysql", "mariadb")
LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    options = mysql_table_options(op.get_context().dialect)
    op.create_table(
        "immagent_texts",
        sa.Column("id", UuidType, nullable=False),
        sa.Column("content", LongText, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_immagent_texts")),
        **options,
    )
    op.create_table(
        "immagent_messages",
        sa.Column("id", UuidType, nullable=False),
        sa.Column("root_id", UuidType, nullable=False),
        sa.Column("parent_id", UuidType, nullable=True),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("content", LongText, nullable=True),
        sa.Column("tool_calls", JSONType, nullable=True),
        sa.Column("tool_call_id", sa.String(length=255), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["immagent_messages.id"],
            name=op.f("fk_immagent_messages_parent_id_immagent_messages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_immagent_messages")),
        **options,
    )
    op.create_index(op.f("ix_immagent_messages_root_id"), "immagent_messages", ["root_id"])
    op.create_index(op.f("ix_immagent_messages_parent_id"), "immagent_messages", ["parent_id"])
    op.create_table(
        "immagent_agents",
        sa.Column("id", UuidType, nullable=False),
        sa.Column("root_id", UuidType, nullable=False),
        sa.Column("parent_id", UuidType, nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("system_prompt_id", UuidType, nullable=False),
        sa.Column("head_id", UuidType, nullable=True),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("model_settings", JSONType, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["head_id"], ["immagent_messages.id"], name=op.f("fk_immagent_agents_head_id_immagent_messages")
        ),
        sa.ForeignKeyConstraint(
            ["system_prompt_id"],
            ["immagent_texts.id"],
            name=op.f("fk_immagent_agents_system_prompt_id_immagent_texts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_immagent_agents")),
        **options,
    )
    op.create_index(op.f("ix_immagent_agents_root_id"), "immagent_agents", ["root_id"])
    op.create_index(op.f("ix_immagent_agents_parent_id"), "immagent_agents", ["parent_id"])
    op.create_index(op.f("ix_immagent_agents_name"), "immagent_agents", ["name"])
    op.create_index(op.f("ix_immagent_agents_system_prompt_id"), "immagent_agents", ["system_prompt_id"])
    op.create_index(op.f("ix_immagent_agents_head_id"), "immagent_agents", ["head_id"])
    op.create_index("ix_immagent_agents_created_at_id", "immagent_agents", ["created_at", "id"])
    _create_update_guards()


def downgrade() -> None:
    _drop_update_guards()
    op.drop_table("immagent_agents")
    op.drop_table("immagent_messages")
    op.drop_table("immagent_texts")


def _create_update_guards() -> None:
    """Make the database itself refuse UPDATE on every immagent table."""
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        op.execute(
            """
            CREATE FUNCTION immagent_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'immagent rows are immutable: UPDATE on % is refused', TG_TABLE_NAME
                    USING ERRCODE = 'raise_exception';
            END
            $$
            """
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION immagent_refuse_update()"
            )
    elif dialect == "sqlite":
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'immagent rows are immutable: UPDATE on {table} is refused'); END"
            )
    elif dialect in ("mysql", "mariadb"):
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} FOR EACH ROW SIGNAL SQLSTATE "
                f"'45000' SET MESSAGE_TEXT = 'immagent rows are immutable: UPDATE on {table} is refused'"
            )


def _drop_update_guards() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update ON {table}")
        op.execute("DROP FUNCTION IF EXISTS immagent_refuse_update()")
    elif dialect in ("sqlite", "mysql", "mariadb"):
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
