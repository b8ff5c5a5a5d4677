"""Management API: integrations and their secret keys."""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from pydantic import BaseModel

from reflexblue.api.dependencies import AdminUser, CurrentUser, RuntimeDep, Sessions, actor_of
from reflexblue.api.json_bodies import StrictJsonRoute
from reflexblue.api.management.documentation import admin_errors, read_errors, write_errors
from reflexblue.core.database import transaction
from reflexblue.core.paging import Order
from reflexblue.integrations import service
from reflexblue.integrations.schemas import (
    IntegrationCreate,
    IntegrationRead,
    IntegrationUpdate,
    SecretRead,
)

router = APIRouter(prefix="/integrations", tags=["integrations"], route_class=StrictJsonRoute)

_VERSION_MAX_DIGITS = 18


class IntegrationPage(BaseModel):
    items: list[IntegrationRead]
    next_cursor: str | None
    prev_cursor: str | None


IfMatch = Annotated[
    str | None,
    Header(description='The version from the ETag, such as `"3"`; a stale one gets 412.'),
]


@router.get("", response_model=IntegrationPage, responses=read_errors())
async def list_integrations(
    _: CurrentUser,
    sessions: Sessions,
    sort: service.SortField = "name",
    order: Order = "asc",
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=service.PAGE_SIZE_MAX)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """List integrations, sorted and optionally searched; follow `next_cursor` for more."""
    async with transaction(sessions) as session:
        page = await service.list_integrations(
            session, sort=sort, order=order, q=q, limit=limit, cursor=cursor
        )
    # The page is read from the rows and written as JSON in one pass each, and handed over
    # as it is: FastAPI would validate the finished model again before serialising it.
    listed = IntegrationPage.model_validate(page, from_attributes=True)
    return Response(listed.model_dump_json(), media_type="application/json")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=IntegrationRead,
    responses=write_errors(409),
)
async def create_integration(
    data: IntegrationCreate,
    user: AdminUser,
    runtime: RuntimeDep,
    request: Request,
    response: Response,
) -> IntegrationRead:
    """Create an integration; its secret key is generated and can be read from `/secret`."""
    async with transaction(runtime.sessions) as session:
        integration = await service.create_integration(session, runtime.box, data, actor_of(user))
        created = IntegrationRead.model_validate(integration)
    response.headers["Location"] = str(request.url_for("get_integration", id=created.id).path)
    response.headers["ETag"] = _etag(created.version)
    return created


@router.get("/{id}", response_model=IntegrationRead, responses=read_errors(404))
async def get_integration(
    id: str, _: CurrentUser, sessions: Sessions, response: Response
) -> IntegrationRead:
    """One integration. The `ETag` header carries its version for `If-Match`."""
    async with transaction(sessions) as session:
        found = IntegrationRead.model_validate(await service.get_integration(session, id))
    response.headers["ETag"] = _etag(found.version)
    return found


@router.patch("/{id}", response_model=IntegrationRead, responses=write_errors(404, 409, 412))
async def update_integration(
    id: str,
    data: IntegrationUpdate,
    user: AdminUser,
    sessions: Sessions,
    response: Response,
    if_match: IfMatch = None,
) -> IntegrationRead:
    """Change the given fields; the others stay. With `If-Match`, only if unchanged since."""
    async with transaction(sessions) as session:
        integration = await service.update_integration(
            session, id, data, actor_of(user), expected_version=_version_from(if_match)
        )
        await session.flush()
        updated = IntegrationRead.model_validate(integration)
    response.headers["ETag"] = _etag(updated.version)
    return updated


@router.delete("/{id}", status_code=status.HTTP_204_NO_CONTENT, responses=admin_errors(404, 412))
async def delete_integration(
    id: str, user: AdminUser, sessions: Sessions, if_match: IfMatch = None
) -> None:
    """Delete an integration with its webhooks and API keys."""
    async with transaction(sessions) as session:
        await service.delete_integration(
            session, id, actor_of(user), expected_version=_version_from(if_match)
        )


@router.get("/{id}/secret", response_model=SecretRead, responses=admin_errors(404))
async def reveal_secret(id: str, user: AdminUser, runtime: RuntimeDep) -> SecretRead:
    """The secret key in plain text (audited). Admins only."""
    async with transaction(runtime.sessions) as session:
        return await service.reveal_secret(session, runtime.box, id, actor_of(user))


@router.post(
    "/{id}/secret/rotate", response_model=SecretRead, responses=admin_errors(404, 413, 415)
)
async def rotate_secret(id: str, user: AdminUser, runtime: RuntimeDep) -> SecretRead:
    """Make a new secret key; the previous one keeps signing for the grace period."""
    async with transaction(runtime.sessions) as session:
        return await service.rotate_secret(
            session,
            runtime.box,
            id,
            actor_of(user),
            grace_period_seconds=runtime.settings.secret_grace_period,
        )


def _etag(version: int) -> str:
    return f'"{version}"'


def _version_from(if_match: str | None) -> int | None:
    """`"3"`, `W/"3"` or `3` name version 3; `*` matches any; anything else matches none."""
    if if_match is None or if_match.strip() == "*":
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    # isdigit() alone also admits "²" and digits of other scripts, and a number of
    # thousands of digits would exceed int()'s limit; no version is that long.
    is_version = text.isascii() and text.isdigit() and len(text) <= _VERSION_MAX_DIGITS
    return int(text) if is_version else -1
