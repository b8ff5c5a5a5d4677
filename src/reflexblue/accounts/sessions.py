"""Console sessions: a signed-in browser, and the brake on guessing passwords.

The browser holds a random token in a cookie; the database holds only its hash, so a copy of
the database lets no one sign in. Every sign-in makes a new token (no session fixation), and a
session ends when it is idle too long, when it reaches its absolute age, or on sign-out.
"""

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reflexblue.accounts.models import ConsoleSession, User
from reflexblue.accounts.passwords import PasswordChecks, hash_password, needs_rehash
from reflexblue.accounts.service import (
    WATCHED_USERS,
    WRONG_CREDENTIALS,
    authenticate_password,
    user_named,
)
from reflexblue.core.credential_cache import CredentialCache, Watched
from reflexblue.core.crypto import hash_token, new_token
from reflexblue.core.database import transaction, utcnow
from reflexblue.core.errors import DomainError, Unauthenticated

logger = logging.getLogger(__name__)

SESSION_TOKEN_PREFIX = "rbs_"  # noqa: S105 - a public prefix, not a secret
CSRF_TOKEN_BYTES = 32
IDLE_TIMEOUT = timedelta(hours=2)
ABSOLUTE_LIFETIME = timedelta(hours=12)
# Sliding the idle expiry on every request would turn every page view into a write.
_SLIDE_RESOLUTION = timedelta(minutes=1)
# How long this process takes a session it found alive on trust. A session ended (or its user
# changed or deleted) by this process ends at once; by another process (a sign-out served by
# another `serve`), only once this many seconds have passed.
SESSION_TRUST_SECONDS = 5.0

LOGIN_FAILURES_ALLOWED = 5
LOGIN_LOCKOUT_SECONDS = 30.0
LOGIN_LOCKOUT_MAX_SECONDS = 15 * 60.0
# The wait asked of a sign-in refused because the last allowed ones are still being checked.
IN_FLIGHT_RETRY_SECONDS = 1.0
# Entries kept before those whose failures are long past are swept away.
MAX_TRACKED_LOGIN_KEYS = 10_000


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
    """Check the password and open a new session; returns the cookie token and the session.
    The check runs here, in the transaction: for commands and tests, not for the console."""
    user = await authenticate_password(session, username, password)
    return await _open_session(session, user)


async def sign_in_checked(
    sessions: async_sessionmaker[AsyncSession],
    checks: PasswordChecks,
    username: str,
    password: str,
    *,
    replacing: str | None = None,
) -> str:
    """The console's sign-in; returns the new session's cookie token, and ends the session
    whose token is `replacing`. The password is checked between two short transactions, on a
    worker thread, so that its cost holds neither the event loop nor the database.

    A user name that does not exist is checked against a stand-in hash, the same way."""
    async with transaction(sessions) as session:
        user = await user_named(session, username)
        user_id, stored_hash = (user.id, user.password_hash) if user else (None, None)
    if not await checks.verify(stored_hash, password) or stored_hash is None:
        raise Unauthenticated(WRONG_CREDENTIALS)
    rehashed = (
        await asyncio.to_thread(hash_password, password) if needs_rehash(stored_hash) else None
    )

    async with transaction(sessions) as session:
        current = await session.get(User, user_id)
        if current is None or current.password_hash != stored_hash:
            raise Unauthenticated(WRONG_CREDENTIALS)  # deleted or changed while it was checked
        if rehashed is not None:
            current.password_hash = rehashed
        await sign_out(session, replacing)
        token, _ = await _open_session(session, current)
    return token


async def _open_session(session: AsyncSession, user: User) -> tuple[str, SignedIn]:
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


@dataclass(frozen=True)
class _LiveSession:
    signed_in: SignedIn
    # The idle expiry as last read, or the absolute end if that comes first.
    ends_at: datetime


live_sessions: CredentialCache[_LiveSession] = CredentialCache(SESSION_TRUST_SECONDS)


async def resume_trusted(
    sessions: async_sessionmaker[AsyncSession], token: str | None
) -> SignedIn | None:
    """The session as `resume` finds it; one found alive in the last few seconds is taken
    from this process's cache, without a transaction. Its idle expiry then slides at the next
    lookup, a few seconds later, which the minute of `_SLIDE_RESOLUTION` already allows for."""
    if not token or not token.startswith(SESSION_TOKEN_PREFIX):
        return None
    token_hash = hash_token(token)
    known = live_sessions.get(token_hash)
    if known is not None and utcnow() < known.ends_at:
        return known.signed_in
    generation = live_sessions.generation()
    async with transaction(sessions) as session:
        live = await _live_session(session, token_hash)
    if live is None:
        return None
    live_sessions.put(token_hash, live, generation, depends_on=[live.signed_in.user.id])
    return live.signed_in


async def resume(session: AsyncSession, token: str | None) -> SignedIn | None:
    """The session a cookie token belongs to, if it is still alive; it slides the idle expiry."""
    if not token or not token.startswith(SESSION_TOKEN_PREFIX):
        return None
    live = await _live_session(session, hash_token(token))
    return live.signed_in if live else None


async def _live_session(session: AsyncSession, token_hash: str) -> _LiveSession | None:
    row = await session.scalar(
        select(ConsoleSession).where(ConsoleSession.token_hash == token_hash)
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
    return _LiveSession(SignedIn(user, row.csrf_token), min(row.expires_at, ends_at))


async def sign_out(session: AsyncSession, token: str | None) -> None:
    if not token:
        return
    token_hash = hash_token(token)
    await session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == token_hash))
    live_sessions.forget_in(session.sync_session, {token_hash})


async def prune_expired_sessions(session: AsyncSession) -> int:
    """Remove sessions past their expiry; returns how many went."""
    result = await session.execute(
        delete(ConsoleSession).where(ConsoleSession.expires_at <= utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


# A cached session is forgotten when it is deleted, or its user deleted or given another role.
live_sessions.forget_on_change(Watched(ConsoleSession, "token_hash"), WATCHED_USERS)


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0
    in_flight: int = 0  # admitted sign-ins whose password is still being checked
    last_failed: float = 0.0


@dataclass
class LoginThrottle:
    """Slows password guessing: after a few failures a user name, or a client address, is
    locked out for a while, and each further failure doubles the wait.

    Sign-ins still being checked count against the allowance, so that a burst of guesses sent
    at once gets no more password checks than the same guesses sent one after another.

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

    def address_refused_for(self, address: str) -> float | None:
        """Seconds a sign-in from the client address must wait, None if it need not: while
        the address is locked out, or has as many sign-ins being checked as it may, any
        sign-in from it is refused whatever the user name, so it can be refused unread."""
        key = _address_key(address)
        entry = self._failures.get(key)
        if entry is None:
            return None
        wait = entry.locked_until - self.clock()
        if wait > 0:
            return wait
        return IN_FLIGHT_RETRY_SECONDS if self._no_more_in_flight(key) else None

    def admit(self, username: str, address: str) -> None:
        """Before a password check: raise TooManyLoginFailures if it may not be made now, else
        count it in flight until `failed`, `succeeded` or `abandoned` says how it ended."""
        self.check(username, address)
        keys = _keys(username, address)
        if any(self._no_more_in_flight(key) for key in keys):
            raise TooManyLoginFailures(IN_FLIGHT_RETRY_SECONDS)
        self._forget_old_failures()
        for key in keys:
            self._failures.setdefault(key, _Failures()).in_flight += 1

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        for key in _keys(username, address):
            entry = self._failures.setdefault(key, _Failures())
            entry.in_flight = max(0, entry.in_flight - 1)
            entry.count += 1
            entry.last_failed = now
            beyond = entry.count - self.failures_allowed
            if beyond >= 0:
                wait = min(self.lockout_seconds * 2**beyond, self.lockout_max_seconds)
                entry.locked_until = now + wait

    def succeeded(self, username: str, address: str) -> None:
        for key in _keys(username, address):
            self._failures.pop(key, None)

    def abandoned(self, username: str, address: str) -> None:
        """An admitted sign-in that ended without a verdict on its password."""
        for key in _keys(username, address):
            entry = self._failures.get(key)
            if entry is None:
                continue
            entry.in_flight = max(0, entry.in_flight - 1)
            if entry.in_flight == 0 and entry.count == 0:
                del self._failures[key]

    def _no_more_in_flight(self, key: str) -> bool:
        entry = self._failures.get(key)
        if entry is None:
            return False
        # Past a lockout that has ended, one try at a time until one succeeds.
        room = max(1, self.failures_allowed - entry.count)
        return entry.in_flight >= room

    def _forget_old_failures(self) -> None:
        """Keeps memory bounded under guesses from ever new names and addresses: failures
        older than the longest lockout are forgotten once there are many entries."""
        if len(self._failures) < MAX_TRACKED_LOGIN_KEYS:
            return
        now = self.clock()
        horizon = now - self.lockout_max_seconds
        stale = [
            key
            for key, entry in self._failures.items()
            if not entry.in_flight and entry.locked_until <= now and entry.last_failed < horizon
        ]
        for key in stale:
            del self._failures[key]


def _keys(username: str, address: str) -> tuple[str, str]:
    return f"user:{username.strip().lower()}", _address_key(address)


def _address_key(address: str) -> str:
    return f"address:{address}"


def _in_words(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
