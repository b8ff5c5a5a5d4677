"""Password hashing with argon2id, and the ceiling on how many checks run at once."""

import asyncio
import contextlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from prometheus_client import Counter

from reflexblue.core.errors import DomainError
from reflexblue.operations.metrics import REGISTRY

# How far below other threads the password checkers run (the nice value, 0 to 19).
CHECK_THREAD_NICENESS = 10
# RFC 9106's second recommended argon2id setting (64 MiB, 3 passes) in one lane: a check then
# keeps to one core, which is what the ceiling on checks at once counts. Lanes only let the
# server spend more cores per check; they add nothing to what a guess costs an attacker.
_hasher = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=1)

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


def _yield_cpu() -> None:
    """Lowers the priority of the calling thread, a password checker, so that the cores go
    to answering other requests first: a flood of sign-ins then slows sign-ins, not the
    rest. Linux only, where a thread has a priority of its own; elsewhere it does nothing."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CHECK_THREAD_NICENESS)


class PasswordChecksBusy(DomainError):
    title = "Too many sign-ins at once"

    def __init__(self) -> None:
        super().__init__("The server is busy checking other sign-ins. Try again in a moment.")


class PasswordChecks:
    """Runs password checks on worker threads, at most `at_once` at a time.

    Each argon2id check takes a core for a few hundred milliseconds by design. On the event loop it
    would stall every other request; unbounded, a flood of guesses would queue checks faster
    than the cores can make them. So a check beyond the ceiling is refused at once, not queued.
    """

    def __init__(self, at_once: int) -> None:
        self._free = at_once
        self._threads = ThreadPoolExecutor(
            max_workers=at_once, thread_name_prefix="password-check", initializer=_yield_cpu
        )

    @property
    def all_busy(self) -> bool:
        """Whether a check asked for now would be refused."""
        return self._free <= 0

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether the password fits the hash; None checks against a stand-in hash at the same
        cost, for a user name that does not exist. Raises PasswordChecksBusy at the ceiling."""
        if self.all_busy:
            raise PasswordChecksBusy()
        self._free -= 1
        try:
            PASSWORD_CHECKS.inc()
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._threads, verify_password, password_hash, password
            )
        finally:
            self._free += 1
