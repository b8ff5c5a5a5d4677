"""Operations: recoveries of failed deliveries, a webhook's run of failures, the operator's
webhook (the one webhook without an integration) and the `webhook.disabled` event type.

Revision ID: 0004
Revises: 0003
Created: 2026-12-03 19:40:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import reflexblue.core.database

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DISABLED_EVENT_TYPE = {
    "name": "webhook.disabled",
    "description": "Sent to the operator's webhook when a webhook is disabled automatically.",
    "created_at": datetime(2026, 12, 3, tzinfo=UTC),
}
_NOT_NULL_INTEGRATION = "integration_id VARCHAR(40) NOT NULL,"
_NULL_INTEGRATION = "integration_id VARCHAR(40),"


def upgrade() -> None:
    with op.batch_alter_table("webhooks", schema=None, recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column("failure_count", sa.Integer(), server_default="0", nullable=False)
        )
    _let_webhooks_lack_an_integration()
    op.create_table(
        "recoveries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("webhook_id", sa.String(length=40), nullable=False),
        sa.Column("since", reflexblue.core.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("until", reflexblue.core.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("requeued", sa.Integer(), nullable=False),
        sa.Column("cursor", sa.String(length=40), nullable=True),
        sa.Column("requested_by", sa.String(length=120), nullable=False),
        sa.Column(
            "created_at", reflexblue.core.database.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "finished_at", reflexblue.core.database.UTCDateTime(timezone=True), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name=op.f("fk_recoveries_webhook_id_webhooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recoveries")),
    )
    with op.batch_alter_table("recoveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_recoveries_status_created_at", ["status", "created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_recoveries_webhook_id"), ["webhook_id"], unique=False)
    op.bulk_insert(
        sa.table(
            "event_types",
            sa.column("name", sa.String()),
            sa.column("description", sa.Text()),
            sa.column("created_at", reflexblue.core.database.UTCDateTime(timezone=True)),
        ),
        [_DISABLED_EVENT_TYPE],
    )


def _let_webhooks_lack_an_integration() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("webhooks", "integration_id", existing_type=sa.String(40), nullable=True)
        return
    # SQLite changes a column only by copying its table, and dropping the old `webhooks` table
    # with foreign keys on (as the product runs) cascades into every delivery and attempt.
    # Removing a NOT NULL constraint does not touch the stored rows, so SQLite's documented
    # alternative applies: edit the table's definition in place, in this transaction
    # (https://www.sqlite.org/lang_altertable.html, "Making Other Kinds Of Table Schema Changes").
    bind = op.get_bind()
    definition = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'webhooks'"
    ).scalar_one()
    if _NULL_INTEGRATION in definition:
        return  # upgraded before, then downgraded: the column stayed nullable
    if definition.count(_NOT_NULL_INTEGRATION) != 1:
        raise RuntimeError("webhooks.integration_id is not defined as migration 0002 left it")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'webhooks'",
        (definition.replace(_NOT_NULL_INTEGRATION, _NULL_INTEGRATION),),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def downgrade() -> None:
    op.execute("DELETE FROM event_types WHERE name = 'webhook.disabled'")
    with op.batch_alter_table("recoveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recoveries_webhook_id"))
        batch_op.drop_index("ix_recoveries_status_created_at")
    op.drop_table("recoveries")
    # Operator webhooks have no integration to keep under a NOT NULL column.
    op.execute("DELETE FROM webhooks WHERE integration_id IS NULL")
    # TODO: on SQLite the column stays nullable after a downgrade, since restoring the
    # constraint means copying the table, which cascades into the deliveries (see upgrade).
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("webhooks", "integration_id", existing_type=sa.String(40), nullable=False)
    with op.batch_alter_table("webhooks", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("failure_count")
