"""Console sessions: a signed-in browser, and the brake on guessing passwords.

The browser holds a random token in a cookie; the database holds only its hash, so a copy of
the database lets no one sign in. Every sign-in makes a new token (no session fixation), and a
session ends when it is idle too long, when it reaches its absolute age, or on sign-out.
"""

import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.accounts.models import ConsoleSession, User
from reflexblue.accounts.service import authenticate_password
from reflexblue.core.crypto import hash_token, new_token
from reflexblue.core.database import utcnow
from reflexblue.core.errors import DomainError

logger = logging.getLogger(__name__)

SESSION_TOKEN_PREFIX = "rbs_"  # noqa: S105 - a public prefix, not a secret
CSRF_TOKEN_BYTES = 32
IDLE_TIMEOUT = timedelta(hours=2)
ABSOLUTE_LIFETIME = timedelta(hours=12)
# Sliding the idle expiry on every request would turn every page view into a write.
_SLIDE_RESOLUTION = timedelta(minutes=1)

LOGIN_FAILURES_ALLOWED = 5
LOGIN_LOCKOUT_SECONDS = 30.0
LOGIN_LOCKOUT_MAX_SECONDS = 15 * 60.0


class TooManyLoginFailures(DomainError):
    title = "Too many failed sign-ins"

    def __init__(self, retry_after_seconds: float) -> None:
        self.retry_after_seconds = math.ceil(retry_after_seconds)
        super().__init__(
            f"Too many failed sign-ins. Wait {_in_words(self.retry_after_seconds)} and try again."
        )


@dataclass(frozen=True)
class SignedIn:
    """A live session: who it belongs to and the token its forms must carry."""

    user: User
    csrf_token: str


async def sign_in(session: AsyncSession, username: str, password: str) -> tuple[str, SignedIn]:
    """Check the password and open a new session; returns the cookie token and the session."""
    user = await authenticate_password(session, username, password)
    # Sign-ins are rare enough to carry the clean-up of sessions that ran out.
    await prune_expired_sessions(session)
    token = new_token(SESSION_TOKEN_PREFIX)
    now = utcnow()
    row = ConsoleSession(
        token_hash=hash_token(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(CSRF_TOKEN_BYTES),
        created_at=now,
        expires_at=now + IDLE_TIMEOUT,
    )
    session.add(row)
    await session.flush()
    logger.info("console sign-in", extra={"username": user.username})
    return token, SignedIn(user, row.csrf_token)


async def resume(session: AsyncSession, token: str | None) -> SignedIn | None:
    """The session a cookie token belongs to, if it is still alive; it slides the idle expiry."""
    if not token or not token.startswith(SESSION_TOKEN_PREFIX):
        return None
    row = await session.scalar(
        select(ConsoleSession).where(ConsoleSession.token_hash == hash_token(token))
    )
    now = utcnow()
    if row is None:
        return None
    ends_at = row.created_at + ABSOLUTE_LIFETIME
    if row.expires_at <= now or ends_at <= now:
        await session.delete(row)
        return None

    slid = min(now + IDLE_TIMEOUT, ends_at)
    if slid < row.expires_at or slid - row.expires_at >= _SLIDE_RESOLUTION:
        row.expires_at = slid
    user = await session.get(User, row.user_id)
    if user is None:
        return None
    return SignedIn(user, row.csrf_token)


async def sign_out(session: AsyncSession, token: str | None) -> None:
    if not token:
        return
    await session.execute(
        delete(ConsoleSession).where(ConsoleSession.token_hash == hash_token(token))
    )


async def prune_expired_sessions(session: AsyncSession) -> int:
    """Remove sessions past their expiry; returns how many went."""
    result = await session.execute(
        delete(ConsoleSession).where(ConsoleSession.expires_at <= utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


@dataclass
class LoginThrottle:
    """Slows password guessing: after a few failures a user name, or a client address, is
    locked out for a while, and each further failure doubles the wait.

    TODO: the counts live in this process's memory, so each `serve` process counts on its
    own and a restart forgets them; share them through the database for scale-out.
    """

    failures_allowed: int = LOGIN_FAILURES_ALLOWED
    lockout_seconds: float = LOGIN_LOCKOUT_SECONDS
    lockout_max_seconds: float = LOGIN_LOCKOUT_MAX_SECONDS
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, _Failures] = field(default_factory=dict)

    def check(self, username: str, address: str) -> None:
        """Raise TooManyLoginFailures while either the name or the address is locked out."""
        now = self.clock()
        waits = [
            entry.locked_until - now
            for key in _keys(username, address)
            if (entry := self._failures.get(key)) is not None and entry.locked_until > now
        ]
        if waits:
            raise TooManyLoginFailures(max(waits))

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        for key in _keys(username, address):
            entry = self._failures.setdefault(key, _Failures())
            entry.count += 1
            beyond = entry.count - self.failures_allowed
            if beyond >= 0:
                wait = min(self.lockout_seconds * 2**beyond, self.lockout_max_seconds)
                entry.locked_until = now + wait
        logger.warning("console sign-in refused", extra={"address": address})

    def succeeded(self, username: str, address: str) -> None:
        for key in _keys(username, address):
            self._failures.pop(key, None)


def _keys(username: str, address: str) -> tuple[str, str]:
    return f"user:{username.strip().lower()}", f"address:{address}"


def _in_words(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
