"""Native messages: each message may keep the form another agent framework wrote it in.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

What changes, and which rows may ever change: still none.

- ``immagent_messages.native``: a nullable JSON column holding
  ``{"format": ..., "data": ...}``, a message exactly as a framework (Pydantic AI, the OpenAI Agents SDK)
  wrote it, beside the readable projection immagent keeps in the other columns (role, content,
  tool_calls, tokens), which views, the CLI and the inspector show. Existing rows get NULL: a message
  immagent's own loop wrote has no other form. It is ``json``, not ``jsonb``, on PostgreSQL, as on the
  other backends: the text is kept as written, so key order (which a model sees when the form is sent
  back) and numbers such as ``1e16`` come back exactly; ``jsonb`` would sort the keys and turn ``1e16``
  into an integer.

Adding a nullable column copies no table (SQLite keeps its UPDATE-refusing triggers) and rewrites no row;
on MySQL/MariaDB the JSON column is a LONGTEXT with a ``json_valid`` check, as in 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ExactJSON = sa.JSON()  # json on PostgreSQL too: the text as written


def upgrade() -> None:
    op.add_column("immagent_messages", sa.Column("native", ExactJSON, nullable=True))


def downgrade() -> None:
    """Back to 0002: the native forms are dropped; every message keeps its readable projection."""
    # A plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35 has it): no table copy, so the triggers stay.
    op.drop_column("immagent_messages", "native")
