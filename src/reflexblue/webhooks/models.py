"""Event types, events, webhooks, and the deliveries of events to webhooks with their attempts."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from reflexblue.core.database import Base, UTCDateTime, new_id, utcnow

TEST_EVENT_TYPE = "webhook.test"
TEST_EVENT_TYPE_DESCRIPTION = "Sent on request to check that a webhook's receiver answers."


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class EventType(Base):
    """An entry of the catalogue webhooks subscribe to, such as `order.created`."""

    __tablename__ = "event_types"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # A JSON Schema that published payloads must satisfy; None accepts any object.
    schema: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Webhook(Base):
    """An integration's subscription: which event types go to which URL.

    The one webhook without an integration is the operator's (see `webhooks.operator`).
    """

    __tablename__ = "webhooks"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("wh"))
    integration_id: Mapped[str | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE")
    )
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(Text, default="")
    # Event type names, or ["*"] for every type.
    event_types: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    # When the current run of failed attempts began; a webhook failing long enough is disabled.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Failed attempts in a row since the last success; 0 while healthy.
    failure_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # Lists page by id within one integration.
    __table_args__ = (Index("ix_webhooks_integration_id_id", "integration_id", "id"),)


class Event(Base):
    """Something that happened, published once and delivered to every matching webhook."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("evt"))
    type: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Set when the event concerns one integration only; None reaches every integration.
    integration_id: Mapped[str | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # The publisher's key for "this event, once": a repeat with it is answered, not published.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), index=True, unique=True)
    # SHA-256 of what was published under the key; the key with other content is refused.
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    # The API request that published the event, carried into the worker's log lines.
    request_id: Mapped[str | None] = mapped_column(String(64))


# Pending deliveries attempted before: retries, manual and bulk ones included. Its values are
# written out, in the index and in the worker's query alike: both databases use a partial index
# only for a query whose condition implies the index's, which one with bound parameters cannot.
RETRY_LANE = "status = 'pending' AND attempt_count > 0"


class Delivery(Base):
    """One event on its way to one webhook. The table is also the delivery queue."""

    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("dlv"))
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING.value)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    # A worker's claim: until this time no other worker takes the delivery.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        # The queue: workers take the due pending deliveries in order of their time.
        Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_deliveries_webhook_id_id", "webhook_id", "id"),
        # The retries among them, which workers take first (see webhooks/worker.py).
        Index(
            "ix_deliveries_retries_due",
            "next_attempt_at",
            sqlite_where=text(RETRY_LANE),
            postgresql_where=text(RETRY_LANE),
        ),
    )


class Attempt(Base):
    """One HTTP request of a delivery and what came of it."""

    __tablename__ = "attempts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("att"))
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    duration_ms: Mapped[int] = mapped_column(Integer)
    response_status: Mapped[int | None] = mapped_column(Integer)
    # The first 4 KiB of the receiver's answer.
    response_body: Mapped[str] = mapped_column(String(4096), default="")
    error: Mapped[str | None] = mapped_column(String(40))

    __table_args__ = (Index("ix_attempts_delivery_id_attempted_at", "delivery_id", "attempted_at"),)


class IdempotencyRecord(Base):
    """The first answer to an External API POST sent with an Idempotency-Key, for replays."""

    __tablename__ = "idempotency_records"

    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # SHA-256 of method, path and body: the same key with another request is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    # Both empty while the first request is still being answered.
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[Any | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class RecoveryStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"


class Recovery(Base):
    """A request to send a webhook's failed deliveries of a time window again, carried out by
    the workers in batches."""

    __tablename__ = "recoveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("rcv"))
    webhook_id: Mapped[str] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), index=True
    )
    # The window, on the deliveries' created_at: since <= created_at < until.
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default=RecoveryStatus.RUNNING.value)
    # Failed deliveries in the window when it was requested, and those sent back to the queue.
    total: Mapped[int] = mapped_column(Integer, default=0)
    requeued: Mapped[int] = mapped_column(Integer, default=0)
    # The id of the last delivery a batch looked at; the next batch goes on after it.
    cursor: Mapped[str | None] = mapped_column(String(40))
    requested_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Workers look for the running ones.
    __table_args__ = (Index("ix_recoveries_status_created_at", "status", "created_at"),)
