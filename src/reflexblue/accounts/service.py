"""Users, their passwords and their Management API tokens."""

import logging
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reflexblue.accounts.models import Role, User, UserToken
from reflexblue.accounts.passwords import hash_password, needs_rehash, verify_password
from reflexblue.accounts.schemas import UserCreate
from reflexblue.audit.service import Actor, record
from reflexblue.core.credential_cache import CredentialCache, Watched
from reflexblue.core.crypto import hash_token, new_token
from reflexblue.core.database import serialise_first_start, transaction, utcnow
from reflexblue.core.errors import Conflict, FieldError, NotFound, Unauthenticated
from reflexblue.core.validation import unstorable

logger = logging.getLogger(__name__)

USER_TOKEN_PREFIX = "rbu_"  # noqa: S105 - a public prefix, not a secret
FIRST_ADMIN_USERNAME = "admin"
GENERATED_PASSWORD_BYTES = 18
# The same words whether the name or the password was wrong: they say nothing of which.
WRONG_CREDENTIALS = "The user name or password is not right."
# Writing last_used_at on every request would turn every read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=1)
# How long this process takes a verified token on trust. A token revoked (or its user changed
# or deleted) by this process is refused at once; by another process (`reflexblue tokens
# revoke`, another `serve`), only once this many seconds have passed.
TOKEN_TRUST_SECONDS = 5.0
UNKNOWN_TOKEN = "The token is unknown or has been revoked."  # noqa: S105 - a message

verified_tokens: CredentialCache[User] = CredentialCache(TOKEN_TRUST_SECONDS)


async def create_user(session: AsyncSession, data: UserCreate, actor: Actor) -> User:
    user = User(
        username=data.username, password_hash=hash_password(data.password), role=data.role.value
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        message = f"A user named {data.username!r} already exists."
        raise Conflict(message, [FieldError("username", message)]) from None
    record(
        session,
        actor,
        "user.created",
        target_type="user",
        target_id=user.id,
        target_name=user.username,
        changes={"role": {"to": user.role}},
    )
    return user


async def get_user(session: AsyncSession, username: str) -> User:
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"No user is named {username!r}.")
    return user


async def ensure_first_admin(session: AsyncSession, password: str | None) -> str | None:
    """Create `admin` when there are no users yet. Returns the password if it was generated."""
    await serialise_first_start(session)
    if await session.scalar(select(User.id).limit(1)) is not None:
        return None
    generated = password is None
    password = password or secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
    user = User(
        username=FIRST_ADMIN_USERNAME, password_hash=hash_password(password), role=Role.ADMIN.value
    )
    session.add(user)
    await session.flush()
    record(
        session,
        Actor("system", "start-up"),
        "user.created",
        target_type="user",
        target_id=user.id,
        target_name=user.username,
        changes={"role": {"to": user.role}},
    )
    logger.info("created the first administrator", extra={"username": user.username})
    return password if generated else None


async def user_named(session: AsyncSession, username: str) -> User | None:
    """The user of this name; None for a name no user can have (PostgreSQL refuses a NUL in a
    query outright), which is then treated as any other unknown name."""
    if unstorable(username):
        return None
    found: User | None = await session.scalar(select(User).where(User.username == username))
    return found


async def authenticate_password(session: AsyncSession, username: str, password: str) -> User:
    user = await user_named(session, username)
    if not verify_password(user.password_hash if user else None, password) or user is None:
        raise Unauthenticated(WRONG_CREDENTIALS)
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


async def create_token(
    session: AsyncSession, username: str, name: str, actor: Actor
) -> tuple[UserToken, str]:
    """A new Management API token; the plain token is returned here and never again."""
    user = await get_user(session, username)
    token = new_token(USER_TOKEN_PREFIX)
    row = UserToken(user_id=user.id, name=name, token_hash=hash_token(token), last_four=token[-4:])
    session.add(row)
    await session.flush()
    record(
        session,
        actor,
        "token.created",
        target_type="user_token",
        target_id=row.id,
        target_name=name,
    )
    return row, token


async def list_tokens(session: AsyncSession, username: str) -> list[UserToken]:
    user = await get_user(session, username)
    query = select(UserToken).where(UserToken.user_id == user.id).order_by(UserToken.created_at)
    return list(await session.scalars(query))


async def revoke_token(session: AsyncSession, token_id: str, actor: Actor) -> UserToken:
    row = await session.get(UserToken, token_id)
    if row is None:
        raise NotFound(f"No token has the id {token_id!r}.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        record(
            session,
            actor,
            "token.revoked",
            target_type="user_token",
            target_id=row.id,
            target_name=row.name,
        )
    return row


async def user_of_token(sessions: async_sessionmaker[AsyncSession], token: str) -> User:
    """The user a bearer token belongs to, looked up by the token's hash (so timing says nothing
    of it); a token verified in the last few seconds is taken from this process's cache,
    without a transaction."""
    _check_token_form(token)
    token_hash = hash_token(token)
    known = verified_tokens.get(token_hash)
    if known is not None:
        return known
    generation = verified_tokens.generation()
    async with transaction(sessions) as session:
        user = await _user_of_token_hash(session, token_hash)
    # Its last use was written above at most once a minute; a cached use writes nothing, so
    # last_used_at may lag by the cache's time as well.
    verified_tokens.put(token_hash, user, generation, depends_on=[user.id])
    return user


def _check_token_form(token: str) -> None:
    if not token.startswith(USER_TOKEN_PREFIX):
        raise Unauthenticated("The token is not a Management API token (rbu_…).")


async def _user_of_token_hash(session: AsyncSession, token_hash: str) -> User:
    # The token and its user in one statement: this runs on every Management API request
    # that the cache does not answer.
    found = (
        await session.execute(
            select(UserToken, User)
            .join(User, User.id == UserToken.user_id)
            .where(UserToken.token_hash == token_hash)
        )
    ).one_or_none()
    if found is None:
        raise Unauthenticated(UNKNOWN_TOKEN)
    row, user = found
    if row.revoked_at is not None:
        raise Unauthenticated(UNKNOWN_TOKEN)
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > _LAST_USED_RESOLUTION:
        row.last_used_at = now
    return user


# What a cached credential's verdict rests on: its user's role and name, and a token's
# revocation and owner; last_used_at, written on use, is not among them.
WATCHED_USERS = Watched(User, "id", trusted=("role", "username"))
verified_tokens.forget_on_change(
    Watched(UserToken, "token_hash", trusted=("revoked_at", "user_id", "token_hash")),
    WATCHED_USERS,
)
