import random
from datetime import UTC, datetime, timedelta

import pytest

from reflexblue.webhooks.retry import JITTER_FRACTION, RETRY_AFTER_MAX_SECONDS, RetryPolicy

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SCHEDULE = (5, 300, 1800)


def _policy(seed: int = 1) -> RetryPolicy:
    return RetryPolicy(SCHEDULE, rng=random.Random(seed))


@pytest.mark.parametrize(("attempts_made", "base"), [(1, 5), (2, 300), (3, 1800)])
def test_each_retry_follows_the_schedule_within_the_jitter(attempts_made: int, base: int) -> None:
    delays = [
        (_policy(seed).next_attempt_at(NOW, attempts_made) - NOW).total_seconds()  # type: ignore[operator]
        for seed in range(200)
    ]

    assert min(delays) >= base * (1 - JITTER_FRACTION)
    assert max(delays) <= base * (1 + JITTER_FRACTION)
    assert len(set(delays)) > 100  # really jittered, not one fixed value


def test_after_the_last_scheduled_retry_the_delivery_gives_up() -> None:
    assert _policy().next_attempt_at(NOW, len(SCHEDULE) + 1) is None


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_on_429_and_503_postpones_the_retry(status: int) -> None:
    at = _policy().next_attempt_at(NOW, 1, response_status=status, retry_after_seconds=120)

    assert at == NOW + timedelta(seconds=120)


def test_retry_after_is_capped() -> None:
    at = _policy().next_attempt_at(NOW, 1, response_status=503, retry_after_seconds=10**9)

    assert at == NOW + timedelta(seconds=RETRY_AFTER_MAX_SECONDS)


def test_retry_after_on_other_statuses_is_ignored() -> None:
    at = _policy().next_attempt_at(NOW, 1, response_status=500, retry_after_seconds=120)

    assert at is not None
    assert at - NOW <= timedelta(seconds=5 * (1 + JITTER_FRACTION))


def test_retry_after_never_brings_a_retry_forward() -> None:
    at = _policy().next_attempt_at(NOW, 2, response_status=429, retry_after_seconds=1)

    assert at is not None
    assert at - NOW >= timedelta(seconds=300 * (1 - JITTER_FRACTION))
