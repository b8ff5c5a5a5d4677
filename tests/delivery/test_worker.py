import asyncio
import json

import pytest
from aiohttp import web
from sqlalchemy import literal_column, select, update
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.integrations.service import reveal_secret, rotate_secret
from reflexblue.webhooks.models import Attempt, Delivery, Event, Webhook
from reflexblue.webhooks.publishing import publish_event
from reflexblue.webhooks.worker import WorkerConfig
from tests.delivery.conftest import eventually, running_worker, subscribe
from tests.support.receiver import running_receiver


async def _publish(runtime: Runtime, data: dict[str, object] | None = None) -> str:
    async with transaction(runtime.sessions) as session:
        published = await publish_event(session, "webhook.test", data or {"n": 1})
    return published.id


async def _delivery_of(runtime: Runtime, event_id: str) -> Delivery:
    async with transaction(runtime.sessions) as session:
        found = await session.scalar(select(Delivery).where(Delivery.event_id == event_id))
        assert found is not None
        return found


async def _status_is(runtime: Runtime, event_id: str, status: str) -> bool:
    return (await _delivery_of(runtime, event_id)).status == status


async def test_a_published_event_arrives_signed_with_the_integration_secret(
    runtime: Runtime,
) -> None:
    async with running_receiver() as receiver:
        subscriber = await subscribe(runtime, f"{receiver.url}/hook")
        async with transaction(runtime.sessions) as session:
            secret = (
                await reveal_secret(session, runtime.box, subscriber.integration_id, CLI_ACTOR)
            ).secret

        async with running_worker(runtime):
            event_id = await _publish(runtime, {"order": 7})
            await eventually(lambda: _status_is(runtime, event_id, "succeeded"), "delivered")

    request = receiver.received[0]
    payload = Verifier(secret).verify(request.body, request.headers)
    assert payload["type"] == "webhook.test"
    assert payload["data"] == {"order": 7}
    assert request.headers["webhook-id"] == event_id
    assert request.headers["Content-Type"] == "application/json"


async def test_during_a_rotation_both_secrets_verify_the_request(runtime: Runtime) -> None:
    async with running_receiver() as receiver:
        subscriber = await subscribe(runtime, receiver.url)
        async with transaction(runtime.sessions) as session:
            rotated = await rotate_secret(
                session,
                runtime.box,
                subscriber.integration_id,
                CLI_ACTOR,
                grace_period_seconds=3600,
            )

        async with running_worker(runtime):
            event_id = await _publish(runtime)
            await eventually(lambda: _status_is(runtime, event_id, "succeeded"), "delivered")

    request = receiver.received[0]
    assert rotated.previous_secret is not None
    for secret in (rotated.secret, rotated.previous_secret):
        Verifier(secret).verify(request.body, request.headers)


async def test_a_failing_receiver_is_retried_on_the_schedule_then_the_delivery_fails(
    runtime: Runtime,
) -> None:
    async def fail(_: web.Request) -> web.StreamResponse:
        return web.Response(status=500, text="down")

    async with running_receiver(fail) as receiver:
        await subscribe(runtime, receiver.url)
        async with running_worker(runtime):
            event_id = await _publish(runtime)
            await eventually(lambda: _status_is(runtime, event_id, "failed"), "given up")

    delivery = await _delivery_of(runtime, event_id)
    async with transaction(runtime.sessions) as session:
        attempts = list(
            await session.scalars(select(Attempt).where(Attempt.delivery_id == delivery.id))
        )
    # The schedule "0,0" allows two retries after the first attempt.
    assert delivery.attempt_count == 3
    assert [(a.response_status, a.error, a.response_body) for a in attempts] == [
        (500, "http_status", "down")
    ] * 3
    assert {r.headers["webhook-id"] for r in receiver.received} == {event_id}


async def test_a_410_answer_disables_the_webhook_and_fails_the_delivery(runtime: Runtime) -> None:
    async def gone(_: web.Request) -> web.StreamResponse:
        return web.Response(status=410)

    async with running_receiver(gone) as receiver:
        subscriber = await subscribe(runtime, receiver.url)
        async with running_worker(runtime):
            event_id = await _publish(runtime)
            await eventually(lambda: _status_is(runtime, event_id, "failed"), "failed")

    async with transaction(runtime.sessions) as session:
        webhook = await session.get(Webhook, subscriber.webhook_id)
    assert webhook is not None
    assert webhook.enabled is False
    assert "410" in (webhook.disabled_reason or "")
    assert len(receiver.received) == 1


async def test_one_event_fans_out_to_every_subscribed_webhook_only(runtime: Runtime) -> None:
    async with running_receiver() as receiver:
        await subscribe(runtime, f"{receiver.url}/a", ["*"], export_id="A")
        await subscribe(runtime, f"{receiver.url}/b", ["webhook.test"], export_id="B")
        async with transaction(runtime.sessions) as session:
            from reflexblue.webhooks.event_types import create_event_type
            from reflexblue.webhooks.schemas import EventTypeCreate

            await create_event_type(
                session, EventTypeCreate(name="order.created", description=""), CLI_ACTOR
            )
        await subscribe(runtime, f"{receiver.url}/c", ["order.created"], export_id="C")

        async with running_worker(runtime):
            event_id = await _publish(runtime)
            async with transaction(runtime.sessions) as session:
                count = len(
                    list(
                        await session.scalars(select(Delivery).where(Delivery.event_id == event_id))
                    )
                )

            async def both_arrived() -> bool:
                return len(receiver.received) >= 2

            await eventually(both_arrived, "both subscribers received the event")

    assert count == 2
    assert sorted(r.path for r in receiver.received) == ["/a", "/b"]


async def test_a_slow_receiver_does_not_hold_up_another_webhook(runtime: Runtime) -> None:
    release = asyncio.Event()

    async def slow(_: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response()

    async with running_receiver(slow) as slow_receiver, running_receiver() as fast_receiver:
        await subscribe(runtime, slow_receiver.url, export_id="SLOW")
        config = WorkerConfig(poll_interval_seconds=0.2, per_webhook_in_flight=4)
        async with running_worker(runtime, config):
            for _ in range(10):
                await _publish(runtime)
            await subscribe(runtime, fast_receiver.url, export_id="FAST")
            event_id = await _publish(runtime)

            async def fast_delivered() -> bool:
                return any(r.headers["webhook-id"] == event_id for r in fast_receiver.received)

            await eventually(fast_delivered, "the fast receiver got its event")
            slow_in_flight = len(slow_receiver.received)
            release.set()

    assert slow_in_flight <= config.per_webhook_in_flight  # the bound, not all eleven at once


async def test_each_integration_receives_events_signed_with_its_own_secret_only(
    runtime: Runtime,
) -> None:
    async with running_receiver() as receiver:
        first = await subscribe(runtime, f"{receiver.url}/first", export_id="FIRST")
        second = await subscribe(runtime, f"{receiver.url}/second", export_id="SECOND")
        secrets = {}
        async with transaction(runtime.sessions) as session:
            for path, subscriber in (("/first", first), ("/second", second)):
                revealed = await reveal_secret(
                    session, runtime.box, subscriber.integration_id, CLI_ACTOR
                )
                secrets[path] = revealed.secret

        async with running_worker(runtime):
            event_id = await _publish(runtime)

            async def both_arrived() -> bool:
                return len(receiver.received) == 2

            await eventually(both_arrived, "both integrations received the event")

    for request in receiver.received:
        own, other = secrets[request.path], next(s for p, s in secrets.items() if p != request.path)
        Verifier(own).verify(request.body, request.headers)
        with pytest.raises(WebhookVerificationError):
            Verifier(other).verify(request.body, request.headers)
    assert {r.headers["webhook-id"] for r in receiver.received} == {event_id}


async def test_a_whole_batch_of_outcomes_is_written_without_waiting_out_the_interval(
    runtime: Runtime,
) -> None:
    # Given an interval no test would wait out, only a full batch can get the outcomes written.
    config = WorkerConfig(poll_interval_seconds=0.2, ack_batch_size=2, ack_interval_seconds=3600)
    async with running_receiver() as receiver:
        await subscribe(runtime, receiver.url)
        async with running_worker(runtime, config):
            first = await _publish(runtime)

            async def first_arrived() -> bool:
                return len(receiver.received) == 1

            await eventually(first_arrived, "the first event arrived")
            second = await _publish(runtime)

            await eventually(lambda: _status_is(runtime, first, "succeeded"), "first recorded")
            await eventually(lambda: _status_is(runtime, second, "succeeded"), "second recorded")


async def test_the_body_is_compact_json_carrying_the_data_as_published(runtime: Runtime) -> None:
    data: dict[str, object] = {"name": "Zoë ✓", "items": [1, 2.5, None], "nested": {"ok": True}}
    async with running_receiver() as receiver:
        await subscribe(runtime, receiver.url)
        async with running_worker(runtime):
            event_id = await _publish(runtime, data)
            await eventually(lambda: _status_is(runtime, event_id, "succeeded"), "delivered")

    body = receiver.received[0].body
    assert json.loads(body)["data"] == data
    assert b" " not in body.replace("Zoë ✓".encode(), b"")  # no padding between tokens
    assert "Zoë ✓".encode() in body  # characters as themselves, not escaped


async def test_data_stored_in_another_json_style_is_still_delivered_as_valid_json(
    runtime: Runtime,
) -> None:
    # Events written before JSON columns were stored compact hold spaced, escaped text.
    async with running_receiver() as receiver:
        await subscribe(runtime, receiver.url)
        event_id = await _publish(runtime, {"placeholder": 0})
        async with transaction(runtime.sessions) as session:
            await session.execute(
                update(Event)
                .where(Event.id == event_id)
                .values(data=literal_column(f"'{json.dumps({'é': [1, 2]})}'"))
            )
        async with running_worker(runtime):
            await eventually(lambda: _status_is(runtime, event_id, "succeeded"), "delivered")

    assert json.loads(receiver.received[0].body)["data"] == {"é": [1, 2]}
