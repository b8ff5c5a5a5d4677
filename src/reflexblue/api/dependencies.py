"""What API routes receive: the runtime, the calling user, and checks on the request itself."""

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reflexblue.accounts.models import User
from reflexblue.accounts.service import user_of_token
from reflexblue.api.problems import BodyTooLarge, UnsupportedMediaType
from reflexblue.audit.service import Actor
from reflexblue.core.errors import Forbidden, Unauthenticated
from reflexblue.core.runtime import Runtime

MAX_BODY_BYTES = 1024 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


# Dependencies are coroutines even when they do not await: FastAPI runs a plain function in
# a worker thread, a hop that costs more than the function itself.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_sessions(runtime: RuntimeDep) -> async_sessionmaker[AsyncSession]:
    return runtime.sessions


Sessions = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessions)]


# The runtime is read here directly rather than through the dependencies above: this runs on
# every Management API request, and each dependency FastAPI resolves costs about as much as
# a cached token check.
async def get_current_user(request: Request) -> User:
    runtime: Runtime = request.app.state.runtime
    return await user_of_token(runtime.sessions, _bearer_token(request))


CurrentUser = Annotated[User, Depends(get_current_user)]


async def require_admin(user: CurrentUser) -> User:
    if not user.is_admin:
        raise Forbidden(f"The {user.role} role may read but not change anything here.")
    return user


AdminUser = Annotated[User, Depends(require_admin)]


def actor_of(user: User) -> Actor:
    return Actor("user", user.username)


async def require_json_body(request: Request) -> None:
    """Bodies must be JSON and at most 1 MiB; other bodies are refused before parsing."""
    if request.method not in _BODY_METHODS:
        return
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise BodyTooLarge(f"The body may be at most {MAX_BODY_BYTES} bytes.")
    has_body = (length not in (None, "0")) or "transfer-encoding" in request.headers
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if has_body and not (media_type == "application/json" or media_type.endswith("+json")):
        raise UnsupportedMediaType("Send the body as JSON with Content-Type: application/json.")
    if length is None and len(await request.body()) > MAX_BODY_BYTES:
        # A chunked body declares no length; its size is known once it has been read.
        # TODO: stop reading at the limit (an ASGI middleware) instead of after buffering it.
        raise BodyTooLarge(f"The body may be at most {MAX_BODY_BYTES} bytes.")


def _bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Send a token in the header Authorization: Bearer <token>.")
    return token.strip()
