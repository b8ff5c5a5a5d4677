"""Who is calling the External API: the integration behind the API key, within its rate."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from reflexblue.api.dependencies import RuntimeDep
from reflexblue.api.external.rate_limit import RateLimiter, retry_after_header
from reflexblue.audit.service import Actor
from reflexblue.core.database import transaction
from reflexblue.core.errors import Unauthenticated
from reflexblue.integrations.api_keys import authenticate_api_key

# Declared for the OpenAPI document only; the header is read and judged below.
_bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key of the integration: `Authorization: Bearer rbk_…`.",
)


@dataclass(frozen=True)
class Caller:
    integration_id: str
    export_id: str
    api_key_id: str
    api_key_name: str

    @property
    def actor(self) -> Actor:
        return Actor("api_key", f"{self.export_id}/{self.api_key_name}")


async def get_caller(
    request: Request,
    runtime: RuntimeDep,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> Caller:
    key = _presented_key(request)
    async with transaction(runtime.sessions) as session:
        integration, api_key = await authenticate_api_key(session, key)
        caller = Caller(integration.id, integration.export_id, api_key.id, api_key.name)
    _within_rate(request, caller)
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


def _presented_key(request: Request) -> str:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthenticated("Send an API key in the header Authorization: Bearer rbk_….")
    return key.strip()


def _within_rate(request: Request, caller: Caller) -> None:
    limiter: RateLimiter = request.app.state.rate_limiter
    wait_seconds = limiter.try_acquire(caller.api_key_id)
    if wait_seconds is not None:
        raise HTTPException(
            429,
            "This API key sent more requests than its rate limit allows; retry after the "
            "number of seconds in Retry-After.",
            headers={"Retry-After": retry_after_header(wait_seconds)},
        )
