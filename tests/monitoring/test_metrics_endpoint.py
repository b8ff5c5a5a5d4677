"""/metrics on the web application: the format, the route labels, the database's gauges."""

from datetime import timedelta

import httpx
from sqlalchemy import update

from reflexblue.core.database import transaction, utcnow
from reflexblue.core.runtime import Runtime
from reflexblue.webhooks.models import Delivery, Webhook
from reflexblue.webhooks.publishing import publish_event
from tests.delivery.conftest import Subscriber, subscribe
from tests.monitoring.conftest import PROMETHEUS_TEXT, parse_scrape, scrape

EXTERNAL_WEBHOOK_ROUTE = "/api/external/v1/webhooks/{id}"


async def _publish(runtime: Runtime, count: int) -> None:
    async with transaction(runtime.sessions) as session:
        for number in range(count):
            await publish_event(session, "webhook.test", {"n": number})


async def _make_due(runtime: Runtime, webhook_id: str, due_in: timedelta) -> None:
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.webhook_id == webhook_id)
            .values(next_attempt_at=utcnow() + due_in)
        )


async def _set_webhook(runtime: Runtime, subscriber: Subscriber, **values: object) -> None:
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(Webhook).where(Webhook.id == subscriber.webhook_id).values(**values)
        )


async def test_metrics_answer_prometheus_text_without_authentication(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == PROMETHEUS_TEXT
    assert parse_scrape(response.text).value("reflexblue_database_up") == 1


async def test_metrics_answer_openmetrics_when_the_scraper_asks_for_it(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})

    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


async def test_metrics_are_in_no_openapi_document(client: httpx.AsyncClient) -> None:
    documents = [
        await client.get("/api/external/v1/openapi.json"),
        await client.get("/api/management/openapi.json"),
    ]

    assert all(document.status_code == 200 for document in documents)
    assert not [doc for doc in documents if "/metrics" in doc.json()["paths"]]


async def test_requests_are_counted_by_route_template_not_by_path(
    client: httpx.AsyncClient,
) -> None:
    before = await scrape(client)
    first = await client.get("/api/external/v1/webhooks/wh_first")
    second = await client.get("/api/external/v1/webhooks/wh_second")
    after = await scrape(client)

    labels = {"route": EXTERNAL_WEBHOOK_ROUTE, "method": "GET", "status": "401"}
    moved = after.value("reflexblue_http_requests_total", **labels) - before.value_or_zero(
        "reflexblue_http_requests_total", **labels
    )
    assert (first.status_code, second.status_code) == (401, 401)
    assert moved == 2
    routes = after.label_values("reflexblue_http_requests_total", "route")
    assert not [route for route in routes if "wh_first" in route or "wh_second" in route]


async def test_unknown_paths_share_one_route_label(client: httpx.AsyncClient) -> None:
    await client.get("/no/such/page/1")
    await client.get("/api/management/no-such-thing/2")
    after = await scrape(client)

    routes = after.label_values("reflexblue_http_requests_total", "route")
    assert "unmatched" in routes
    assert not [route for route in routes if "no-such" in route or "no/such" in route]


async def test_request_durations_are_observed_per_route(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    after = await scrape(client)

    labels = {"route": "/healthz", "method": "GET"}
    assert after.value("reflexblue_http_request_duration_seconds_count", **labels) >= 1
    assert after.value("reflexblue_http_request_duration_seconds_sum", **labels) > 0


async def test_queue_depth_counts_due_pending_deliveries(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    due = await subscribe(runtime, "http://127.0.0.1:9/due", export_id="DUE")
    await _publish(runtime, 3)
    later = await subscribe(runtime, "http://127.0.0.1:9/later", export_id="LATER")
    await _publish(runtime, 2)
    await _make_due(runtime, later.webhook_id, timedelta(hours=1))

    after = await scrape(client)

    # The first webhook has all five events; the second, subscribed later, has two not yet due.
    assert due.webhook_id != later.webhook_id
    assert after.value("reflexblue_queue_depth") == 5


async def test_oldest_due_age_is_how_long_the_longest_waiting_delivery_has_waited(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    subscriber = await subscribe(runtime, "http://127.0.0.1:9/in")
    await _publish(runtime, 1)
    await _make_due(runtime, subscriber.webhook_id, -timedelta(minutes=10))

    age = (await scrape(client)).value("reflexblue_queue_oldest_due_age_seconds")

    assert 600 <= age < 3600


async def test_queue_gauges_are_zero_when_nothing_is_due(client: httpx.AsyncClient) -> None:
    after = await scrape(client)

    assert after.value("reflexblue_queue_depth") == 0
    assert after.value("reflexblue_queue_oldest_due_age_seconds") == 0


async def test_deliveries_of_a_disabled_webhook_are_not_in_the_queue(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    subscriber = await subscribe(runtime, "http://127.0.0.1:9/in")
    await _publish(runtime, 2)
    await _set_webhook(runtime, subscriber, enabled=False, disabled_reason="Gone.")

    assert (await scrape(client)).value("reflexblue_queue_depth") == 0


async def test_webhooks_are_counted_by_state(client: httpx.AsyncClient, runtime: Runtime) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/a", export_id="HEALTHY")
    failing = [await subscribe(runtime, f"http://127.0.0.1:9/{n}", export_id=f"F{n}") for n in "bc"]
    disabled = await subscribe(runtime, "http://127.0.0.1:9/d", export_id="DISABLED")
    for subscriber in failing:
        await _set_webhook(runtime, subscriber, failing_since=utcnow())
    await _set_webhook(runtime, disabled, enabled=False, failing_since=utcnow())

    after = await scrape(client)

    assert after.value("reflexblue_webhooks", state="healthy") == 1
    assert after.value("reflexblue_webhooks", state="failing") == 2
    assert after.value("reflexblue_webhooks", state="disabled") == 1
