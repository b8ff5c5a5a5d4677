"""Publishing events: the event and one delivery per matching webhook, in the caller's transaction.

Nothing is sent here. The deliveries are rows in the queue table, committed (or rolled back)
together with whatever else the caller's transaction changes; the worker sends them.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.core.database import new_id, utcnow
from reflexblue.core.errors import FieldError, NotFound, ValidationFailed
from reflexblue.webhooks.event_types import get_event_type
from reflexblue.webhooks.models import Delivery, DeliveryStatus, Event, Webhook
from reflexblue.webhooks.schemas import ALL_EVENT_TYPES

NOTIFY_CHANNEL = "reflexblue_deliveries"


@dataclass(frozen=True)
class PublishedEvent:
    id: str
    deliveries: int


async def publish_event(
    session: AsyncSession,
    event_type: str,
    data: dict[str, Any],
    *,
    integration_id: str | None = None,
) -> PublishedEvent:
    """Record an event for every enabled webhook subscribed to its type.

    With `integration_id`, only that integration's webhooks receive it. Call the worker's
    `wake()` (or ring the runtime's doorbell) after the transaction commits.
    """
    try:
        known = await get_event_type(session, event_type)
    except NotFound:
        message = f"No event type is named {event_type!r}; create it first."
        raise ValidationFailed(message, [FieldError("type", message)]) from None
    if known.schema is not None:
        _check_against_schema(known.schema, data)
    now = utcnow()
    event = Event(
        id=new_id("evt"), type=event_type, data=data, integration_id=integration_id, created_at=now
    )
    session.add(event)
    webhooks = await _subscribed_webhooks(session, event_type, integration_id)
    session.add_all(_delivery(event.id, webhook.id, now) for webhook in webhooks)
    await session.flush()
    if webhooks and session.get_bind().dialect.name == "postgresql":
        # Delivered to listening workers when (and only if) the transaction commits.
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
    return PublishedEvent(id=event.id, deliveries=len(webhooks))


async def _subscribed_webhooks(
    session: AsyncSession, event_type: str, integration_id: str | None
) -> list[Webhook]:
    query = select(Webhook).where(Webhook.enabled.is_(True))
    if integration_id is not None:
        query = query.where(Webhook.integration_id == integration_id)
    # TODO: event types are a JSON list, matched here rather than in SQL; a subscription table
    # would let the database do it once webhooks number in the hundreds of thousands.
    return [
        webhook
        for webhook in await session.scalars(query)
        if ALL_EVENT_TYPES in webhook.event_types or event_type in webhook.event_types
    ]


def _delivery(event_id: str, webhook_id: str, now: datetime) -> Delivery:
    return Delivery(
        id=new_id("dlv"),
        event_id=event_id,
        webhook_id=webhook_id,
        status=DeliveryStatus.PENDING.value,
        attempt_count=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )


def _check_against_schema(schema: dict[str, Any], data: dict[str, Any]) -> None:
    problems = sorted(Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    if not problems:
        return
    errors = [
        FieldError(
            "data." + ".".join(str(p) for p in problem.path) if problem.path else "data",
            problem.message,
        )
        for problem in problems[:20]
    ]
    raise ValidationFailed("The data does not match the event type's schema.", errors)
