"""External API: the integration's webhooks, their deliveries, and test events."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.api.dependencies import RuntimeDep, Sessions
from reflexblue.api.external.caller import CallerDep
from reflexblue.api.external.catalogue import Limit, PageCursor
from reflexblue.api.external.documentation import read_errors, write_errors
from reflexblue.api.external.idempotent import answer_once
from reflexblue.api.json_bodies import StrictJsonRoute
from reflexblue.core.database import transaction
from reflexblue.webhooks import deliveries, service
from reflexblue.webhooks.idempotency import KEY_MAX_LENGTH, REPLAYED_HEADER
from reflexblue.webhooks.listing import PAGE_SIZE_DEFAULT
from reflexblue.webhooks.models import DeliveryStatus
from reflexblue.webhooks.schemas import (
    DeliveryDetail,
    DeliveryRead,
    WebhookCreate,
    WebhookRead,
    WebhookUpdate,
)
from reflexblue.webhooks.targets import check_target

router = APIRouter(route_class=StrictJsonRoute)

WebhookId = Annotated[str, Path(max_length=100, description="The webhook's id (wh_…).")]
DeliveryId = Annotated[str, Path(max_length=100, description="The delivery's id (dlv_…).")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=KEY_MAX_LENGTH,
        description="Any unique string, such as a UUID. Repeating the request with the same "
        "key and body within 24 hours returns the first answer (with the header "
        f"`{REPLAYED_HEADER}: true`) instead of doing it again; the same key with another "
        "body is refused with 422.",
    ),
]


class WebhookPage(BaseModel):
    items: list[WebhookRead]
    next_cursor: str | None


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    next_cursor: str | None


@router.get(
    "/webhooks",
    operation_id="listWebhooks",
    tags=["webhooks"],
    response_model=WebhookPage,
    responses=read_errors(),
)
async def list_webhooks(
    caller: CallerDep,
    sessions: Sessions,
    limit: Limit = PAGE_SIZE_DEFAULT,
    cursor: PageCursor = None,
) -> WebhookPage:
    """The integration's webhooks, oldest first; follow `next_cursor` for more."""
    async with transaction(sessions) as session:
        page = await service.list_webhooks(
            session, caller.integration_id, limit=limit, cursor=cursor
        )
        items = [WebhookRead.model_validate(row) for row in page.items]
    return WebhookPage(items=items, next_cursor=page.next_cursor)


@router.post(
    "/webhooks",
    operation_id="createWebhook",
    tags=["webhooks"],
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookRead,
    responses=write_errors(409),
)
async def create_webhook(
    data: WebhookCreate,
    caller: CallerDep,
    runtime: RuntimeDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Subscribe a URL to event types (or `["*"]` for all). The URL must be an absolute
    `http(s)` URL whose host resolves to a public address."""

    async def check() -> None:
        await check_target(data.url, allow_private=runtime.settings.allow_private_targets)

    async def work(session: AsyncSession) -> WebhookRead:
        webhook = await service.create_webhook(
            session,
            caller.integration_id,
            data,
            caller.actor,
            max_per_integration=runtime.settings.max_webhooks_per_integration,
        )
        return WebhookRead.model_validate(webhook)

    def location(body: Any) -> dict[str, str]:
        return {"Location": request.url_for("read_webhook", id=body["id"]).path}

    return await answer_once(
        request,
        runtime,
        caller,
        status_code=status.HTTP_201_CREATED,
        work=work,
        check=check,
        headers_of=location,
    )


@router.get(
    "/webhooks/{id}",
    operation_id="getWebhook",
    tags=["webhooks"],
    response_model=WebhookRead,
    responses=read_errors(404),
)
async def read_webhook(id: WebhookId, caller: CallerDep, sessions: Sessions) -> WebhookRead:
    """One of the integration's webhooks."""
    async with transaction(sessions) as session:
        webhook = await service.get_webhook(session, caller.integration_id, id)
        return WebhookRead.model_validate(webhook)


@router.patch(
    "/webhooks/{id}",
    operation_id="updateWebhook",
    tags=["webhooks"],
    response_model=WebhookRead,
    responses=write_errors(404),
)
async def update_webhook(
    id: WebhookId, data: WebhookUpdate, caller: CallerDep, runtime: RuntimeDep
) -> WebhookRead:
    """Change the given fields; the others stay. `"enabled": true` re-enables a webhook that
    was disabled after failing for too long."""
    if data.url is not None:
        await check_target(data.url, allow_private=runtime.settings.allow_private_targets)
    async with transaction(runtime.sessions) as session:
        webhook = await service.update_webhook(
            session, caller.integration_id, id, data, caller.actor
        )
        return WebhookRead.model_validate(webhook)


@router.delete(
    "/webhooks/{id}",
    operation_id="deleteWebhook",
    tags=["webhooks"],
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=read_errors(404),
)
async def delete_webhook(id: WebhookId, caller: CallerDep, sessions: Sessions) -> Response:
    """Delete a webhook with its deliveries."""
    async with transaction(sessions) as session:
        await service.delete_webhook(session, caller.integration_id, id, caller.actor)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/webhooks/{id}/test",
    operation_id="testWebhook",
    tags=["webhooks"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryRead,
    responses=write_errors(404, 409),
)
async def send_test_event(
    id: WebhookId,
    caller: CallerDep,
    runtime: RuntimeDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Send a `webhook.test` event to this webhook now. The answer is its delivery, whose
    outcome `GET /deliveries/{id}` shows."""

    async def work(session: AsyncSession) -> DeliveryRead:
        return await deliveries.queue_test_event(session, caller.integration_id, id)

    answer = await answer_once(
        request, runtime, caller, status_code=status.HTTP_202_ACCEPTED, work=work
    )
    runtime.delivery_doorbell.set()  # the delivery is due now: no need to wait for a poll
    return answer


@router.get(
    "/webhooks/{id}/deliveries",
    operation_id="listWebhookDeliveries",
    tags=["deliveries"],
    response_model=DeliveryPage,
    responses=read_errors(404),
)
async def list_webhook_deliveries(
    id: WebhookId,
    caller: CallerDep,
    sessions: Sessions,
    only: Annotated[
        DeliveryStatus | None, Query(alias="status", description="Only deliveries in this status.")
    ] = None,
    limit: Limit = PAGE_SIZE_DEFAULT,
    cursor: PageCursor = None,
) -> DeliveryPage:
    """A webhook's deliveries, newest first; follow `next_cursor` for more."""
    async with transaction(sessions) as session:
        page = await deliveries.list_deliveries(
            session, caller.integration_id, id, status=only, limit=limit, cursor=cursor
        )
    return DeliveryPage(items=page.items, next_cursor=page.next_cursor)


@router.get(
    "/deliveries/{id}",
    operation_id="getDelivery",
    tags=["deliveries"],
    response_model=DeliveryDetail,
    responses=read_errors(404),
)
async def read_delivery(id: DeliveryId, caller: CallerDep, sessions: Sessions) -> DeliveryDetail:
    """One delivery with every attempt made so far."""
    async with transaction(sessions) as session:
        return await deliveries.get_delivery(session, caller.integration_id, id)


@router.post(
    "/deliveries/{id}/retry",
    operation_id="retryDelivery",
    tags=["deliveries"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryRead,
    responses=write_errors(404, 409),
)
async def retry_delivery(
    id: DeliveryId,
    caller: CallerDep,
    runtime: RuntimeDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Send a failed delivery again, now. A delivery that is not failed answers 409."""

    async def work(session: AsyncSession) -> DeliveryRead:
        return await deliveries.retry_delivery(session, caller.integration_id, id)

    answer = await answer_once(
        request, runtime, caller, status_code=status.HTTP_202_ACCEPTED, work=work
    )
    runtime.delivery_doorbell.set()  # the delivery is due now: no need to wait for a poll
    return answer
