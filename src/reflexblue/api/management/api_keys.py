"""Management API: an integration's External API keys."""

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel

from reflexblue.api.dependencies import AdminUser, CurrentUser, Sessions, actor_of
from reflexblue.api.json_bodies import StrictJsonRoute
from reflexblue.api.management.documentation import admin_errors, read_errors, write_errors
from reflexblue.core.database import transaction
from reflexblue.integrations import api_keys
from reflexblue.integrations.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyRead

router = APIRouter(
    prefix="/integrations/{id}/api-keys", tags=["API keys"], route_class=StrictJsonRoute
)


class ApiKeyList(BaseModel):
    items: list[ApiKeyRead]


@router.post(
    "",
    operation_id="createApiKey",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=write_errors(404),
)
async def create_api_key(
    id: str,
    data: ApiKeyCreate,
    user: AdminUser,
    sessions: Sessions,
    request: Request,
    response: Response,
) -> ApiKeyCreated:
    """Create an API key for the integration's External API calls. The key is in this answer
    only; keep it, it cannot be shown again."""
    async with transaction(sessions) as session:
        created = await api_keys.create_api_key(session, id, data, actor_of(user))
    response.headers["Location"] = str(request.url_for("list_api_keys", id=id).path)
    response.headers["Cache-Control"] = "no-store"
    return created


@router.get("", operation_id="listApiKeys", response_model=ApiKeyList, responses=read_errors(404))
async def list_api_keys(id: str, _: CurrentUser, sessions: Sessions) -> ApiKeyList:
    """The integration's API keys, revoked ones included; never the keys themselves."""
    async with transaction(sessions) as session:
        rows = await api_keys.list_api_keys(session, id)
        return ApiKeyList(items=[ApiKeyRead.model_validate(row) for row in rows])


@router.delete(
    "/{key_id}",
    operation_id="revokeApiKey",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=admin_errors(404),
)
async def revoke_api_key(id: str, key_id: str, user: AdminUser, sessions: Sessions) -> Response:
    """Revoke an API key; requests with it get 401 from now on."""
    async with transaction(sessions) as session:
        await api_keys.revoke_api_key(session, key_id, actor_of(user), integration_id=id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
