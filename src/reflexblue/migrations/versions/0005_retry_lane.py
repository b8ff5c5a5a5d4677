"""The retry lane: a partial index of the pending deliveries already attempted, so that workers
find due retries at once however long the queue of first attempts is.

Revision ID: 0005
Revises: 0004
Created: 2026-12-04 10:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in reflexblue.webhooks.models.RETRY_LANE, written out: a migration keeps what it made.
_RETRY_LANE = "status = 'pending' AND attempt_count > 0"


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_retries_due",
        "deliveries",
        ["next_attempt_at"],
        unique=False,
        sqlite_where=sa.text(_RETRY_LANE),
        postgresql_where=sa.text(_RETRY_LANE),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_retries_due", table_name="deliveries")
