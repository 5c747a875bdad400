"""Distribution keys: every key and link of a conversation tree carries root_id (Citus-ready).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

Why: a distributed PostgreSQL (Citus) keeps one conversation tree on one shard only if every primary key,
unique key and foreign key of the tree's tables includes the distribution column, ``root_id``. What
changes, and which rows may ever change: still none.

- ``immagent_messages``: primary key ``(id, root_id)`` (was ``id``); the parent link is the foreign key
  ``(parent_id, root_id) -> (id, root_id)``, so a message's parent is in its own tree, indexed by
  ``ix_immagent_messages_parent_id_root_id`` (replaces the index on ``parent_id``).
- ``immagent_agents``: primary key ``(id, root_id)``; the head link is ``(head_id, root_id) -> messages
  (id, root_id)``, indexed by ``ix_immagent_agents_head_id_root_id`` (replaces the one on ``head_id``).
  ``id`` comes first in both keys, so a lookup by id alone (``load_agent``) is still an index lookup on
  one database.
- ``immagent_thread_moves``: a new column ``root_id``, the tree of the state the move points at, filled
  from the agents for existing rows; the link to the state becomes ``(agent_id, root_id) -> agents
  (id, root_id)``, indexed by ``ix_immagent_thread_moves_agent_id_root_id``. With it a thread's head is
  loaded from its one shard. (On Citus that one foreign key cannot exist: threads are sharded by tenant,
  states by tree; ``immagent db distribute`` drops it and the store checks it, see docs/deploy.md.)

Filling ``root_id`` is the one UPDATE immagent ever runs: the UPDATE-refusing triggers of the three tables
are dropped first and created again at the end. SQLite changes a key by rebuilding the table (Alembic's
batch mode), which needs its foreign key enforcement off during the migration: ``Store.migrate()`` turns
it off around the whole run and runs ``PRAGMA foreign_key_check`` before committing (an Alembic env of
your own must do the same for SQLite). Ids are unique on their own (UUIDv7 and content ids), so the
downgrade back to single-column keys cannot meet a duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from immagent._migrations import update_guard_sql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("immagent_messages", "immagent_agents", "immagent_thread_moves")
UuidType = sa.Uuid().with_variant(sa.Uuid(native_uuid=False), "mysql", "mariadb")


def upgrade() -> None:
    _guards(create=False)
    op.add_column("immagent_thread_moves", sa.Column("root_id", UuidType, nullable=True))
    op.execute(
        "UPDATE immagent_thread_moves SET root_id = (SELECT a.root_id FROM immagent_agents a "
        "WHERE a.id = immagent_thread_moves.agent_id)"
    )
    if op.get_context().dialect.name == "sqlite":
        # One rebuild per table, into the shape written out below (no reflection: --sql works too).
        for table in _sqlite_tables():
            with op.batch_alter_table(table.name, copy_from=table, recreate="always"):
                pass
    else:
        _alter_keys()
    _foreign_keys_hold()
    _guards(create=True)


def _alter_keys() -> None:
    """PostgreSQL and MySQL/MariaDB: the keys changed in place, one ALTER at a time."""
    # What refers to a primary key goes before the key changes (PostgreSQL and MySQL refuse otherwise).
    with op.batch_alter_table("immagent_thread_moves") as batch:
        batch.drop_constraint("fk_immagent_thread_moves_agent_id_immagent_agents", type_="foreignkey")
        batch.drop_index("ix_immagent_thread_moves_agent_id")
        batch.alter_column("root_id", existing_type=UuidType, nullable=False)
    with op.batch_alter_table("immagent_agents") as batch:
        batch.drop_constraint("fk_immagent_agents_head_id_immagent_messages", type_="foreignkey")
        batch.drop_index("ix_immagent_agents_head_id")
    with op.batch_alter_table("immagent_messages") as batch:
        batch.drop_constraint("fk_immagent_messages_parent_id_immagent_messages", type_="foreignkey")
        batch.drop_index("ix_immagent_messages_parent_id")
        batch.drop_constraint("pk_immagent_messages", type_="primary")
        batch.create_primary_key("pk_immagent_messages", ["id", "root_id"])
        batch.create_index("ix_immagent_messages_parent_id_root_id", ["parent_id", "root_id"])
        batch.create_foreign_key(
            "fk_immagent_messages_parent_immagent_messages",
            "immagent_messages",
            ["parent_id", "root_id"],
            ["id", "root_id"],
        )
    with op.batch_alter_table("immagent_agents") as batch:
        batch.drop_constraint("pk_immagent_agents", type_="primary")
        batch.create_primary_key("pk_immagent_agents", ["id", "root_id"])
        batch.create_index("ix_immagent_agents_head_id_root_id", ["head_id", "root_id"])
        batch.create_foreign_key(
            "fk_immagent_agents_head_immagent_messages",
            "immagent_messages",
            ["head_id", "root_id"],
            ["id", "root_id"],
        )
    with op.batch_alter_table("immagent_thread_moves") as batch:
        batch.create_index("ix_immagent_thread_moves_agent_id_root_id", ["agent_id", "root_id"])
        batch.create_foreign_key(
            "fk_immagent_thread_moves_agent_immagent_agents",
            "immagent_agents",
            ["agent_id", "root_id"],
            ["id", "root_id"],
        )


def _sqlite_tables() -> list[sa.Table]:
    """The three tables as this revision leaves them, columns in their existing order (SQLite)."""
    metadata = sa.MetaData()
    uuid, time, json = sa.Uuid(), sa.DateTime(timezone=True), sa.JSON()

    def tenant() -> sa.Column[str]:
        return sa.Column("tenant", sa.String(64), nullable=False, server_default="default")

    messages = sa.Table(
        "immagent_messages", metadata,
        sa.Column("id", uuid, nullable=False), sa.Column("root_id", uuid, nullable=False),
        sa.Column("parent_id", uuid), sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False), sa.Column("content", sa.Text()),
        sa.Column("tool_calls", json), sa.Column("tool_call_id", sa.String(255)),
        sa.Column("input_tokens", sa.Integer()), sa.Column("output_tokens", sa.Integer()),
        sa.Column("created_at", time, nullable=False), tenant(), sa.Column("native", json),
        sa.PrimaryKeyConstraint("id", "root_id", name="pk_immagent_messages"),
        sa.ForeignKeyConstraint(
            ["parent_id", "root_id"], ["immagent_messages.id", "immagent_messages.root_id"],
            name="fk_immagent_messages_parent_immagent_messages",
        ),
        sa.Index("ix_immagent_messages_parent_id_root_id", "parent_id", "root_id"),
        sa.Index("ix_immagent_messages_tenant_root_id", "tenant", "root_id"),
    )  # fmt: skip
    agents = sa.Table(
        "immagent_agents", metadata,
        sa.Column("id", uuid, nullable=False), sa.Column("root_id", uuid, nullable=False),
        sa.Column("parent_id", uuid), sa.Column("name", sa.String(255), nullable=False),
        sa.Column("system_prompt_id", uuid, nullable=False), sa.Column("head_id", uuid),
        sa.Column("model", sa.String(255), nullable=False), sa.Column("metadata", json, nullable=False),
        sa.Column("model_settings", json, nullable=False), sa.Column("created_at", time, nullable=False),
        tenant(),
        sa.PrimaryKeyConstraint("id", "root_id", name="pk_immagent_agents"),
        sa.ForeignKeyConstraint(
            ["head_id", "root_id"], ["immagent_messages.id", "immagent_messages.root_id"],
            name="fk_immagent_agents_head_immagent_messages",
        ),
        sa.ForeignKeyConstraint(["system_prompt_id"], ["immagent_texts.id"],
                                name="fk_immagent_agents_system_prompt_id_immagent_texts"),
        sa.Index("ix_immagent_agents_root_id", "root_id"),
        sa.Index("ix_immagent_agents_parent_id", "parent_id"),
        sa.Index("ix_immagent_agents_name", "name"),
        sa.Index("ix_immagent_agents_system_prompt_id", "system_prompt_id"),
        sa.Index("ix_immagent_agents_head_id_root_id", "head_id", "root_id"),
        sa.Index("ix_immagent_agents_tenant_created_at_id", "tenant", "created_at", "id"),
    )  # fmt: skip
    sa.Table("immagent_texts", metadata, sa.Column("id", uuid, primary_key=True))
    sa.Table("immagent_threads", metadata, sa.Column("tenant", sa.String(64), primary_key=True),
             sa.Column("key", sa.String(255), primary_key=True))  # fmt: skip
    moves = sa.Table(
        "immagent_thread_moves", metadata,
        sa.Column("tenant", sa.String(64), nullable=False), sa.Column("key", sa.String(255), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("agent_id", uuid, nullable=False), sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", time, nullable=False), sa.Column("root_id", uuid, nullable=False),
        sa.PrimaryKeyConstraint("tenant", "key", "position", name="pk_immagent_thread_moves"),
        sa.ForeignKeyConstraint(["agent_id", "root_id"], ["immagent_agents.id", "immagent_agents.root_id"],
                                name="fk_immagent_thread_moves_agent_immagent_agents"),
        sa.ForeignKeyConstraint(["tenant", "key"], ["immagent_threads.tenant", "immagent_threads.key"],
                                name="fk_immagent_thread_moves_thread_immagent_threads"),
        sa.Index("ix_immagent_thread_moves_agent_id_root_id", "agent_id", "root_id"),
    )  # fmt: skip
    return [messages, agents, moves]


def downgrade() -> None:
    """Back to single-column keys; the thread log forgets which tree its states are in."""
    _guards(create=False)
    with op.batch_alter_table("immagent_thread_moves") as batch:
        batch.drop_constraint("fk_immagent_thread_moves_agent_immagent_agents", type_="foreignkey")
        batch.drop_index("ix_immagent_thread_moves_agent_id_root_id")
    with op.batch_alter_table("immagent_agents") as batch:
        batch.drop_constraint("fk_immagent_agents_head_immagent_messages", type_="foreignkey")
        batch.drop_index("ix_immagent_agents_head_id_root_id")
    with op.batch_alter_table("immagent_messages") as batch:
        batch.drop_constraint("fk_immagent_messages_parent_immagent_messages", type_="foreignkey")
        batch.drop_index("ix_immagent_messages_parent_id_root_id")
        batch.drop_constraint("pk_immagent_messages", type_="primary")
        batch.create_primary_key("pk_immagent_messages", ["id"])
        batch.create_index("ix_immagent_messages_parent_id", ["parent_id"])
        batch.create_foreign_key(
            "fk_immagent_messages_parent_id_immagent_messages", "immagent_messages", ["parent_id"], ["id"]
        )
    with op.batch_alter_table("immagent_agents") as batch:
        batch.drop_constraint("pk_immagent_agents", type_="primary")
        batch.create_primary_key("pk_immagent_agents", ["id"])
        batch.create_index("ix_immagent_agents_head_id", ["head_id"])
        batch.create_foreign_key(
            "fk_immagent_agents_head_id_immagent_messages", "immagent_messages", ["head_id"], ["id"]
        )
    with op.batch_alter_table("immagent_thread_moves") as batch:
        batch.drop_column("root_id")
        batch.create_index("ix_immagent_thread_moves_agent_id", ["agent_id"])
        batch.create_foreign_key(
            "fk_immagent_thread_moves_agent_id_immagent_agents", "immagent_agents", ["agent_id"], ["id"]
        )
    _foreign_keys_hold()
    _guards(create=True)


def _guards(*, create: bool) -> None:
    """Drop or create the UPDATE-refusing triggers of the tables this revision rebuilds (SQLite's batch
    mode drops a table's triggers with the table)."""
    dialect = op.get_context().dialect.name
    for table in TABLES:
        statement = update_guard_sql(dialect, table, create=create)
        if statement is not None:
            op.execute(statement)


def _foreign_keys_hold() -> None:
    """SQLite rebuilt the tables with its foreign key checks off: check every link before committing."""
    context = op.get_context()
    if context.dialect.name != "sqlite" or context.as_sql:
        return
    broken = context.connection.exec_driver_sql("PRAGMA foreign_key_check").all()  # type: ignore[union-attr]
    if broken:
        raise RuntimeError(f"immagent 0004: foreign keys broken after the rebuild: {broken[:3]}")
