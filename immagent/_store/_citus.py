"""Citus (distributed PostgreSQL): how immagent's tables are distributed, and the few statements that
differ there.

One conversation tree per shard: messages and agents are distributed by ``root_id`` and colocated, so a
turn, a history walk, a lineage or a clone runs on one shard (a router query). Threads and their log are
distributed by ``tenant`` (colocated with each other), so a thread's moves and a tenant's thread listing
run on one shard too. Texts (content-addressed prompts, shared by every tree) are a reference table,
copied to every node. What must span shards (listing and counting states, gc, erasure of a tenant) fans
out; docs/deploy.md ("Past one PostgreSQL") says what each costs.

The one key Citus cannot hold is the thread log's link to its state (a table sharded by tenant cannot
point into one sharded by tree): ``distribute()`` drops it, and the store does what it did: a move locks
the state it points at (``FOR SHARE``, so a concurrent delete waits, then the move sees it gone), and a
delete looks for a thread that points at the state after removing it (so it sees any move committed
before, and rolls back).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import Connection, bindparam, select, text

from immagent._errors import ValidationError
from immagent._orm import AGENTS, MESSAGES

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

#: How each table is distributed: (table, distribution column or None for a reference table, colocated
#: with). In this order: a table is distributed after the tables its foreign keys point at.
LAYOUT: tuple[tuple[str, str | None, str | None], ...] = (
    ("immagent_texts", None, None),
    ("immagent_messages", "root_id", None),
    ("immagent_agents", "root_id", "immagent_messages"),
    ("immagent_threads", "tenant", None),
    ("immagent_thread_moves", "tenant", "immagent_threads"),
)
#: The foreign key Citus cannot hold (tenant-sharded log -> tree-sharded states); the store checks it.
CROSS_SHARD_KEY = "fk_immagent_thread_moves_agent_immagent_agents"

_HAS_CITUS = text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
_DISTRIBUTED = text(
    "SELECT logicalrelid::regclass::text, partmethod FROM pg_dist_partition "
    "WHERE logicalrelid::regclass::text LIKE 'immagent%'"
)
#: The foreign keys between immagent's tables: (table, name, definition).
_FOREIGN_KEYS = text(
    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE contype = 'f' AND conrelid::regclass::text LIKE 'immagent%' ORDER BY 1, 2"
)
#: A move's state, locked as a foreign key check would (one shard: the tree is named).
LOCK_STATE = (
    select(AGENTS.c.id)
    .where(AGENTS.c.id == bindparam("id"), AGENTS.c.root_id == bindparam("root_id"))
    .with_for_update(read=True)
)
#: For a transaction that deletes from distributed tables on several shards and then from the reference
#: table (erasure): Citus refuses a reference table's DML after parallel multi-shard DML in one
#: transaction, so the shards are written one at a time per node instead.
SEQUENTIAL = text("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")
#: The trees that hold messages (gc walks them one by one on Citus).
TREES = select(MESSAGES.c.root_id).distinct()


def state_params(agent: tuple[UUID, UUID]) -> dict[str, Any]:
    return {"id": agent[0], "root_id": agent[1]}


def state_exists(conn: Connection, agent: tuple[UUID, UUID]) -> bool:
    """Lock (for share) the state ``(id, root_id)`` a move points at; False when it is gone."""
    return conn.execute(LOCK_STATE, state_params(agent)).first() is not None


async def is_distributed(conn: AsyncConnection) -> bool:
    """True when the citus extension is there and immagent's messages table is distributed."""
    return await conn.run_sync(distributed_sync)


def distributed_sync(conn: Connection) -> bool:
    """``is_distributed`` on a sync connection (Alembic's side)."""
    if conn.dialect.name != "postgresql" or not conn.execute(_HAS_CITUS).scalar():
        return False
    return "immagent_messages" in {name for name, _ in conn.execute(_DISTRIBUTED)}


@dataclass(frozen=True)
class Distribution:
    """What ``distribute()`` did: one line per step taken (empty when everything was distributed)."""

    steps: tuple[str, ...]

    @property
    def already(self) -> bool:
        return not self.steps


async def distribute(conn: AsyncConnection) -> Distribution:
    """Turn immagent's tables (migrated to head) into Citus distributed and reference tables, colocated
    as ``LAYOUT`` says; each step runs only if it is not done yet, so a second run does nothing. Needs
    the citus extension (else ValidationError naming the URL's database) and the coordinator."""
    if conn.dialect.name != "postgresql" or not (await conn.execute(_HAS_CITUS)).scalar():
        raise ValidationError(
            "url", "this database has no citus extension (CREATE EXTENSION citus on a Citus coordinator)"
        )
    # The UPDATE-refusing triggers: Citus refuses to distribute a table with triggers unless told the
    # trigger is safe (ours only raises), and then creates it on every shard. One connection per node
    # for the whole transaction, so the foreign keys can be added back after the copies.
    await conn.execute(text("SET LOCAL citus.enable_unsafe_triggers = on"))
    await conn.execute(text("SET LOCAL citus.multi_shard_modify_mode = 'sequential'"))
    done = {name for name, _ in await conn.execute(_DISTRIBUTED)}
    todo = [entry for entry in LAYOUT if entry[0] not in done]
    steps: list[str] = []
    cross = CROSS_SHARD_KEY
    # Citus distributes a table only when no local table points at it: the keys between immagent's
    # tables are dropped, the tables distributed, and the keys added back (now between colocated
    # tables, or to the reference table), except the one Citus cannot hold.
    keys = list(await conn.execute(_FOREIGN_KEYS)) if todo else []
    for referencing, name, _ in keys:
        await conn.execute(text(f"ALTER TABLE {referencing} DROP CONSTRAINT {name}"))
        if name == cross:
            steps.append(
                f"dropped {name} (threads are sharded by tenant, states by tree; the store checks it)"
            )
    for name, column, colocate in todo:
        if column is None:
            await conn.execute(text("SELECT create_reference_table(:t)"), {"t": name})
            steps.append(f"{name}: reference table (on every node)")
        else:
            await conn.execute(
                text("SELECT create_distributed_table(:t, :c, colocate_with => :w)"),
                {"t": name, "c": column, "w": colocate or "none"},
            )
            colocated = f", colocated with {colocate}" if colocate else ""
            steps.append(f"{name}: distributed by {column}{colocated}")
    for referencing, name, definition in keys:
        if name != cross:
            await conn.execute(text(f"ALTER TABLE {referencing} ADD CONSTRAINT {name} {definition}"))
    if keys:
        kept = sorted(name for _, name, _ in keys if name != cross)
        steps.append(f"foreign keys kept between colocated tables: {', '.join(kept)}")
    return Distribution(tuple(steps))
