"""Per-key request rate limiting with token buckets."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per API key: `rate` requests per second on average, `burst` at once.

    TODO: the buckets live in this process's memory, so with several `serve` processes each
    allows the full rate; a shared store (the database or PostgreSQL itself) would make the
    limit global.
    """

    def __init__(
        self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def try_acquire(self, key: str) -> float | None:
        """Take one request's token. None if allowed, else seconds until one is available."""
        now = self._clock()
        bucket = self._buckets.setdefault(key, _Bucket(self._burst, now))
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / self._rate


def retry_after_header(wait_seconds: float) -> str:
    """Retry-After takes whole seconds; rounding up never invites a too-early retry."""
    return str(max(1, math.ceil(wait_seconds)))
