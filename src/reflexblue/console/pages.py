"""The Integrations overview and detail screens (Management > General > Integrations)."""

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote, unquote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession
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
from reflexblue.console.section_views import SECTION_NOTICES, load_sections
from reflexblue.console.views import (
    COLUMNS,
    FIELD_LABELS,
    FORM_FIELDS,
    OVERVIEW_PATH,
    ListView,
    grace_period_in_words,
    list_view_from,
    typed_values,
)
from reflexblue.core.database import transaction, utcnow
from reflexblue.core.errors import (
    Conflict,
    FieldError,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from reflexblue.core.paging import Cursor, Page, cursor_value
from reflexblue.core.runtime import Runtime
from reflexblue.core.validation import parse
from reflexblue.integrations import service
from reflexblue.integrations.models import Integration
from reflexblue.integrations.schemas import IntegrationCreate, IntegrationUpdate
from reflexblue.webhooks.health import webhook_trouble

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
FLASH_COOKIE = "reflexblue_flash"
FLASH_MAX_AGE_SECONDS = 60
_VERSION_MAX_DIGITS = 18


# --- the overview ---------------------------------------------------------------------------


@router.get(OVERVIEW_PATH)
async def overview(request: Request, runtime: RuntimeDep, signed_in: ConsoleUser) -> Response:
    view = list_view_from(request.query_params)
    async with transaction(runtime.sessions) as session:
        page, view = await _load_page(session, view)
        saved = await _saved_name(session, request, view)
        trouble = await webhook_trouble(session, [row.id for row in page.items])
    flash = unquote(request.cookies.get(FLASH_COOKIE, ""))
    context = {
        "view": view,
        "columns": COLUMNS,
        "page": page,
        "trouble": trouble,
        "selected": _selected_on_page(page, view.selected),
        "confirmation": saved or flash,
    }
    template = "_integrations_table.html" if is_htmx(request) else "overview.html"
    response = render(request, template, context, signed_in=signed_in)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path=OVERVIEW_PATH)
    return response


async def _load_page(
    session: AsyncSession, view: ListView
) -> tuple[Page[service.ListedIntegration], ListView]:
    try:
        page = await service.list_integrations(
            session, sort=view.sort, order=view.order, q=view.q, limit=PAGE_SIZE, cursor=view.cursor
        )
    except ValidationFailed:
        # A page link from another sort, or an edited one: show the first page instead.
        view = ListView(
            sort=view.sort,
            order=view.order,
            q=view.q,
            selected=view.selected,
            notices=(*view.notices, "That page link is out of date; this is the first page."),
        )
        page = await service.list_integrations(
            session, sort=view.sort, order=view.order, q=view.q, limit=PAGE_SIZE
        )
    return page, view


async def _saved_name(session: AsyncSession, request: Request, view: ListView) -> str | None:
    if request.query_params.get("saved") != "1" or not view.selected:
        return None
    try:
        integration = await service.get_integration(session, view.selected)
    except NotFound:
        return None
    return f"Integration “{integration.name}” saved."


def _selected_on_page(page: Page[service.ListedIntegration], selected: str | None) -> str | None:
    return selected if any(row.id == selected for row in page.items) else None


# --- the detail screen ----------------------------------------------------------------------


@dataclass
class DetailForm:
    """What the detail template shows: the values, their errors, and the screen's state."""

    values: dict[str, str]
    integration: Integration | None = None
    version: int | None = None
    errors: list[FieldError] = field(default_factory=list)
    problem: str | None = None
    current: dict[str, str] | None = None

    def field_errors(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for error in self.errors:
            found.setdefault(error.field, []).append(error.message)
        return found


@router.get(OVERVIEW_PATH + "/new")
async def new_integration(
    request: Request, runtime: RuntimeDep, signed_in: ConsoleAdmin
) -> Response:
    form = DetailForm(values={each.name: "" for each in FORM_FIELDS})
    return _detail(request, runtime, signed_in, form, list_view_from(request.query_params))


@router.post(OVERVIEW_PATH + "/new")
async def create_integration(
    request: Request, runtime: RuntimeDep, signed_in: ConsoleAdmin, posted: CheckedForm
) -> Response:
    view = list_view_from(posted)
    values = typed_values(posted)
    try:
        data = parse(IntegrationCreate, values)
        async with transaction(runtime.sessions) as session:
            integration = await service.create_integration(
                session, runtime.box, data, actor_of(signed_in.user)
            )
    except (ValidationFailed, Conflict) as refusal:
        form = DetailForm(values=values, errors=refusal.errors, problem=_problem_of(refusal))
        status = 409 if isinstance(refusal, Conflict) else 422
        return _detail(request, runtime, signed_in, form, view, status_code=status)
    logger.info("integration created in the console", extra={"integration_id": integration.id})
    return _back_to_overview(view, integration.id)


@router.get(OVERVIEW_PATH + "/{integration_id}")
async def integration_detail(
    request: Request, runtime: RuntimeDep, signed_in: ConsoleUser, integration_id: str
) -> Response:
    view = list_view_from(request.query_params)
    notice = "A new secret key was made." if request.query_params.get("rotated") == "1" else None
    notice = notice or SECTION_NOTICES.get(request.query_params.get("done", ""))
    return await existing_detail(request, runtime, signed_in, integration_id, view, notice=notice)


async def existing_detail(
    request: Request,
    runtime: Runtime,
    signed_in: SignedIn,
    integration_id: str,
    view: ListView,
    *,
    notice: str | None = None,
    status_code: int = 200,
    section_context: Mapping[str, object] | None = None,
) -> Response:
    """A stored integration's detail screen with its API keys and webhooks below the secret."""
    async with transaction(runtime.sessions) as session:
        integration = await service.get_integration(session, integration_id)
        sections = await load_sections(session, integration_id)
    form = DetailForm(
        values=_stored_values(integration), integration=integration, version=integration.version
    )
    return _detail(
        request,
        runtime,
        signed_in,
        form,
        view,
        notice=notice,
        status_code=status_code,
        extra={"sections": sections, **(section_context or {})},
    )


@router.post(OVERVIEW_PATH + "/{integration_id}")
async def update_integration(
    request: Request,
    runtime: RuntimeDep,
    signed_in: ConsoleAdmin,
    posted: CheckedForm,
    integration_id: str,
) -> Response:
    view = list_view_from(posted)
    values = typed_values(posted)
    version = _version(form_text(posted, "version"))
    try:
        data = parse(IntegrationUpdate, values)
        async with transaction(runtime.sessions) as session:
            await service.update_integration(
                session, integration_id, data, actor_of(signed_in.user), expected_version=version
            )
    except (ValidationFailed, Conflict) as refusal:
        form = await _form_again(runtime, integration_id, values, version)
        form.errors, form.problem = refusal.errors, _problem_of(refusal)
        status = 409 if isinstance(refusal, Conflict) else 422
        return _detail(request, runtime, signed_in, form, view, status_code=status)
    except PreconditionFailed:
        return await _changed_meanwhile(request, runtime, signed_in, integration_id, values, view)
    return _back_to_overview(view, integration_id)


def _problem_of(refusal: ValidationFailed | Conflict) -> str:
    # The rules' own summary names fields by their API names; a person reads the labels below.
    if isinstance(refusal, ValidationFailed):
        return "Some fields need a change before the integration can be saved."
    return refusal.detail


def _version(text: str | None) -> int | None:
    # A missing or mangled version cannot prove the form saw the latest data: treat it as 0,
    # which no stored integration has, so the save is refused as stale rather than forced.
    # isdigit() alone admits "²", which int() refuses, and thousands of digits exceed int()'s
    # limit; no version is that long.
    digits = (text or "").strip()
    if not (digits.isascii() and digits.isdigit() and len(digits) <= _VERSION_MAX_DIGITS):
        return 0
    return int(digits)


async def _form_again(
    runtime: Runtime, integration_id: str, values: dict[str, str], version: int | None
) -> DetailForm:
    async with transaction(runtime.sessions) as session:
        integration = await service.get_integration(session, integration_id)
    return DetailForm(values=values, integration=integration, version=version)


async def _changed_meanwhile(
    request: Request,
    runtime: RuntimeDep,
    signed_in: SignedIn,
    integration_id: str,
    values: dict[str, str],
    view: ListView,
) -> Response:
    """Someone saved this integration after the form was opened: keep what this person typed,
    show what is stored now, and let a second Save (against the new version) replace it."""
    async with transaction(runtime.sessions) as session:
        integration = await service.get_integration(session, integration_id)
    form = DetailForm(
        values=values,
        integration=integration,
        version=integration.version,
        problem=(
            "This integration was changed by someone else after you opened it, so your changes "
            "were not saved. What you typed is still below. Compare it with the values saved "
            "meanwhile, then select Save again to replace them, or reload the saved values."
        ),
        current=_stored_values(integration),
    )
    return _detail(request, runtime, signed_in, form, view, status_code=409)


def _stored_values(integration: Integration) -> dict[str, str]:
    return {each.name: str(getattr(integration, each.name)) for each in FORM_FIELDS}


def _back_to_overview(view: ListView, integration_id: str) -> Response:
    return RedirectResponse(
        url_with(OVERVIEW_PATH, **view.back_params(), selected=integration_id, saved="1"),
        status_code=303,
    )


def _detail(
    request: Request,
    runtime: Runtime,
    signed_in: SignedIn,
    form: DetailForm,
    view: ListView,
    *,
    status_code: int = 200,
    notice: str | None = None,
    extra: dict[str, object] | None = None,
) -> Response:
    context = {
        **(extra or {}),
        "form": form,
        "fields": FORM_FIELDS,
        "labels": FIELD_LABELS,
        "view": view,
        "notice": notice,
        "secret": None,
        "previous_expires_at": _previous_expiry(form.integration),
        "grace_period": grace_period_in_words(runtime.settings.secret_grace_period),
    }
    return render(request, "detail.html", context, signed_in=signed_in, status_code=status_code)


def _previous_expiry(integration: Integration | None) -> datetime | None:
    if integration is None or integration.previous_secret_expires_at is None:
        return None
    expires_at = integration.previous_secret_expires_at
    return expires_at if expires_at > utcnow() else None


# --- the secret key -------------------------------------------------------------------------


@router.post(OVERVIEW_PATH + "/{integration_id}/secret/reveal")
async def reveal_secret(
    request: Request,
    runtime: RuntimeDep,
    signed_in: ConsoleAdmin,
    posted: CheckedForm,
    integration_id: str,
) -> Response:
    async with transaction(runtime.sessions) as session:
        revealed = await service.reveal_secret(
            session, runtime.box, integration_id, actor_of(signed_in.user)
        )
        integration = await service.get_integration(session, integration_id)
    context = {
        "integration": integration,
        "secret": revealed.secret,
        "previous_expires_at": revealed.previous_secret_expires_at,
        "grace_period": grace_period_in_words(runtime.settings.secret_grace_period),
        "view": list_view_from(posted),
    }
    if is_htmx(request):
        return render(request, "_secret.html", context, signed_in=signed_in)
    form = DetailForm(
        values=_stored_values(integration), integration=integration, version=integration.version
    )
    page = {"form": form, "fields": FORM_FIELDS, "labels": FIELD_LABELS, "notice": None}
    return render(request, "detail.html", {**page, **context}, signed_in=signed_in)


@router.post(OVERVIEW_PATH + "/{integration_id}/secret/rotate")
async def rotate_secret(
    runtime: RuntimeDep, signed_in: ConsoleAdmin, posted: CheckedForm, integration_id: str
) -> Response:
    async with transaction(runtime.sessions) as session:
        await service.rotate_secret(
            session,
            runtime.box,
            integration_id,
            actor_of(signed_in.user),
            grace_period_seconds=runtime.settings.secret_grace_period,
        )
    view = list_view_from(posted)
    target = url_with(f"{OVERVIEW_PATH}/{integration_id}", **view.back_params(), rotated="1")
    return RedirectResponse(target, status_code=303)


# --- delete ---------------------------------------------------------------------------------


@router.post(OVERVIEW_PATH + "/{integration_id}/delete")
async def delete_integration(
    runtime: RuntimeDep, signed_in: ConsoleAdmin, posted: CheckedForm, integration_id: str
) -> Response:
    view = list_view_from(posted)
    async with transaction(runtime.sessions) as session:
        integration = await service.get_integration(session, integration_id)
        name = integration.name
        neighbour = await _neighbour(session, view, integration)
        await service.delete_integration(session, integration_id, actor_of(signed_in.user))
    logger.info("integration deleted in the console", extra={"integration_id": integration_id})
    params = view.params(with_page=False)
    if view.cursor:
        params["cursor"] = view.cursor
    response = RedirectResponse(url_with(OVERVIEW_PATH, **params, selected=neighbour), 303)
    response.set_cookie(
        FLASH_COOKIE,
        quote(f"Integration “{name}” deleted."),
        max_age=FLASH_MAX_AGE_SECONDS,
        httponly=True,
        samesite="strict",
        path=OVERVIEW_PATH,
    )
    return response


async def _neighbour(session: AsyncSession, view: ListView, integration: Integration) -> str | None:
    """The row the selection moves to once this one is gone: the next one, else the one
    before it, in the order the overview shows."""
    for direction in ("next", "prev"):
        cursor = Cursor(
            view.sort,
            view.order,
            cursor_value(getattr(integration, view.sort)),
            integration.id,
            direction,
        )
        page = await service.list_integrations(
            session, sort=view.sort, order=view.order, q=view.q, limit=1, cursor=cursor.encode()
        )
        if page.items:
            found: str = page.items[0].id
            return found
    return None
