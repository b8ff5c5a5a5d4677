"""Request rate limiting with token buckets: per API key, and per client address for keys that
fail, so that guessing keys costs the database almost nothing."""

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Buckets kept before the full ones (which mean the same as no bucket) are swept away.
MAX_TRACKED_BUCKETS = 10_000
# Hashes of keys that recently authenticated in this process; the oldest go first beyond it.
MAX_KNOWN_GOOD_KEYS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per key: `rate` requests per second on average, `burst` at once.

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
        bucket = self._refilled(key)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / self._rate

    def wait_seconds(self, key: str) -> float | None:
        """Seconds until `key` may make a request, None if it may now; takes no token."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return None
        tokens = self._tokens_at(bucket, self._clock())
        return None if tokens >= 1 else (1 - tokens) / self._rate

    def refund(self, key: str) -> None:
        """Give back a token taken by `try_acquire`, for a request that turned out to cost
        nothing the limit is there to protect."""
        bucket = self._refilled(key)
        bucket.tokens = min(self._burst, bucket.tokens + 1)

    def _refilled(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._forget_full_buckets(now)
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        bucket.tokens = self._tokens_at(bucket, now)
        bucket.updated = now
        return bucket

    def _tokens_at(self, bucket: _Bucket, now: float) -> float:
        return min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)

    def _forget_full_buckets(self, now: float) -> None:
        """Keeps memory bounded when callers come from ever new keys (client addresses, say):
        a bucket that has refilled is the same as none at all."""
        if len(self._buckets) < MAX_TRACKED_BUCKETS:
            return
        refill_seconds = self._burst / self._rate
        for key in [k for k, b in self._buckets.items() if now - b.updated >= refill_seconds]:
            del self._buckets[key]


class TooManyFailedKeys(Exception):
    """The client address presented too many keys that failed; `wait_seconds` until it may
    try an unknown key again."""

    def __init__(self, wait_seconds: float) -> None:
        super().__init__(wait_seconds)
        self.wait_seconds = wait_seconds


@dataclass(frozen=True)
class Admission:
    """A key let through to its lookup: whose it is, and whether it took a token to get there."""

    key_hash: str
    address: str
    charged: bool


class FailedKeyLimit:
    """Limits the keys that fail per client address, before any database lookup.

    Every key not known to be good takes a token from its client address's bucket before it is
    looked up, and gets it back if it proves good; an address whose bucket is empty is refused
    until it refills. Taken before the lookup rather than after a failure, so that many guesses
    in flight at once cannot all slip past an almost empty bucket.

    A key that authenticated in this process lately is known to be good, by its hash, and is
    looked up whatever its address's bucket holds: an integration behind the same address as a
    flood of guesses keeps working. A known key that then fails (revoked, expired) is forgotten.
    """

    def __init__(
        self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._addresses = RateLimiter(rate=rate, burst=burst, clock=clock)
        self._known_good: OrderedDict[str, None] = OrderedDict()
        self._refusing: set[str] = set()

    def admit(self, key_hash: str, address: str) -> Admission:
        """Before the lookup of a key: raise TooManyFailedKeys if its address may not try
        another unknown key now."""
        if key_hash in self._known_good:
            return Admission(key_hash, address, charged=False)
        wait_seconds = self._addresses.try_acquire(address)
        if wait_seconds is not None:
            self._note_refusal(address)
            raise TooManyFailedKeys(wait_seconds)
        self._refusing.discard(address)
        return Admission(key_hash, address, charged=True)

    def refusing(self, key_hash: str | None, address: str) -> float | None:
        """Whether a request from `address` would be refused before its key is looked at:
        seconds to wait if so, else None. `key_hash` is None for a request without a
        well-formed key. Takes no token, so the request it lets by still meets `admit`."""
        if key_hash is not None and key_hash in self._known_good:
            return None
        wait_seconds = self._addresses.wait_seconds(address)
        if wait_seconds is not None:
            self._note_refusal(address)
        return wait_seconds

    def succeeded(self, admission: Admission) -> None:
        if admission.charged:
            self._addresses.refund(admission.address)
        self._known_good[admission.key_hash] = None
        self._known_good.move_to_end(admission.key_hash)
        if len(self._known_good) > MAX_KNOWN_GOOD_KEYS:
            self._known_good.popitem(last=False)

    def failed(self, admission: Admission) -> None:
        self._known_good.pop(admission.key_hash, None)

    def _note_refusal(self, address: str) -> None:
        """One line when an address starts being refused, not one per refused request."""
        if address in self._refusing:
            return
        if len(self._refusing) >= MAX_TRACKED_BUCKETS:
            self._refusing.clear()
        self._refusing.add(address)
        logger.warning(
            "external API client address refused: too many failed API keys",
            extra={"address": address},
        )


def retry_after_header(wait_seconds: float) -> str:
    """Retry-After takes whole seconds; rounding up never invites a too-early retry."""
    return str(max(1, math.ceil(wait_seconds)))
