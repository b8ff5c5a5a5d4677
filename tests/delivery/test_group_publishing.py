"""Concurrent requests to `POST /api/management/events` share transactions, and each still gets
exactly its own answer."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.webhooks.group_publishing import GroupPublisher
from reflexblue.webhooks.models import Delivery, Event
from reflexblue.webhooks.publishing import NewEvent
from tests.delivery.conftest import subscribe

EVENTS_PATH = "/api/management/events"
CONCURRENT_REQUESTS = 40


@contextmanager
def counted_transactions(runtime: Runtime) -> Iterator[list[int]]:
    """How many transactions the database began while the block ran (one list item each)."""
    begun: list[int] = []

    def on_begin(_connection: Any) -> None:
        begun.append(1)

    event.listen(runtime.engine.sync_engine, "begin", on_begin)
    try:
        yield begun
    finally:
        event.remove(runtime.engine.sync_engine, "begin", on_begin)


async def _publish_together(client: httpx.AsyncClient, bodies: list[dict[str, Any]]) -> list[Any]:
    answers = await asyncio.gather(*(client.post(EVENTS_PATH, json=body) for body in bodies))
    return list(answers)


async def _stored_events(runtime: Runtime) -> dict[str, dict[str, Any]]:
    async with transaction(runtime.sessions) as session:
        rows = (await session.execute(select(Event.id, Event.data, Event.request_id))).all()
    return {row.id: {"data": row.data, "request_id": row.request_id} for row in rows}


async def _deliveries_by_event(runtime: Runtime) -> dict[str, int]:
    async with transaction(runtime.sessions) as session:
        event_ids = (await session.scalars(select(Delivery.event_id))).all()
    counts: dict[str, int] = {}
    for event_id in event_ids:
        counts[event_id] = counts.get(event_id, 0) + 1
    return counts


async def test_concurrent_publications_are_each_stored_once_and_answered_with_their_own_event(
    runtime: Runtime, admin_client: httpx.AsyncClient
) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/a", export_id="A")
    bodies = [{"type": "webhook.test", "data": {"n": n}} for n in range(CONCURRENT_REQUESTS)]

    answers = await _publish_together(admin_client, bodies)

    assert [answer.status_code for answer in answers] == [202] * CONCURRENT_REQUESTS
    ids = [answer.json()["id"] for answer in answers]
    stored = await _stored_events(runtime)
    assert sorted(ids) == sorted(stored)
    # Each answer names the event made of its own request's data.
    assert [stored[event_id]["data"] for event_id in ids] == [body["data"] for body in bodies]
    assert await _deliveries_by_event(runtime) == dict.fromkeys(ids, 1)


async def test_events_queued_together_are_written_in_one_transaction(runtime: Runtime) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/a", export_id="A")
    publisher = GroupPublisher(runtime.sessions, asyncio.Event())
    events = [NewEvent("webhook.test", {"n": n}) for n in range(CONCURRENT_REQUESTS)]

    with counted_transactions(runtime) as begun:
        published = await asyncio.gather(*(publisher.publish(each) for each in events))

    assert len(begun) == 1
    assert len({each.id for each in published}) == CONCURRENT_REQUESTS
    assert len(await _stored_events(runtime)) == CONCURRENT_REQUESTS


async def test_deliveries_committed_together_ring_the_workers_doorbell(runtime: Runtime) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/a", export_id="A")
    doorbell = asyncio.Event()
    publisher = GroupPublisher(runtime.sessions, doorbell)

    await publisher.publish(NewEvent("webhook.test", {"n": 1}))

    assert doorbell.is_set()


async def test_a_refused_event_among_concurrent_ones_is_refused_alone(
    runtime: Runtime, admin_client: httpx.AsyncClient
) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/a", export_id="A")
    bodies: list[dict[str, Any]] = [
        {"type": "webhook.test", "data": {"n": 1}},
        {"type": "no.such.type", "data": {"n": 2}},
        {"type": "webhook.test", "data": {"n": 3}, "integration": "A"},
        {"type": "webhook.test", "data": {"n": 4}, "integration": "NOBODY"},
        {"type": "webhook.test", "data": {"n": 5}},
    ]

    answers = await _publish_together(admin_client, bodies)

    assert [answer.status_code for answer in answers] == [202, 422, 202, 422, 202]
    assert answers[1].json()["errors"][0]["field"] == "type"
    assert answers[3].json()["errors"][0]["field"] == "integration"
    stored = await _stored_events(runtime)
    assert sorted(each["data"]["n"] for each in stored.values()) == [1, 3, 5]


async def test_each_event_keeps_the_request_id_of_the_request_that_published_it(
    runtime: Runtime, admin_client: httpx.AsyncClient
) -> None:
    async def publish(number: int) -> httpx.Response:
        return await admin_client.post(
            EVENTS_PATH,
            json={"type": "webhook.test", "data": {"n": number}},
            headers={"X-Request-Id": f"request-{number}"},
        )

    answers = await asyncio.gather(*(publish(number) for number in range(10)))

    stored = await _stored_events(runtime)
    for number, answer in enumerate(answers):
        assert stored[answer.json()["id"]]["request_id"] == f"request-{number}"


async def test_the_same_idempotency_key_twice_at_once_publishes_one_event(
    runtime: Runtime, admin_client: httpx.AsyncClient
) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/a", export_id="A")
    body = {"type": "webhook.test", "data": {"n": 1}, "idempotency_key": "order-1"}

    first, second = await _publish_together(admin_client, [body, body])

    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert {
        first.headers.get("idempotent-replayed"),
        second.headers.get("idempotent-replayed"),
    } == {
        None,
        "true",
    }
    assert len(await _stored_events(runtime)) == 1
    assert await _deliveries_by_event(runtime) == {first.json()["id"]: 1}


async def test_a_failed_shared_transaction_fails_every_event_in_it_and_stores_none(
    runtime: Runtime,
) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/a", export_id="A")
    publisher = GroupPublisher(runtime.sessions, asyncio.Event())
    refused_inserts: list[str] = []
    driver_error = runtime.engine.dialect.loaded_dbapi.OperationalError

    def refuse_event_inserts(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # As the database driver would report a write it could not make.
        if statement.startswith("INSERT INTO events"):
            refused_inserts.append(statement)
            raise driver_error("disk I/O error")

    engine = runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", refuse_event_inserts)
    try:
        events = [NewEvent("webhook.test", {"n": n}) for n in range(5)]
        outcomes = await asyncio.gather(
            *(publisher.publish(each) for each in events), return_exceptions=True
        )
    finally:
        event.remove(engine, "before_cursor_execute", refuse_event_inserts)

    assert [type(outcome) for outcome in outcomes] == [OperationalError] * 5
    assert len(refused_inserts) == 1
    assert await _stored_events(runtime) == {}
    assert await _deliveries_by_event(runtime) == {}


@pytest.mark.parametrize("count", [1, 3])
async def test_publications_after_a_quiet_moment_are_written_at_once(
    runtime: Runtime, admin_client: httpx.AsyncClient, count: int
) -> None:
    for round_number in range(2):
        bodies = [{"type": "webhook.test", "data": {"round": round_number}}] * count
        answers = await _publish_together(admin_client, bodies)
        assert [answer.status_code for answer in answers] == [202] * count

    assert len(await _stored_events(runtime)) == 2 * count
