"""API keys: the credentials an external system uses to call the External API as its
integration. A key is shown once; only its SHA-256 is kept."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reflexblue.audit.service import Actor, record
from reflexblue.core.credential_cache import CredentialCache, Watched
from reflexblue.core.crypto import hash_token, new_token
from reflexblue.core.database import transaction, utcnow
from reflexblue.core.errors import FieldError, NotFound, Unauthenticated, ValidationFailed
from reflexblue.core.validation import Timestamp, text_rule, unstorable
from reflexblue.integrations.models import ApiKey, Integration
from reflexblue.integrations.service import get_integration

API_KEY_PREFIX = "rbk_"
API_KEY_NAME_MAX_LENGTH = 100
# Writing last_used_at on every request would turn every read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=1)
_REFUSED = "The API key is unknown, revoked or expired."
# How long this process trusts a key it verified without looking it up again, as it does a
# Management API token: a change made here is seen at once, one made elsewhere after this.
KEY_TRUST_SECONDS = 5.0

ApiKeyName = Annotated[
    str,
    Field(strict=True),
    AfterValidator(text_rule(max_length=API_KEY_NAME_MAX_LENGTH, required=True)),
]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ApiKeyName
    expires_at: Timestamp | None = Field(
        default=None, description="When the key stops working; in the future. Never if absent."
    )


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    last_four: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(BaseModel):
    """A new key. `key` is shown here once and never again."""

    id: str
    name: str
    key: str
    created_at: datetime
    expires_at: datetime | None


async def create_api_key(
    session: AsyncSession, integration_id: str, data: ApiKeyCreate, actor: Actor
) -> ApiKeyCreated:
    integration = await get_integration(session, integration_id)
    if data.expires_at is not None and data.expires_at <= utcnow():
        message = "The expiry must lie in the future."
        raise ValidationFailed(message, [FieldError("expires_at", message)])
    key = new_token(API_KEY_PREFIX)
    row = ApiKey(
        integration_id=integration.id,
        name=data.name,
        key_hash=hash_token(key),
        last_four=key[-4:],
        created_at=utcnow(),
        expires_at=data.expires_at,
    )
    session.add(row)
    await session.flush()
    record(
        session,
        actor,
        "api_key.created",
        target_type="api_key",
        target_id=row.id,
        target_name=f"{integration.name}: {row.name}",
        changes={"integration_id": {"to": integration.id}, "expires_at": {"to": _iso(row)}},
    )
    return ApiKeyCreated(
        id=row.id, name=row.name, key=key, created_at=row.created_at, expires_at=row.expires_at
    )


async def list_api_keys(session: AsyncSession, integration_id: str) -> list[ApiKey]:
    """Every key of the integration, revoked ones included, oldest first."""
    await get_integration(session, integration_id)
    query = select(ApiKey).where(ApiKey.integration_id == integration_id).order_by(ApiKey.id)
    return list(await session.scalars(query))


async def get_api_key(session: AsyncSession, key_id: str) -> ApiKey:
    row = None if unstorable(key_id) else await session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"No API key has the id {key_id!r}.")
    return row


async def revoke_api_key(
    session: AsyncSession, key_id: str, actor: Actor, *, integration_id: str | None = None
) -> ApiKey:
    """Revoke a key at once. With `integration_id`, only a key of that integration."""
    row = await get_api_key(session, key_id)
    if integration_id is not None and row.integration_id != integration_id:
        raise NotFound(f"No API key has the id {key_id!r}.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        record(
            session,
            actor,
            "api_key.revoked",
            target_type="api_key",
            target_id=row.id,
            target_name=row.name,
            changes={"integration_id": {"from": row.integration_id}},
        )
    return row


async def authenticate_api_key(session: AsyncSession, key: str) -> tuple[Integration, ApiKey]:
    """The integration a key belongs to. The lookup is by hash, so its time says nothing
    about how much of a guessed key was right."""
    if not key.startswith(API_KEY_PREFIX):
        raise Unauthenticated("The credential is not an External API key (rbk_…).")
    row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_token(key)))
    now = utcnow()
    if row is None or row.revoked_at is not None:
        raise Unauthenticated(_REFUSED)
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthenticated(_REFUSED)
    integration = await session.get(Integration, row.integration_id)
    if integration is None:
        raise Unauthenticated(_REFUSED)
    if row.last_used_at is None or now - row.last_used_at > _LAST_USED_RESOLUTION:
        row.last_used_at = now
    return integration, row


@dataclass(frozen=True)
class VerifiedKey:
    """What a request needs of the key it came with, and of the key's integration."""

    integration_id: str
    export_id: str
    key_id: str
    key_name: str
    expires_at: datetime | None


verified_keys: CredentialCache[VerifiedKey] = CredentialCache(KEY_TRUST_SECONDS)


def known_api_key(key_hash: str) -> VerifiedKey | None:
    """A key this process verified in the last few seconds and that has not expired since;
    None when it must be looked up."""
    known = verified_keys.get(key_hash)
    if known is None or (known.expires_at is not None and known.expires_at <= utcnow()):
        return None
    return known


async def verify_api_key(sessions: async_sessionmaker[AsyncSession], key: str) -> VerifiedKey:
    """Look a key up (`authenticate_api_key`, in a transaction of its own) and keep the
    verdict for a few seconds. Its last use is written at most once a minute, on a lookup, so
    `last_used_at` may lag by the cache's time as well."""
    generation = verified_keys.generation()
    async with transaction(sessions) as session:
        integration, row = await authenticate_api_key(session, key)
        verified = VerifiedKey(
            integration.id, integration.export_id, row.id, row.name, row.expires_at
        )
        key_hash = row.key_hash
    verified_keys.put(key_hash, verified, generation, depends_on=[integration.id])
    return verified


# What a verified key rests on: the key's revocation, expiry, owner and name, and its
# integration's existence and Export ID (deleting the integration deletes its keys).
verified_keys.forget_on_change(
    Watched(ApiKey, "key_hash", trusted=("revoked_at", "expires_at", "integration_id", "name")),
    Watched(Integration, "id", trusted=("export_id",)),
)


def _iso(row: ApiKey) -> str | None:
    return row.expires_at.isoformat() if row.expires_at else None
