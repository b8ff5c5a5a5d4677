"""Password checks: argon2id on threads of their own, below other work, within a ceiling."""

import asyncio
import os
import sys
import threading

import pytest

from reflexblue.accounts.passwords import (
    PasswordChecks,
    PasswordChecksBusy,
    hash_password,
    needs_rehash,
)


def _checker_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("password-check")}


@pytest.mark.skipif(sys.platform != "linux", reason="threads have priorities of their own on Linux")
async def test_passwords_are_checked_on_threads_of_lower_priority() -> None:
    before = _checker_threads()

    assert await PasswordChecks(1).verify(hash_password("right"), "right")

    [checker] = _checker_threads() - before
    assert checker.native_id is not None
    main_niceness = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert os.getpriority(os.PRIO_PROCESS, checker.native_id) == min(19, main_niceness + 10)


async def test_a_check_beyond_the_ceiling_is_refused_at_once() -> None:
    checks = PasswordChecks(1)
    stored = hash_password("right")

    first = asyncio.create_task(checks.verify(stored, "wrong"))
    await asyncio.sleep(0)  # the first check has taken the one place
    with pytest.raises(PasswordChecksBusy):
        await checks.verify(stored, "right")

    assert await first is False
    assert await checks.verify(stored, "right") is True


def test_new_hashes_use_one_lane_and_older_settings_are_rehashed() -> None:
    stored = hash_password("a password")

    assert "p=1" in stored
    assert not needs_rehash(stored)
    assert needs_rehash(stored.replace("p=1", "p=4"))
