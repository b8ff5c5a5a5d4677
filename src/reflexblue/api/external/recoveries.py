"""External API: recovering a webhook's failed deliveries after its receiver was fixed."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.api.dependencies import RuntimeDep, Sessions
from reflexblue.api.external.caller import CallerDep
from reflexblue.api.external.documentation import read_errors, write_errors
from reflexblue.api.external.idempotent import answer_once
from reflexblue.api.external.webhooks import IdempotencyKey, WebhookId
from reflexblue.api.json_bodies import StrictJsonRoute
from reflexblue.core.database import transaction
from reflexblue.core.validation import Timestamp
from reflexblue.webhooks import recovery
from reflexblue.webhooks.schemas import RecoveryCreate, RecoveryPreview, RecoveryRead

router = APIRouter(tags=["recoveries"], route_class=StrictJsonRoute)

RecoveryId = Annotated[str, Path(max_length=100, description="The recovery's id (rcv_…).")]


@router.get(
    "/webhooks/{id}/recover",
    operation_id="previewWebhookRecovery",
    response_model=RecoveryPreview,
    responses=read_errors(404),
)
async def preview_recovery(
    id: WebhookId,
    caller: CallerDep,
    sessions: Sessions,
    since: Annotated[Timestamp, Query(description="RFC 3339; not in the future.")],
    until: Annotated[
        Timestamp | None, Query(description="RFC 3339, after `since`; now when left out.")
    ] = None,
) -> RecoveryPreview:
    """How many failed deliveries of this webhook, created from `since` up to `until`, a
    recovery would send again. Nothing is changed."""
    request = RecoveryCreate(since=since, until=until)
    async with transaction(sessions) as session:
        return await recovery.preview_recovery(session, caller.integration_id, id, request)


@router.post(
    "/webhooks/{id}/recover",
    operation_id="recoverWebhook",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RecoveryRead,
    responses=write_errors(404),
)
async def recover_webhook(
    id: WebhookId,
    data: RecoveryCreate,
    caller: CallerDep,
    runtime: RuntimeDep,
    request: Request,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Send every failed delivery of this webhook created from `since` up to `until` (now when
    left out) again, with no limit on their number. The work runs in the background in
    batches; follow it with `GET /recoveries/{id}`. Each request keeps its event's
    `webhook-id`, so a receiver that already processed one can tell."""

    async def work(session: AsyncSession) -> RecoveryRead:
        return await recovery.request_recovery(
            session, caller.integration_id, id, data, caller.actor
        )

    def location(body: Any) -> dict[str, str]:
        return {"Location": request.url_for("read_recovery", id=body["id"]).path}

    answer = await answer_once(
        request,
        runtime,
        caller,
        status_code=status.HTTP_202_ACCEPTED,
        work=work,
        headers_of=location,
    )
    runtime.delivery_doorbell.set()  # a worker in this process starts at once
    return answer


@router.get(
    "/recoveries/{id}",
    operation_id="getRecovery",
    response_model=RecoveryRead,
    responses=read_errors(404),
)
async def read_recovery(id: RecoveryId, caller: CallerDep, sessions: Sessions) -> RecoveryRead:
    """A recovery's progress: `requeued` of `total` so far, and `done` once finished."""
    async with transaction(sessions) as session:
        return await recovery.get_recovery(session, caller.integration_id, id)
