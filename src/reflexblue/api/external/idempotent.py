"""Answering a POST once per Idempotency-Key, and the same way every time after."""

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.api.external.caller import Caller
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.webhooks import idempotency
from reflexblue.webhooks.idempotency import REPLAYED_HEADER

Work = Callable[[AsyncSession], Awaitable[BaseModel]]
Check = Callable[[], Awaitable[None]]
HeadersOf = Callable[[Any], dict[str, str]]


async def answer_once(
    request: Request,
    runtime: Runtime,
    caller: Caller,
    *,
    status_code: int,
    work: Work,
    check: Check | None = None,
    headers_of: HeadersOf | None = None,
) -> JSONResponse:
    """Run `check` (outside any transaction), then `work` in one transaction, and answer.

    With an Idempotency-Key, a repeat of the same request gets the stored answer instead, and
    the key used with another request is refused.
    """
    key = request.headers.get(idempotency.HEADER)
    if key is None:
        body = await _carry_out(runtime, check, work)
        return _answer(status_code, body, headers_of)

    idempotency.check_key(key)
    request_fingerprint = idempotency.fingerprint(
        request.method, request.url.path, await request.body()
    )
    async with transaction(runtime.sessions) as session:
        stored = await idempotency.claim(session, caller.integration_id, key, request_fingerprint)
    if stored is not None:
        headers = {REPLAYED_HEADER: "true"}
        return _answer(stored.status, stored.body, headers_of, headers)

    try:
        body = await _carry_out(runtime, check, work, caller, key, status_code)
    except BaseException:
        async with transaction(runtime.sessions) as session:
            await idempotency.release(session, caller.integration_id, key)
        raise
    return _answer(status_code, body, headers_of)


async def _carry_out(
    runtime: Runtime,
    check: Check | None,
    work: Work,
    caller: Caller | None = None,
    key: str | None = None,
    status_code: int = 200,
) -> Any:
    if check is not None:
        await check()
    async with transaction(runtime.sessions) as session:
        result = await work(session)
        body = result.model_dump(mode="json", by_alias=True)
        if caller is not None and key is not None:
            # Stored in the same transaction as the work: both happen, or neither.
            await idempotency.store_answer(session, caller.integration_id, key, status_code, body)
    return body


def _answer(
    status_code: int,
    body: Any,
    headers_of: HeadersOf | None,
    extra_headers: dict[str, str] | None = None,
) -> JSONResponse:
    headers = {**(headers_of(body) if headers_of else {}), **(extra_headers or {})}
    return JSONResponse(body, status_code=status_code, headers=headers)
