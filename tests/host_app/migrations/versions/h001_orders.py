"""The host app's orders.

Revision ID: h001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "h001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "host_orders",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=False),
    )
    op.create_index("ix_host_orders_agent_id", "host_orders", ["agent_id"])


def downgrade() -> None:
    op.drop_table("host_orders")
