"""Rate limits per API key, body size and body type."""

import httpx

from reflexblue.api.external.rate_limit import RateLimiter
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
