"""Recovery through the External API: the preview, the request, following it, and refusals."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from reflexblue.audit.models import AuditEvent
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.webhooks.models import Recovery
from tests.delivery.conftest import subscribe
from tests.operations.conftest import API, api_key_of, make_deliveries

RECEIVER = "http://127.0.0.1:9/hook"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_preview_counts_exactly_the_failed_deliveries_of_that_webhook_in_the_window(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    now = datetime.now(UTC)
    shop = await subscribe(runtime, RECEIVER, export_id="SHOP")
    other = await subscribe(runtime, RECEIVER, export_id="OTHER")
    await make_deliveries(runtime, shop.webhook_id, 7, now - timedelta(hours=2))
    await make_deliveries(runtime, shop.webhook_id, 3, now - timedelta(days=3))  # too old
    await make_deliveries(runtime, shop.webhook_id, 4, now - timedelta(hours=1), status="succeeded")
    await make_deliveries(runtime, shop.webhook_id, 2, now - timedelta(hours=1), status="pending")
    await make_deliveries(runtime, other.webhook_id, 5, now - timedelta(hours=1))
    headers = await api_key_of(runtime, shop.integration_id)

    since = _iso(now - timedelta(days=1))
    response = await client.get(
        f"{API}/webhooks/{shop.webhook_id}/recover", params={"since": since}, headers=headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["deliveries"] == 7
    assert response.json()["since"] == since


async def test_preview_honours_until(runtime: Runtime, client: httpx.AsyncClient) -> None:
    now = datetime.now(UTC)
    shop = await subscribe(runtime, RECEIVER)
    await make_deliveries(runtime, shop.webhook_id, 2, now - timedelta(hours=5))
    await make_deliveries(runtime, shop.webhook_id, 3, now - timedelta(hours=1))
    headers = await api_key_of(runtime, shop.integration_id)

    params = {"since": _iso(now - timedelta(hours=6)), "until": _iso(now - timedelta(hours=2))}
    response = await client.get(
        f"{API}/webhooks/{shop.webhook_id}/recover", params=params, headers=headers
    )

    assert response.json()["deliveries"] == 2


async def test_a_recovery_request_answers_202_with_a_resource_to_follow(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    now = datetime.now(UTC)
    shop = await subscribe(runtime, RECEIVER)
    await make_deliveries(runtime, shop.webhook_id, 4, now - timedelta(hours=1))
    headers = await api_key_of(runtime, shop.integration_id)

    answer = await client.post(
        f"{API}/webhooks/{shop.webhook_id}/recover",
        json={"since": _iso(now - timedelta(days=1))},
        headers=headers,
    )
    followed = await client.get(answer.headers["location"], headers=headers)

    assert answer.status_code == 202, answer.text
    recovery = answer.json()
    assert set(recovery) == {
        "id",
        "webhook_id",
        "since",
        "until",
        "status",
        "total",
        "requeued",
        "created_at",
        "finished_at",
    }
    assert recovery["id"].startswith("rcv_")
    assert (recovery["webhook_id"], recovery["status"], recovery["total"]) == (
        shop.webhook_id,
        "running",
        4,
    )
    assert answer.headers["location"] == f"{API}/recoveries/{recovery['id']}"
    assert followed.status_code == 200
    assert followed.json() == recovery


async def test_a_recovery_request_is_in_the_audit_log(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    shop = await subscribe(runtime, RECEIVER)
    headers = await api_key_of(runtime, shop.integration_id)

    answer = await client.post(
        f"{API}/webhooks/{shop.webhook_id}/recover",
        json={"since": _iso(datetime.now(UTC) - timedelta(hours=1))},
        headers=headers,
    )

    async with transaction(runtime.sessions) as session:
        entry = await session.scalar(
            select(AuditEvent).where(AuditEvent.action == "webhook.recovery_requested")
        )
    assert entry is not None
    assert entry.target_id == shop.webhook_id
    assert entry.changes["recovery"] == {"to": answer.json()["id"]}
    assert entry.actor == "api_key:SHOP/tests"


async def test_a_repeated_request_with_the_same_idempotency_key_starts_one_recovery(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    shop = await subscribe(runtime, RECEIVER)
    headers = {**await api_key_of(runtime, shop.integration_id), "Idempotency-Key": "k-1"}
    body = {"since": _iso(datetime.now(UTC) - timedelta(hours=1))}
    path = f"{API}/webhooks/{shop.webhook_id}/recover"

    first = await client.post(path, json=body, headers=headers)
    second = await client.post(path, json=body, headers=headers)

    async with transaction(runtime.sessions) as session:
        stored = await session.scalar(select(func.count()).select_from(Recovery))
    assert (first.status_code, second.status_code) == (202, 202)
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    assert stored == 1


def _later(hours: float) -> str:
    return _iso(datetime.now(UTC) + timedelta(hours=hours))


BAD_WINDOWS = {
    "since-missing": ({}, "since"),
    "since-not-a-time": ({"since": "yesterday"}, "since"),
    "since-without-zone": ({"since": "2026-12-01T08:00:00"}, "since"),
    "since-a-number": ({"since": 1764576000}, "since"),
    "since-in-the-future": ({"since": _later(1)}, "since"),
    "until-before-since": ({"since": _later(-2), "until": _later(-3)}, "until"),
    "until-not-a-time": ({"since": _later(-2), "until": "soon"}, "until"),
}


@pytest.mark.parametrize(("body", "field"), BAD_WINDOWS.values(), ids=BAD_WINDOWS.keys())
async def test_a_bad_window_is_refused_naming_the_field(
    runtime: Runtime, client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    shop = await subscribe(runtime, RECEIVER)
    headers = await api_key_of(runtime, shop.integration_id)
    path = f"{API}/webhooks/{shop.webhook_id}/recover"

    posted = await client.post(path, json=body, headers=headers)
    previewed = await client.get(path, params={k: str(v) for k, v in body.items()}, headers=headers)

    for response in (posted, previewed):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert field in [error["field"] for error in response.json()["errors"]]
    async with transaction(runtime.sessions) as session:
        assert await session.scalar(select(func.count()).select_from(Recovery)) == 0


async def test_an_unknown_field_in_the_request_is_refused(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    shop = await subscribe(runtime, RECEIVER)
    headers = await api_key_of(runtime, shop.integration_id)

    response = await client.post(
        f"{API}/webhooks/{shop.webhook_id}/recover",
        json={"since": _later(-1), "limit": 10},
        headers=headers,
    )

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["limit"]


async def test_another_integrations_webhook_and_recovery_are_not_found(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    shop = await subscribe(runtime, RECEIVER, export_id="SHOP")
    other = await subscribe(runtime, RECEIVER, export_id="OTHER")
    shop_key = await api_key_of(runtime, shop.integration_id)
    other_key = await api_key_of(runtime, other.integration_id)
    body = {"since": _later(-1)}
    started = await client.post(
        f"{API}/webhooks/{shop.webhook_id}/recover", json=body, headers=shop_key
    )

    path = f"{API}/webhooks/{shop.webhook_id}/recover"
    answers = [
        await client.get(path, params=body, headers=other_key),
        await client.post(path, json=body, headers=other_key),
        await client.get(f"{API}/recoveries/{started.json()['id']}", headers=other_key),
    ]

    assert [answer.status_code for answer in answers] == [404, 404, 404]
    async with transaction(runtime.sessions) as session:
        assert await session.scalar(select(func.count()).select_from(Recovery)) == 1


async def test_an_unknown_recovery_is_not_found(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    shop = await subscribe(runtime, RECEIVER)
    headers = await api_key_of(runtime, shop.integration_id)

    response = await client.get(f"{API}/recoveries/rcv_nothing", headers=headers)

    assert response.status_code == 404
