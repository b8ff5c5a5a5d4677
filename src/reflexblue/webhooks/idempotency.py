"""Idempotency keys: a request repeated with the same key is answered, not carried out again.

The key is claimed in its own committed transaction before the work starts, so a concurrent
repeat sees the claim; the work and the stored answer then commit together.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.core.database import utcnow
from reflexblue.core.errors import Conflict, FieldError, ValidationFailed
from reflexblue.webhooks.models import IdempotencyRecord

KEY_MAX_LENGTH = 255
KEY_LIFETIME = timedelta(hours=24)
# A claim whose work neither committed nor released within this time was abandoned by a
# process that died; the work and its answer commit together, so doing it again is safe.
ABANDONED_CLAIM_AFTER = timedelta(minutes=2)
HEADER = "Idempotency-Key"
# Set on an answer that repeats the stored one instead of doing the work again.
REPLAYED_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: Any


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same request."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def check_key(key: str) -> str:
    if not key or len(key) > KEY_MAX_LENGTH or not key.isascii() or not key.isprintable():
        message = f"Use 1 to {KEY_MAX_LENGTH} printable ASCII characters, such as a UUID."
        raise ValidationFailed(message, [FieldError(HEADER, message)])
    return key


async def claim(
    session: AsyncSession, integration_id: str, key: str, request_fingerprint: str
) -> StoredAnswer | None:
    """Claim the key for this request, or return the answer stored for it earlier."""
    now = utcnow()
    await prune_expired(session, now)
    found = await session.get(IdempotencyRecord, (integration_id, key), with_for_update=True)
    if found is not None and _abandoned(found, now):
        await session.delete(found)
        await session.flush()
        found = None
    if found is None:
        await _insert_claim(session, integration_id, key, request_fingerprint, now)
        return None
    if found.fingerprint != request_fingerprint:
        message = (
            "This Idempotency-Key was already used with another request; "
            "use a new key for a new request."
        )
        raise ValidationFailed(message, [FieldError(HEADER, message)])
    if found.response_status is None:
        raise Conflict("A request with this Idempotency-Key is still being answered; try again.")
    return StoredAnswer(found.response_status, found.response_body)


async def store_answer(
    session: AsyncSession, integration_id: str, key: str, status: int, body: Any
) -> None:
    found = await session.get(IdempotencyRecord, (integration_id, key))
    if found is not None:
        found.response_status = status
        found.response_body = body


async def release(session: AsyncSession, integration_id: str, key: str) -> None:
    """Give the key back when the work failed, so the request can be sent again."""
    await session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.integration_id == integration_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.response_status.is_(None),
        )
    )


async def prune_expired(session: AsyncSession, now: datetime) -> None:
    """Forget answers older than the key lifetime; an index range, cheap when there are none."""
    await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at <= now - KEY_LIFETIME)
    )


def _abandoned(record: IdempotencyRecord, now: datetime) -> bool:
    return record.response_status is None and record.created_at <= now - ABANDONED_CLAIM_AFTER


async def _insert_claim(
    session: AsyncSession, integration_id: str, key: str, request_fingerprint: str, now: datetime
) -> None:
    session.add(
        IdempotencyRecord(
            integration_id=integration_id,
            key=key,
            fingerprint=request_fingerprint,
            created_at=now,
        )
    )
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(
            "A request with this Idempotency-Key is still being answered; try again."
        ) from None
