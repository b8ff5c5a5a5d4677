"""Events remember the idempotency key they were published with, a fingerprint of what was
published under it, and the id of the API request that published them.

Revision ID: 0003
Revises: 0002
Created: 2026-12-03 19:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("fingerprint", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))
        # Unique where set; both databases let any number of rows leave it empty.
        batch_op.create_index(
            batch_op.f("ix_events_idempotency_key"), ["idempotency_key"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_idempotency_key"))
        batch_op.drop_column("request_id")
        batch_op.drop_column("fingerprint")
        batch_op.drop_column("idempotency_key")
