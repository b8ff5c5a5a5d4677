"""Deliveries through the External API: test events, lists, detail with attempts, retry."""

from datetime import timedelta

import httpx
from sqlalchemy import select, update

from reflexblue.core.database import transaction, utcnow
from reflexblue.core.runtime import Runtime
from reflexblue.webhooks.models import Attempt, Delivery, DeliveryStatus, Event
from tests.external.conftest import API, create_webhook


async def _test_delivery(api: httpx.AsyncClient) -> tuple[str, dict[str, object]]:
    webhook = await create_webhook(api)
    response = await api.post(f"{API}/webhooks/{webhook['id']}/test")
    assert response.status_code == 202, response.text
    return str(webhook["id"]), response.json()


async def _set_status(runtime: Runtime, delivery_id: str, status: DeliveryStatus) -> None:
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(Delivery).where(Delivery.id == delivery_id).values(status=status.value)
        )


async def test_test_event_queues_one_pending_delivery(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    webhook_id, delivery = await _test_delivery(api)

    assert set(delivery) == {
        "id",
        "event_id",
        "event_type",
        "webhook_id",
        "status",
        "attempt_count",
        "next_attempt_at",
        "created_at",
    }
    assert (delivery["event_type"], delivery["webhook_id"]) == ("webhook.test", webhook_id)
    assert (delivery["status"], delivery["attempt_count"]) == ("pending", 0)
    async with transaction(runtime.sessions) as session:
        event = await session.get(Event, delivery["event_id"])
    assert event is not None
    assert event.type == "webhook.test"


async def test_new_webhook_has_no_deliveries(api: httpx.AsyncClient) -> None:
    webhook = await create_webhook(api)

    response = await api.get(f"{API}/webhooks/{webhook['id']}/deliveries")

    assert response.json() == {"items": [], "next_cursor": None}


async def test_deliveries_are_listed_newest_first_and_filtered_by_status(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    webhook_id, first = await _test_delivery(api)
    second = (await api.post(f"{API}/webhooks/{webhook_id}/test")).json()
    await _set_status(runtime, str(first["id"]), DeliveryStatus.FAILED)
    path = f"{API}/webhooks/{webhook_id}/deliveries"

    every = (await api.get(path)).json()["items"]
    failed = (await api.get(path, params={"status": "failed"})).json()["items"]
    paged = (await api.get(path, params={"limit": 1})).json()

    assert [item["id"] for item in every] == [second["id"], first["id"]]
    assert [item["id"] for item in failed] == [first["id"]]
    assert [item["id"] for item in paged["items"]] == [second["id"]]
    rest = (await api.get(path, params={"limit": 1, "cursor": paged["next_cursor"]})).json()
    assert [item["id"] for item in rest["items"]] == [first["id"]]


async def test_unknown_status_filter_is_refused(api: httpx.AsyncClient) -> None:
    webhook = await create_webhook(api)

    response = await api.get(
        f"{API}/webhooks/{webhook['id']}/deliveries", params={"status": "lost"}
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "status"


async def test_delivery_detail_lists_its_attempts_in_order(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, delivery = await _test_delivery(api)
    now = utcnow()
    async with transaction(runtime.sessions) as session:
        session.add_all(
            [
                Attempt(
                    delivery_id=delivery["id"],
                    attempted_at=now,
                    duration_ms=15,
                    response_status=503,
                    response_body="busy",
                    error="http_status",
                ),
                Attempt(
                    delivery_id=delivery["id"],
                    attempted_at=now - timedelta(minutes=5),
                    duration_ms=15000,
                    response_status=None,
                    response_body="",
                    error="timeout",
                ),
            ]
        )

    detail = (await api.get(f"{API}/deliveries/{delivery['id']}")).json()

    assert [attempt["error"] for attempt in detail["attempts"]] == ["timeout", "http_status"]
    assert detail["attempts"][1] == {
        "attempted_at": detail["attempts"][1]["attempted_at"],
        "duration_ms": 15,
        "response_status": 503,
        "response_body": "busy",
        "error": "http_status",
    }


async def test_failed_delivery_is_retried_now(api: httpx.AsyncClient, runtime: Runtime) -> None:
    _, delivery = await _test_delivery(api)
    await _set_status(runtime, str(delivery["id"]), DeliveryStatus.FAILED)

    response = await api.post(f"{API}/deliveries/{delivery['id']}/retry")

    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    async with transaction(runtime.sessions) as session:
        row = await session.scalar(select(Delivery).where(Delivery.id == delivery["id"]))
    assert row is not None
    assert row.next_attempt_at is not None
    assert row.next_attempt_at <= utcnow()


async def test_delivery_that_has_not_failed_cannot_be_retried(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, delivery = await _test_delivery(api)
    pending = await api.post(f"{API}/deliveries/{delivery['id']}/retry")
    await _set_status(runtime, str(delivery["id"]), DeliveryStatus.SUCCEEDED)
    succeeded = await api.post(f"{API}/deliveries/{delivery['id']}/retry")

    assert (pending.status_code, succeeded.status_code) == (409, 409)
    assert "failed" in succeeded.json()["detail"]


async def test_unknown_delivery_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{API}/deliveries/dlv_nothing")

    assert response.status_code == 404


async def test_test_event_for_an_unknown_webhook_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post(f"{API}/webhooks/wh_nothing/test")

    assert response.status_code == 404
