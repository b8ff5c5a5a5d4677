"""Password hashing with argon2id, and the ceiling on how many checks run at once."""

import asyncio
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from prometheus_client import Counter

from reflexblue.core.errors import DomainError
from reflexblue.operations.metrics import REGISTRY

_hasher = PasswordHasher()

PASSWORD_CHECKS = Counter(
    "reflexblue_password_checks_total",
    "Passwords checked against an argon2id hash by this process's console sign-ins, for known "
    "and unknown user names alike; refused sign-ins that never reach the hash are not counted.",
    registry=REGISTRY,
)


@cache
def _unknown_user_hash() -> str:
    """Checked against when the user does not exist, so that a wrong name costs as much time as
    a wrong password and response times do not tell which names exist. Made on first use, so
    that commands which check no password do not pay for it."""
    return _hasher.hash("no user has this password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    checked_hash = password_hash or _unknown_user_hash()
    try:
        return _hasher.verify(checked_hash, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


class PasswordChecksBusy(DomainError):
    title = "Too many sign-ins at once"

    def __init__(self) -> None:
        super().__init__("The server is busy checking other sign-ins. Try again in a moment.")


class PasswordChecks:
    """Runs password checks on worker threads, at most `at_once` at a time.

    Each argon2id check takes tens of milliseconds of a core by design. On the event loop it
    would stall every other request; unbounded, a flood of guesses would queue checks faster
    than the cores can make them. So a check beyond the ceiling is refused at once, not queued.
    """

    def __init__(self, at_once: int) -> None:
        self._free = at_once

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether the password fits the hash; None checks against a stand-in hash at the same
        cost, for a user name that does not exist. Raises PasswordChecksBusy at the ceiling."""
        if self._free <= 0:
            raise PasswordChecksBusy()
        self._free -= 1
        try:
            PASSWORD_CHECKS.inc()
            return await asyncio.to_thread(verify_password, password_hash, password)
        finally:
            self._free += 1
