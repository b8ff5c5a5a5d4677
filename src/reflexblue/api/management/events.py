"""Management API: publishing events."""

from typing import Any

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.api.dependencies import AdminUser, RuntimeDep
from reflexblue.api.management.documentation import write_errors
from reflexblue.core.database import transaction
from reflexblue.core.errors import FieldError, NotFound, ValidationFailed
from reflexblue.core.request_ids import current_request_id
from reflexblue.core.runtime import Runtime
from reflexblue.integrations.service import get_integration_by_export_id
from reflexblue.webhooks.idempotency import REPLAYED_HEADER
from reflexblue.webhooks.publishing import (
    EventRefused,
    NewEvent,
    PublishedEvent,
    publish_event,
    publish_events,
)

router = APIRouter(prefix="/events", tags=["events"])

BATCH_MAX_EVENTS = 1000


class EventPublish(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=100, strict=True)
    data: dict[str, Any]
    integration: str | None = Field(
        default=None,
        max_length=100,
        strict=True,
        description="Export ID of the one integration whose webhooks receive the event; "
        "without it, every integration's subscribed webhooks do.",
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        pattern=r"^[ -~]+$",
        strict=True,
        description="Publishes the event once: a repeat with the same key and the same type, "
        "data and integration answers with the first event (and the header "
        "`Idempotent-Replayed: true`) for as long as that event is kept; the key with other "
        "content is refused with 422.",
    )


class EventPublished(BaseModel):
    id: str
    deliveries: int


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventPublish] = Field(min_length=1, max_length=BATCH_MAX_EVENTS)


class EventBatchPublished(BaseModel):
    events: list[EventPublished]


@router.post(
    "",
    operation_id="publishEvent",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventPublished,
    responses=write_errors(),
)
async def publish(
    data: EventPublish, _: AdminUser, runtime: RuntimeDep, response: Response
) -> EventPublished:
    """Publish an event. It is stored with one delivery per subscribed, enabled webhook in one
    transaction; the deliveries are sent right after, and retried until they succeed or fail."""
    published = await publish_in_transaction(runtime, data)
    if published.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return EventPublished(id=published.id, deliveries=published.deliveries)


@router.post(
    "/batch",
    operation_id="publishEvents",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventBatchPublished,
    responses=write_errors(),
)
async def publish_batch(data: EventBatch, _: AdminUser, runtime: RuntimeDep) -> EventBatchPublished:
    """Publish up to 1,000 events in one transaction, for bulk loads: all of them or, when one
    is refused, none (its errors are named `events.N.field`). Each event follows the rules of a
    single publication, its idempotency key included."""
    async with transaction(runtime.sessions) as session:
        targets = await _targets(session, data.events)
        events = [_new_event(each, targets[each.integration]) for each in data.events]
        try:
            published = await publish_events(session, events, request_id=current_request_id())
        except EventRefused as refused:
            raise _refusal_in_batch(refused.index, refused) from None
    runtime.delivery_doorbell.set()
    return EventBatchPublished(
        events=[EventPublished(id=each.id, deliveries=each.deliveries) for each in published]
    )


async def publish_in_transaction(runtime: Runtime, data: EventPublish) -> PublishedEvent:
    """Publish in a transaction of its own, then wake this process's worker."""
    async with transaction(runtime.sessions) as session:
        published = await _publish(session, data, await _target(session, data.integration))
    if not published.replayed:
        runtime.delivery_doorbell.set()
    return published


async def _publish(
    session: AsyncSession, data: EventPublish, integration_id: str | None
) -> PublishedEvent:
    return await publish_event(
        session,
        data.type,
        data.data,
        integration_id=integration_id,
        idempotency_key=data.idempotency_key,
        request_id=current_request_id(),
    )


def _new_event(data: EventPublish, integration_id: str | None) -> NewEvent:
    return NewEvent(data.type, data.data, integration_id, data.idempotency_key)


async def _targets(
    session: AsyncSession, events: list[EventPublish]
) -> dict[str | None, str | None]:
    """Integration ids by the Export IDs the batch names, each looked up once."""
    found: dict[str | None, str | None] = {None: None}
    for index, event in enumerate(events):
        if event.integration in found:
            continue
        try:
            found[event.integration] = await _target(session, event.integration)
        except ValidationFailed as refusal:
            raise _refusal_in_batch(index, refusal) from None
    return found


def _refusal_in_batch(index: int, refusal: ValidationFailed) -> ValidationFailed:
    errors = [FieldError(f"events.{index}.{e.field}", e.message) for e in refusal.errors]
    return ValidationFailed(f"Event {index}: {refusal.detail}", errors)


async def _target(session: AsyncSession, export_id: str | None) -> str | None:
    if export_id is None:
        return None
    try:
        return (await get_integration_by_export_id(session, export_id)).id
    except NotFound as error:
        raise ValidationFailed(error.detail, [FieldError("integration", error.detail)]) from None
