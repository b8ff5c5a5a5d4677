"""The API keys, webhooks and deliveries of one integration, on its detail screen and on a
page per webhook. Reading is for every signed-in user; changes are for administrators."""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import Response

from reflexblue.accounts.sessions import SignedIn
from reflexblue.api.dependencies import RuntimeDep, actor_of
from reflexblue.console.context import (
    CheckedForm,
    ConsoleAdmin,
    ConsoleUser,
    form_text,
    is_htmx,
    render,
    url_with,
)
from reflexblue.console.pages import existing_detail
from reflexblue.console.section_views import SECTION_NOTICES, load_sections, webhook_row
from reflexblue.console.views import OVERVIEW_PATH, list_view_from
from reflexblue.core.database import transaction, utcnow
from reflexblue.core.errors import Conflict, FieldError, ValidationFailed
from reflexblue.core.runtime import Runtime
from reflexblue.core.validation import parse
from reflexblue.integrations import api_keys, service
from reflexblue.integrations.api_keys import ApiKeyCreate
from reflexblue.webhooks import deliveries, recovery
from reflexblue.webhooks import service as webhooks
from reflexblue.webhooks.models import DeliveryStatus
from reflexblue.webhooks.schemas import DeliveryDetail, RecoveryCreate, RecoveryPreview

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

DELIVERIES_SHOWN = 20
RECOVERY_DEFAULT_HOURS = 24
# What a datetime-local field sends: minutes, or seconds when the browser shows them.
_LOCAL_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")
EXPIRY_DAYS_MAX = 3650
_INTEGRATION = OVERVIEW_PATH + "/{integration_id}"
_WEBHOOK = _INTEGRATION + "/webhooks/{webhook_id}"


# --- API keys -------------------------------------------------------------------------------


@router.post(_INTEGRATION + "/api-keys")
async def create_api_key(
    request: Request,
    runtime: RuntimeDep,
    signed_in: ConsoleAdmin,
    posted: CheckedForm,
    integration_id: str,
) -> Response:
    values = {
        "name": form_text(posted, "name") or "",
        "expires_in_days": (form_text(posted, "expires_in_days") or "").strip(),
    }
    try:
        data = _key_request(values)
        async with transaction(runtime.sessions) as session:
            created = await api_keys.create_api_key(
                session, integration_id, data, actor_of(signed_in.user)
            )
    except ValidationFailed as refusal:
        context = {"key_values": values, "key_errors": _messages_by_field(refusal.errors)}
        return await _keys_answer(
            request, runtime, signed_in, posted, integration_id, context, status_code=422
        )
    logger.info("api key created in the console", extra={"integration_id": integration_id})
    return await _keys_answer(
        request, runtime, signed_in, posted, integration_id, {"new_key": created}
    )


def _key_request(values: dict[str, str]) -> ApiKeyCreate:
    """The form's name and days until expiry, as the service's request."""
    days_text = values["expires_in_days"]
    expires_at = None
    if days_text:
        days = _days(days_text)
        if days is None:
            message = (
                f"Enter a whole number of days from 1 to {EXPIRY_DAYS_MAX}, or leave it empty."
            )
            raise ValidationFailed(message, [FieldError("expires_in_days", message)])
        expires_at = utcnow() + timedelta(days=days)
    return parse(ApiKeyCreate, {"name": values["name"], "expires_at": expires_at})


def _days(text: str) -> int | None:
    """The whole number of days typed, or None when it is not one in range."""
    # isdigit() alone admits "²", which int() refuses; and a number of more digits than the
    # maximum is out of range without converting it.
    digits = text.lstrip("0")
    if not (text.isascii() and text.isdigit()) or len(digits) > len(str(EXPIRY_DAYS_MAX)):
        return None
    days = int(digits or "0")
    return days if 1 <= days <= EXPIRY_DAYS_MAX else None


def _messages_by_field(errors: list[FieldError]) -> dict[str, str]:
    found: dict[str, list[str]] = {}
    for error in errors:
        found.setdefault(error.field, []).append(error.message)
    return {name: " ".join(messages) for name, messages in found.items()}


async def _keys_answer(
    request: Request,
    runtime: Runtime,
    signed_in: SignedIn,
    posted: FormData,
    integration_id: str,
    context: Mapping[str, object],
    *,
    status_code: int = 200,
) -> Response:
    """htmx swaps in the API keys section; without script the whole screen comes back. Both
    carry a new key in this one answer only."""
    view = list_view_from(posted)
    if not is_htmx(request):
        return await existing_detail(
            request,
            runtime,
            signed_in,
            integration_id,
            view,
            status_code=status_code,
            section_context=context,
        )
    async with transaction(runtime.sessions) as session:
        integration = await service.get_integration(session, integration_id)
        sections = await load_sections(session, integration_id)
    page = {"integration": integration, "sections": sections, "view": view, **context}
    return render(request, "_api_keys.html", page, signed_in=signed_in, status_code=status_code)


@router.post(_INTEGRATION + "/api-keys/{key_id}/revoke")
async def revoke_api_key(
    runtime: RuntimeDep,
    signed_in: ConsoleAdmin,
    posted: CheckedForm,
    integration_id: str,
    key_id: str,
) -> Response:
    async with transaction(runtime.sessions) as session:
        await api_keys.revoke_api_key(
            session, key_id, actor_of(signed_in.user), integration_id=integration_id
        )
    view = list_view_from(posted)
    target = url_with(f"{OVERVIEW_PATH}/{integration_id}", **view.back_params(), done="key-revoked")
    return RedirectResponse(target + "#api-keys-section", status_code=303)


# --- webhooks and their deliveries ----------------------------------------------------------


@router.get(_WEBHOOK)
async def webhook_page(
    request: Request,
    runtime: RuntimeDep,
    signed_in: ConsoleUser,
    integration_id: str,
    webhook_id: str,
) -> Response:
    notice = SECTION_NOTICES.get(request.query_params.get("done", ""))
    since_text = request.query_params.get("since")
    return await _webhook_page(
        request, runtime, signed_in, integration_id, webhook_id, notice, since_text=since_text
    )


async def _webhook_page(
    request: Request,
    runtime: Runtime,
    signed_in: SignedIn,
    integration_id: str,
    webhook_id: str,
    notice: str | None,
    *,
    problem: str | None = None,
    status_code: int = 200,
    since_text: str | None = None,
) -> Response:
    async with transaction(runtime.sessions) as session:
        integration = await service.get_integration(session, integration_id)
        webhook = await webhooks.get_webhook(session, integration_id, webhook_id)
        page = await deliveries.list_deliveries(
            session, integration_id, webhook_id, limit=DELIVERIES_SHOWN
        )
        details = [
            await deliveries.get_delivery(session, integration_id, each.id) for each in page.items
        ]
        form = await _recovery_form(session, integration_id, webhook_id, since_text)
        recoveries = await recovery.recent_recoveries(session, integration_id, webhook_id)
    context = {
        "recovery_form": form,
        "recoveries": recoveries,
        "integration": integration,
        "row": webhook_row(webhook),
        "deliveries": details,
        "failed": DeliveryStatus.FAILED,
        "notice": notice,
        "problem": problem,
        "view": list_view_from(request.query_params),
    }
    return render(request, "webhook.html", context, signed_in=signed_in, status_code=status_code)


@router.post(_WEBHOOK + "/test")
async def send_test_event(
    runtime: RuntimeDep,
    signed_in: ConsoleAdmin,
    posted: CheckedForm,
    integration_id: str,
    webhook_id: str,
) -> Response:
    async with transaction(runtime.sessions) as session:
        queued = await deliveries.queue_test_event(session, integration_id, webhook_id)
    # The delivery is due now and committed: the worker in this process need not wait a poll.
    runtime.delivery_doorbell.set()
    logger.info(
        "test event queued in the console",
        extra={"webhook_id": webhook_id, "delivery_id": queued.id, "user": signed_in.user.id},
    )
    return _back_to_webhook(posted, integration_id, webhook_id, "test-queued")


@router.post(_WEBHOOK + "/deliveries/{delivery_id}/retry")
async def retry_delivery(
    request: Request,
    runtime: RuntimeDep,
    signed_in: ConsoleAdmin,
    posted: CheckedForm,
    integration_id: str,
    webhook_id: str,
    delivery_id: str,
) -> Response:
    try:
        async with transaction(runtime.sessions) as session:
            detail = await deliveries.get_delivery(session, integration_id, delivery_id)
            _require_same_webhook(detail, webhook_id)
            await deliveries.retry_delivery(session, integration_id, delivery_id)
    except Conflict as refusal:
        return await _webhook_page(
            request,
            runtime,
            signed_in,
            integration_id,
            webhook_id,
            None,
            problem=refusal.detail,
            status_code=409,
        )
    runtime.delivery_doorbell.set()
    return _back_to_webhook(posted, integration_id, webhook_id, "retried")


# --- recovering failed deliveries -----------------------------------------------------------


@dataclass(frozen=True)
class RecoveryForm:
    """The recovery form: the time typed (or the default), and its preview or what is wrong."""

    since: str
    preview: RecoveryPreview | None = None
    error: str | None = None


async def _recovery_form(
    session: AsyncSession, integration_id: str, webhook_id: str, since_text: str | None
) -> RecoveryForm:
    if since_text is None:
        default = utcnow() - timedelta(hours=RECOVERY_DEFAULT_HOURS)
        return RecoveryForm(since=default.strftime(_LOCAL_FORMATS[0]))
    try:
        request = _recovery_request(since_text)
        preview = await recovery.preview_recovery(session, integration_id, webhook_id, request)
    except ValidationFailed as refusal:
        return RecoveryForm(since=since_text, error=refusal.errors[0].message)
    return RecoveryForm(since=since_text, preview=preview)


def _recovery_request(since_text: str) -> RecoveryCreate:
    """The form's time, read as UTC as the label says."""
    for pattern in _LOCAL_FORMATS:
        try:
            since = datetime.strptime(since_text.strip(), pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
        return parse(RecoveryCreate, {"since": since})
    message = "Enter a date and time, such as 2026-12-01 08:00."
    raise ValidationFailed(message, [FieldError("since", message)])


@router.post(_WEBHOOK + "/recover")
async def recover_failed_deliveries(
    request: Request,
    runtime: RuntimeDep,
    signed_in: ConsoleAdmin,
    posted: CheckedForm,
    integration_id: str,
    webhook_id: str,
) -> Response:
    since_text = form_text(posted, "since") or ""
    try:
        recovery_request = _recovery_request(since_text)
        async with transaction(runtime.sessions) as session:
            started = await recovery.request_recovery(
                session, integration_id, webhook_id, recovery_request, actor_of(signed_in.user)
            )
    except ValidationFailed:
        # The page shows the form again with the reason beside the field.
        return await _webhook_page(
            request,
            runtime,
            signed_in,
            integration_id,
            webhook_id,
            None,
            status_code=422,
            since_text=since_text,
        )
    runtime.delivery_doorbell.set()
    logger.info(
        "recovery requested in the console",
        extra={"webhook_id": webhook_id, "recovery_id": started.id, "user": signed_in.user.id},
    )
    return _back_to_webhook(posted, integration_id, webhook_id, "recovery-started")


def _require_same_webhook(detail: DeliveryDetail, webhook_id: str) -> None:
    # The URL names the webhook too; a delivery of another webhook is not this page's to retry.
    if detail.webhook_id != webhook_id:
        raise Conflict("That delivery belongs to another webhook of this integration.")


def _back_to_webhook(posted: FormData, integration_id: str, webhook_id: str, done: str) -> Response:
    view = list_view_from(posted)
    path = f"{OVERVIEW_PATH}/{integration_id}/webhooks/{webhook_id}"
    return RedirectResponse(url_with(path, **view.back_params(), done=done), status_code=303)
