"""The worker's counters, scraped from /metrics after real deliveries to real receivers."""

from collections.abc import Awaitable, Callable

import httpx
from aiohttp import web
from sqlalchemy import func, select

from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.webhooks.models import Delivery
from reflexblue.webhooks.publishing import publish_event
from tests.delivery.conftest import eventually, running_worker, subscribe
from tests.monitoring.conftest import Scrape, scrape
from tests.support.receiver import running_receiver


async def _refuse(_: web.Request) -> web.StreamResponse:
    return web.Response(status=500, text="no")


async def _publish_to(runtime: Runtime, integration_id: str) -> None:
    async with transaction(runtime.sessions) as session:
        await publish_event(
            session, "webhook.test", {"hello": "metrics"}, integration_id=integration_id
        )


def _finished(runtime: Runtime, total: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        async with transaction(runtime.sessions) as session:
            query = select(func.count()).where(Delivery.status != "pending")
            return (await session.scalar(query)) == total

    return check


def _moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value_or_zero(name, **labels)


async def _deliver_one_success_and_one_failure(
    client: httpx.AsyncClient, runtime: Runtime
) -> tuple[Scrape, Scrape]:
    async with running_receiver() as good, running_receiver(_refuse) as bad:
        accepted = await subscribe(runtime, good.url, export_id="GOOD")
        refused = await subscribe(runtime, bad.url, export_id="BAD")
        before = await scrape(client)
        await _publish_to(runtime, accepted.integration_id)
        await _publish_to(runtime, refused.integration_id)
        async with running_worker(runtime):
            await eventually(_finished(runtime, 2), "both deliveries finished")
    return before, await scrape(client)


async def test_deliveries_are_counted_by_outcome(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    before, after = await _deliver_one_success_and_one_failure(client, runtime)

    # The schedule "0,0" gives the refused delivery three attempts: two retries, then failed.
    name = "reflexblue_deliveries_total"
    assert _moved(before, after, name, outcome="succeeded") == 1
    assert _moved(before, after, name, outcome="retrying") == 2
    assert _moved(before, after, name, outcome="failed") == 1


async def test_attempts_are_counted_by_result(client: httpx.AsyncClient, runtime: Runtime) -> None:
    before, after = await _deliver_one_success_and_one_failure(client, runtime)

    name = "reflexblue_delivery_attempts_total"
    assert _moved(before, after, name, result="2xx") == 1
    assert _moved(before, after, name, result="http_status") == 3
    assert _moved(before, after, name, result="timeout") == 0


async def test_attempt_durations_are_observed(client: httpx.AsyncClient, runtime: Runtime) -> None:
    before, after = await _deliver_one_success_and_one_failure(client, runtime)

    name = "reflexblue_delivery_attempt_duration_seconds"
    assert _moved(before, after, f"{name}_count") == 4
    assert _moved(before, after, f"{name}_sum") > 0
    assert _moved(before, after, f"{name}_bucket", le="+Inf") == 4


async def test_queue_depth_falls_to_zero_once_delivered(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    async with running_receiver() as receiver:
        subscriber = await subscribe(runtime, receiver.url)
        for _ in range(3):
            await _publish_to(runtime, subscriber.integration_id)
        queued = await scrape(client)
        async with running_worker(runtime):
            await eventually(_finished(runtime, 3), "every delivery finished")
        delivered = await scrape(client)

    assert queued.value("reflexblue_queue_depth") == 3
    assert delivered.value("reflexblue_queue_depth") == 0
