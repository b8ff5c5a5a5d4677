"""When to try a failed delivery again: the configured schedule, jittered, and Retry-After."""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

JITTER_FRACTION = 0.2
# A receiver may ask for a pause with Retry-After; a longer ask than this is capped so a
# misconfigured receiver cannot park its deliveries for days.
RETRY_AFTER_MAX_SECONDS = 3600.0
RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    schedule_seconds: tuple[int, ...]
    rng: random.Random = random.Random()  # noqa: S311, RUF009 - jitter spreads load; it is no secret

    def next_attempt_at(
        self,
        now: datetime,
        attempts_made: int,
        *,
        response_status: int | None = None,
        retry_after_seconds: float | None = None,
    ) -> datetime | None:
        """When to try again after `attempts_made` attempts have failed, or None to give up."""
        if attempts_made > len(self.schedule_seconds):
            return None
        base = self.schedule_seconds[attempts_made - 1]
        delay = base * (1 + self.rng.uniform(-JITTER_FRACTION, JITTER_FRACTION))
        asked = _honoured_retry_after(response_status, retry_after_seconds)
        if asked is not None:
            delay = max(delay, asked)
        return now + timedelta(seconds=delay)


def _honoured_retry_after(status: int | None, seconds: float | None) -> float | None:
    if status not in RETRY_AFTER_STATUSES or seconds is None or seconds < 0:
        return None
    return min(seconds, RETRY_AFTER_MAX_SECONDS)
