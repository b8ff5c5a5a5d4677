"""Reading deliveries, retrying failed ones, and queueing test events.

Sending belongs to the delivery worker: everything here only writes rows it will pick up.
"""

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.core.database import utcnow
from reflexblue.core.errors import Conflict, NotFound
from reflexblue.core.paging import Page
from reflexblue.core.request_ids import current_request_id
from reflexblue.core.validation import unstorable
from reflexblue.webhooks.listing import PAGE_SIZE_DEFAULT, page_by_key
from reflexblue.webhooks.models import (
    TEST_EVENT_TYPE,
    Attempt,
    Delivery,
    DeliveryStatus,
    Event,
    Webhook,
)
from reflexblue.webhooks.publishing import NOTIFY_CHANNEL
from reflexblue.webhooks.schemas import AttemptRead, DeliveryDetail, DeliveryRead
from reflexblue.webhooks.service import get_webhook


async def list_deliveries(
    session: AsyncSession,
    integration_id: str,
    webhook_id: str,
    *,
    status: DeliveryStatus | None = None,
    limit: int = PAGE_SIZE_DEFAULT,
    cursor: str | None = None,
) -> Page[DeliveryRead]:
    """A webhook's deliveries, newest first, optionally only those in one status."""
    await get_webhook(session, integration_id, webhook_id)
    query = select(Delivery).where(Delivery.webhook_id == webhook_id)
    if status is not None:
        query = query.where(Delivery.status == status.value)
    page = await page_by_key(
        session, query, Delivery.id, row_type=Delivery, order="desc", limit=limit, cursor=cursor
    )
    types = await _event_types_of(session, {row.event_id for row in page.items})
    items = [_read(row, types[row.event_id]) for row in page.items]
    return Page(items=items, next_cursor=page.next_cursor, prev_cursor=None)


async def get_delivery(
    session: AsyncSession, integration_id: str, delivery_id: str
) -> DeliveryDetail:
    """One delivery with every attempt, oldest attempt first."""
    delivery = await _owned_delivery(session, integration_id, delivery_id)
    types = await _event_types_of(session, {delivery.event_id})
    attempts = await session.scalars(
        select(Attempt)
        .where(Attempt.delivery_id == delivery.id)
        .order_by(Attempt.attempted_at, Attempt.id)
    )
    return DeliveryDetail(
        **_read(delivery, types[delivery.event_id]).model_dump(),
        attempts=[AttemptRead.model_validate(attempt) for attempt in attempts],
    )


async def retry_delivery(
    session: AsyncSession, integration_id: str, delivery_id: str
) -> DeliveryRead:
    """Put a failed delivery back in the queue, due now."""
    delivery = await _owned_delivery(session, integration_id, delivery_id)
    if delivery.status != DeliveryStatus.FAILED.value:
        raise Conflict(f"Only a failed delivery can be retried; this one is {delivery.status}.")
    now = utcnow()
    delivery.status = DeliveryStatus.PENDING.value
    delivery.next_attempt_at = now
    delivery.locked_until = None
    delivery.updated_at = now
    await session.flush()
    await _wake_workers(session)
    types = await _event_types_of(session, {delivery.event_id})
    return _read(delivery, types[delivery.event_id])


async def queue_test_event(
    session: AsyncSession, integration_id: str, webhook_id: str
) -> DeliveryRead:
    """A `webhook.test` event for this one webhook, with its delivery due now."""
    webhook = await get_webhook(session, integration_id, webhook_id)
    now = utcnow()
    event = Event(
        type=TEST_EVENT_TYPE,
        data={"webhook_id": webhook.id, "message": "A test event, sent on request."},
        integration_id=integration_id,
        created_at=now,
        request_id=current_request_id(),
    )
    session.add(event)
    await session.flush()
    delivery = Delivery(
        event_id=event.id,
        webhook_id=webhook.id,
        status=DeliveryStatus.PENDING.value,
        attempt_count=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(delivery)
    await session.flush()
    await _wake_workers(session)
    return _read(delivery, event.type)


async def _wake_workers(session: AsyncSession) -> None:
    # Workers also poll, so this only shortens the wait; PostgreSQL delivers it on commit.
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


async def _owned_delivery(session: AsyncSession, integration_id: str, delivery_id: str) -> Delivery:
    # Another integration's delivery is answered exactly like a missing one.
    if unstorable(delivery_id):
        raise NotFound(f"No delivery has the id {delivery_id!r}.")
    query = (
        select(Delivery)
        .join(Webhook, Webhook.id == Delivery.webhook_id)
        .where(Delivery.id == delivery_id, Webhook.integration_id == integration_id)
    )
    delivery = await session.scalar(query)
    if delivery is None:
        raise NotFound(f"No delivery has the id {delivery_id!r}.")
    return delivery


async def _event_types_of(session: AsyncSession, event_ids: set[str]) -> dict[str, str]:
    if not event_ids:
        return {}
    rows = await session.execute(select(Event.id, Event.type).where(Event.id.in_(event_ids)))
    return {event_id: event_type for event_id, event_type in rows}


def _read(delivery: Delivery, event_type: str) -> DeliveryRead:
    return DeliveryRead(
        id=delivery.id,
        event_id=delivery.event_id,
        event_type=event_type,
        webhook_id=delivery.webhook_id,
        status=DeliveryStatus(delivery.status),
        attempt_count=delivery.attempt_count,
        next_attempt_at=delivery.next_attempt_at,
        created_at=delivery.created_at,
    )
