"""Management API: publishing events."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.api.dependencies import AdminUser, RuntimeDep
from reflexblue.api.json_bodies import StrictJsonRoute
from reflexblue.api.management.documentation import write_errors
from reflexblue.core.database import transaction
from reflexblue.core.errors import FieldError, ValidationFailed
from reflexblue.core.request_ids import current_request_id
from reflexblue.core.runtime import Runtime
from reflexblue.core.validation import json_value_rule
from reflexblue.webhooks.group_publishing import GroupPublisher, integration_of_export_id
from reflexblue.webhooks.idempotency import REPLAYED_HEADER
from reflexblue.webhooks.publishing import (
    EventRefused,
    NewEvent,
    PublishedEvent,
    publish_event,
    publish_events,
)

router = APIRouter(prefix="/events", tags=["events"], route_class=StrictJsonRoute)


async def get_publisher(request: Request) -> GroupPublisher:
    """The one publisher of this application, which lets concurrent requests share commits."""
    publisher: GroupPublisher | None = getattr(request.app.state, "publisher", None)
    if publisher is None:
        runtime: Runtime = request.app.state.runtime
        publisher = GroupPublisher(runtime.sessions, runtime.delivery_doorbell)
        request.app.state.publisher = publisher
    return publisher


Publisher = Annotated[GroupPublisher, Depends(get_publisher)]

BATCH_MAX_EVENTS = 1000


class EventPublish(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=100, strict=True)
    data: Annotated[dict[str, Any], AfterValidator(json_value_rule)]
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
async def publish(data: EventPublish, _: AdminUser, publisher: Publisher) -> Response:
    """Publish an event. It is stored with one delivery per subscribed, enabled webhook in one
    transaction; the deliveries are sent right after, and retried until they succeed or fail."""
    event = NewEvent(
        data.type,
        data.data,
        idempotency_key=data.idempotency_key,
        request_id=current_request_id(),
    )
    published = await publisher.publish(event, data.integration)
    return _published_answer(published)


def _published_answer(published: PublishedEvent) -> Response:
    """The answer as `EventPublished` documents it, written directly rather than built as a
    model for FastAPI to validate again and serialise. An event id holds only letters, digits
    and `_`, so it needs no escaping."""
    body = b'{"id":"%s","deliveries":%d}' % (published.id.encode(), published.deliveries)
    headers = {REPLAYED_HEADER: "true"} if published.replayed else None
    return Response(body, status.HTTP_202_ACCEPTED, headers, media_type="application/json")


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
        target = await _target(session, data.integration)
        published = await publish_event(
            session,
            data.type,
            data.data,
            integration_id=target,
            idempotency_key=data.idempotency_key,
            request_id=current_request_id(),
        )
    if not published.replayed:
        runtime.delivery_doorbell.set()
    return published


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
    return None if export_id is None else await integration_of_export_id(session, export_id)
