"""Who is calling the External API: the integration behind the API key, within its rate.

A key is judged in order of cost: its shape first, then its client address's allowance of
failed keys, then this process's keys verified in the last few seconds, and only then the
database, by the key's SHA-256. Guessing keys thus costs the guesser a request each and the
product almost nothing, and a client's run of requests costs one lookup every few seconds."""

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import Counter
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Scope

from reflexblue.api.dependencies import RuntimeDep
from reflexblue.api.external.rate_limit import (
    Admission,
    FailedKeyLimit,
    RateLimiter,
    TooManyFailedKeys,
    retry_after_header,
)
from reflexblue.api.problems import PROBLEM_CONTENT_TYPE, fixed_problem_body
from reflexblue.audit.service import Actor
from reflexblue.core.crypto import hash_token
from reflexblue.core.errors import Unauthenticated
from reflexblue.core.settings import Settings
from reflexblue.integrations.api_keys import API_KEY_PREFIX, known_api_key, verify_api_key
from reflexblue.operations.flood_gate import Refusal, Refused, client_address
from reflexblue.operations.metrics import REGISTRY

# What new_token makes: the prefix and the URL-safe base64 of 32 random bytes.
_KEY_SHAPE = re.compile(re.escape(API_KEY_PREFIX) + r"[A-Za-z0-9_-]{43}")
_TOO_MANY_FAILED_KEYS = (
    "This client address sent too many API keys that are not right; retry after the number "
    "of seconds in Retry-After."
)

API_KEY_LOOKUPS = Counter(
    "reflexblue_api_key_lookups_total",
    "External API keys looked up in the database by this process, by result: found, or "
    "refused (unknown, revoked or expired). Keys refused before the lookup are not counted.",
    ["result"],
    registry=REGISTRY,
)
for _result in ("found", "refused"):
    API_KEY_LOOKUPS.labels(_result)

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


@dataclass(frozen=True)
class CallerLimits:
    """The External API's limits, one set per application: requests per API key, and failed
    keys per client address."""

    per_key: RateLimiter
    failed_keys: FailedKeyLimit

    @classmethod
    def from_settings(cls, settings: Settings) -> "CallerLimits":
        return cls(
            RateLimiter(rate=settings.external_rate_limit, burst=settings.external_rate_burst),
            FailedKeyLimit(
                rate=settings.external_failed_key_rate,
                burst=settings.external_failed_key_burst,
            ),
        )


async def get_caller(
    request: Request,
    runtime: RuntimeDep,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> Caller:
    key = _presented_key(request)
    key_hash = hash_token(key)
    limits: CallerLimits = request.app.state.caller_limits
    admission = _admitted(limits.failed_keys, key_hash, client_address(request.scope))
    verified = known_api_key(key_hash)
    if verified is None:
        try:
            verified = await verify_api_key(runtime.sessions, key)
        except Unauthenticated:
            API_KEY_LOOKUPS.labels("refused").inc()
            limits.failed_keys.failed(admission)
            raise
        API_KEY_LOOKUPS.labels("found").inc()
    limits.failed_keys.succeeded(admission)
    caller = Caller(verified.integration_id, verified.export_id, verified.key_id, verified.key_name)
    _within_rate(limits.per_key, caller)
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


def _presented_key(request: Request) -> str:
    scheme, key = _bearer_parts(request.headers.get("authorization", ""))
    if scheme != "bearer" or not key:
        raise Unauthenticated("Send an API key in the header Authorization: Bearer rbk_….")
    if not key.startswith(API_KEY_PREFIX):
        raise Unauthenticated("The credential is not an External API key (rbk_…).")
    if not _KEY_SHAPE.fullmatch(key):
        raise Unauthenticated("The API key is not in its form: rbk_ and 43 more characters.")
    return key


def _admitted(limit: FailedKeyLimit, key_hash: str, address: str) -> Admission:
    try:
        return limit.admit(key_hash, address)
    except TooManyFailedKeys as refusal:
        raise HTTPException(
            429,
            _TOO_MANY_FAILED_KEYS,
            headers={"Retry-After": retry_after_header(refusal.wait_seconds)},
        ) from None


def flooding_address_refusal(limits: CallerLimits, mount_path: str) -> Refusal:
    """For the flood gate: a request to the API at `mount_path` from an address refused for
    failed keys, unless it carries a key known to be good, gets the 429 `get_caller` would
    give it, without routing or dependencies."""
    prefix = mount_path + "/"

    def refuse(scope: Scope) -> Refused | None:
        path: str = scope["path"]
        if not (path.startswith(prefix) or path == mount_path):
            return None
        key = _bearer_key_in(scope["headers"])
        key_hash = hash_token(key) if key is not None else None
        wait_seconds = limits.failed_keys.refusing(key_hash, client_address(scope))
        if wait_seconds is None:
            return None
        answer = Response(
            fixed_problem_body(429, _TOO_MANY_FAILED_KEYS),
            status_code=429,
            headers={"Retry-After": retry_after_header(wait_seconds)},
            media_type=PROBLEM_CONTENT_TYPE,
        )
        return Refused(mount_path + "/{path}", answer)

    return refuse


def _bearer_key_in(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The well-formed API key in the raw Authorization header, if there is one."""
    for name, value in headers:
        if name == b"authorization":
            scheme, key = _bearer_parts(value.decode("latin-1"))
            return key if scheme == "bearer" and _KEY_SHAPE.fullmatch(key) else None
    return None


def _bearer_parts(header: str) -> tuple[str, str]:
    """An Authorization header's scheme, in lower case, and its credential."""
    scheme, _, credential = header.partition(" ")
    return scheme.lower(), credential.strip()


def _within_rate(limiter: RateLimiter, caller: Caller) -> None:
    wait_seconds = limiter.try_acquire(caller.api_key_id)
    if wait_seconds is not None:
        raise HTTPException(
            429,
            "This API key sent more requests than its rate limit allows; retry after the "
            "number of seconds in Retry-After.",
            headers={"Retry-After": retry_after_header(wait_seconds)},
        )
