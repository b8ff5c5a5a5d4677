"""Rate limits per API key, body size and body type."""

import httpx
import pytest

from reflexblue.api.external.rate_limit import FailedKeyLimit, RateLimiter, TooManyFailedKeys
from reflexblue.core.runtime import Runtime
from tests.external.conftest import API, PUBLIC_URL, Caller, client_with


async def test_requests_beyond_the_burst_get_429_with_retry_after(
    runtime: Runtime, caller: Caller
) -> None:
    async with client_with(runtime, external_rate_limit=0.01, external_rate_burst=2) as http:
        answers = [await http.get(f"{API}/integration", headers=caller.headers) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    refused = answers[2]
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["status"] == 429


async def test_rate_limit_is_per_key(
    runtime: Runtime, caller: Caller, other_caller: Caller
) -> None:
    async with client_with(runtime, external_rate_limit=0.01, external_rate_burst=1) as http:
        first = await http.get(f"{API}/integration", headers=caller.headers)
        limited = await http.get(f"{API}/integration", headers=caller.headers)
        other = await http.get(f"{API}/integration", headers=other_caller.headers)

    assert (first.status_code, limited.status_code, other.status_code) == (200, 429, 200)


def test_bucket_refills_at_the_configured_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=1, clock=lambda: now[0])

    assert limiter.try_acquire("key") is None
    assert limiter.try_acquire("key") == 0.5
    now[0] = 0.5
    assert limiter.try_acquire("key") is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _failed_key_limit(clock: FakeClock) -> FailedKeyLimit:
    return FailedKeyLimit(rate=0.5, burst=2, clock=clock)


def _fail(limit: FailedKeyLimit, key_hash: str, address: str = "10.0.0.1") -> None:
    limit.failed(limit.admit(key_hash, address))


def test_an_address_out_of_failed_keys_waits_until_its_bucket_refills() -> None:
    clock = FakeClock()
    limit = _failed_key_limit(clock)
    _fail(limit, "guess-1")
    _fail(limit, "guess-2")

    with pytest.raises(TooManyFailedKeys) as refusal:
        limit.admit("guess-3", "10.0.0.1")
    clock.now += 2.0

    assert refusal.value.wait_seconds == 2.0
    _fail(limit, "guess-3")


def test_a_key_that_proves_good_gives_its_token_back() -> None:
    limit = _failed_key_limit(FakeClock())
    for _ in range(5):
        limit.succeeded(limit.admit("good", "10.0.0.1"))
    _fail(limit, "guess-1")
    _fail(limit, "guess-2")

    with pytest.raises(TooManyFailedKeys):
        limit.admit("guess-3", "10.0.0.1")


def test_a_good_key_that_fails_later_is_no_longer_let_past_the_limit() -> None:
    limit = _failed_key_limit(FakeClock())
    limit.succeeded(limit.admit("revoked-later", "10.0.0.1"))
    _fail(limit, "guess-1")
    _fail(limit, "guess-2")
    known = limit.admit("revoked-later", "10.0.0.1")

    limit.failed(known)

    with pytest.raises(TooManyFailedKeys):
        limit.admit("revoked-later", "10.0.0.1")


def test_refusing_looks_at_the_bucket_without_taking_from_it() -> None:
    clock = FakeClock()
    limit = _failed_key_limit(clock)
    _fail(limit, "guess-1")

    assert limit.refusing("guess-2", "10.0.0.1") is None
    assert limit.refusing("guess-2", "10.0.0.1") is None
    _fail(limit, "guess-2")
    assert limit.refusing("guess-3", "10.0.0.1") == 2.0
    assert limit.refusing(None, "10.0.0.1") == 2.0
    clock.now += 2.0
    assert limit.refusing("guess-3", "10.0.0.1") is None


def test_refusing_lets_a_known_good_key_by_at_a_refused_address() -> None:
    limit = _failed_key_limit(FakeClock())
    limit.succeeded(limit.admit("good", "10.0.0.1"))
    _fail(limit, "guess-1")
    _fail(limit, "guess-2")

    assert limit.refusing("good", "10.0.0.1") is None
    assert limit.refusing("guess-3", "10.0.0.1") is not None


def test_failed_keys_of_one_address_leave_another_alone() -> None:
    limit = _failed_key_limit(FakeClock())
    _fail(limit, "guess-1")
    _fail(limit, "guess-2")

    assert limit.admit("guess-3", "10.0.0.2").charged


async def test_body_over_one_mebibyte_is_refused_with_413(api: httpx.AsyncClient) -> None:
    description = "x" * (1024 * 1024)

    response = await api.post(
        f"{API}/webhooks",
        json={"url": PUBLIC_URL, "event_types": ["*"], "description": description},
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert (await api.get(f"{API}/webhooks")).json()["items"] == []


async def test_body_that_is_not_json_is_refused_with_415(api: httpx.AsyncClient) -> None:
    response = await api.post(
        f"{API}/webhooks",
        content=b"url=https://example.com",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"


async def test_unknown_route_is_a_problem_404(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{API}/secrets")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
