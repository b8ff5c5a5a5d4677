"""Management API: publishing events."""

from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.api.dependencies import AdminUser, RuntimeDep
from reflexblue.core.database import transaction
from reflexblue.core.errors import FieldError, NotFound, ValidationFailed
from reflexblue.core.runtime import Runtime
from reflexblue.integrations.service import get_integration_by_export_id
from reflexblue.webhooks.publishing import publish_event

router = APIRouter(prefix="/events", tags=["events"])


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


class EventPublished(BaseModel):
    id: str
    deliveries: int


@router.post(
    "",
    operation_id="publishEvent",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventPublished,
)
async def publish(data: EventPublish, _: AdminUser, runtime: RuntimeDep) -> EventPublished:
    """Publish an event. It is stored with one delivery per subscribed, enabled webhook in one
    transaction; the deliveries are sent right after, and retried until they succeed or fail."""
    return await publish_in_transaction(runtime, data)


async def publish_in_transaction(runtime: Runtime, data: EventPublish) -> EventPublished:
    """Publish in a transaction of its own, then wake this process's worker."""
    async with transaction(runtime.sessions) as session:
        integration_id = await _target(session, data.integration)
        published = await publish_event(
            session, data.type, data.data, integration_id=integration_id
        )
    runtime.delivery_doorbell.set()
    return EventPublished(id=published.id, deliveries=published.deliveries)


async def _target(session: AsyncSession, export_id: str | None) -> str | None:
    if export_id is None:
        return None
    try:
        return (await get_integration_by_export_id(session, export_id)).id
    except NotFound as error:
        raise ValidationFailed(error.detail, [FieldError("integration", error.detail)]) from None
