"""Retries, Retry-After, disabled webhooks and blocked targets, against real receivers."""

import asyncio
import contextlib
import dataclasses
from datetime import timedelta

import httpx
from aiohttp import web
from sqlalchemy import Select, select

from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.integrations.api_keys import ApiKeyCreate, create_api_key
from reflexblue.webhooks.models import Attempt, Delivery, Webhook
from reflexblue.webhooks.publishing import publish_event
from reflexblue.webhooks.schemas import WebhookUpdate
from reflexblue.webhooks.service import update_webhook
from tests.delivery.conftest import Subscriber, eventually, running_worker, subscribe
from tests.support.receiver import running_receiver


async def _publish(runtime: Runtime, integration_id: str | None = None) -> str:
    async with transaction(runtime.sessions) as session:
        event = await publish_event(session, "webhook.test", {}, integration_id=integration_id)
    return event.id


async def _delivery(runtime: Runtime, event_id: str) -> Delivery:
    async with transaction(runtime.sessions) as session:
        found = await session.scalar(select(Delivery).where(Delivery.event_id == event_id))
    assert found is not None
    return found


async def _attempts(runtime: Runtime, delivery_id: str) -> list[Attempt]:
    async with transaction(runtime.sessions) as session:
        query = select(Attempt).where(Attempt.delivery_id == delivery_id)
        return sorted(await session.scalars(query), key=lambda a: a.attempted_at)


def _status_is(runtime: Runtime, event_id: str, status: str):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return (await _delivery(runtime, event_id)).status == status

    return check


async def _set_enabled(runtime: Runtime, subscriber: Subscriber, enabled: bool) -> None:
    async with transaction(runtime.sessions) as session:
        await update_webhook(
            session,
            subscriber.integration_id,
            subscriber.webhook_id,
            WebhookUpdate(enabled=enabled),
            CLI_ACTOR,
        )


async def test_a_failure_followed_by_success_ends_succeeded_with_both_attempts(
    runtime: Runtime,
) -> None:
    answers = iter([500])

    async def flaky(_: web.Request) -> web.StreamResponse:
        return web.Response(status=next(answers, 200))

    async with running_receiver(flaky) as receiver:
        await subscribe(runtime, receiver.url)
        async with running_worker(runtime):
            event_id = await _publish(runtime)
            await eventually(_status_is(runtime, event_id, "succeeded"), "delivered")

    delivery = await _delivery(runtime, event_id)
    attempts = await _attempts(runtime, delivery.id)
    assert delivery.attempt_count == 2
    assert [a.response_status for a in attempts] == [500, 200]
    assert [r.headers["webhook-id"] for r in receiver.received] == [event_id, event_id]


async def test_retry_after_postpones_the_next_attempt(runtime: Runtime) -> None:
    answers = iter([web.Response(status=429, headers={"Retry-After": "1"})])

    async def busy_once(_: web.Request) -> web.StreamResponse:
        return next(answers, web.Response(status=200))

    async with running_receiver(busy_once) as receiver:
        await subscribe(runtime, receiver.url)
        async with running_worker(runtime):
            event_id = await _publish(runtime)
            await eventually(_status_is(runtime, event_id, "succeeded"), "delivered")

    first, second = await _attempts(runtime, (await _delivery(runtime, event_id)).id)
    # The schedule says "retry at once"; the receiver asked for one second.
    assert (second.attempted_at - first.attempted_at).total_seconds() >= 1.0


async def test_a_disabled_webhook_keeps_its_deliveries_until_it_is_enabled_again(
    runtime: Runtime,
) -> None:
    async with running_receiver() as receiver:
        subscriber = await subscribe(runtime, receiver.url)
        event_id = await _publish(runtime)
        await _set_enabled(runtime, subscriber, False)

        async with running_worker(runtime) as worker:
            worker.wake()
            await asyncio.sleep(0.5)  # give a wrongly eager worker the chance to send
            held_back = len(receiver.received)
            await _set_enabled(runtime, subscriber, True)
            worker.wake()
            await eventually(_status_is(runtime, event_id, "succeeded"), "delivered")

    assert held_back == 0
    assert len(receiver.received) == 1


async def test_an_event_for_one_integration_reaches_only_its_webhooks(runtime: Runtime) -> None:
    async with running_receiver() as receiver:
        target = await subscribe(runtime, f"{receiver.url}/target", export_id="TARGET")
        await subscribe(runtime, f"{receiver.url}/other", export_id="OTHER")
        async with running_worker(runtime):
            event_id = await _publish(runtime, integration_id=target.integration_id)
            await eventually(_status_is(runtime, event_id, "succeeded"), "delivered")

    assert [r.path for r in receiver.received] == ["/target"]


async def test_a_private_target_is_refused_when_sending(runtime: Runtime) -> None:
    strict = dataclasses.replace(
        runtime,
        settings=runtime.settings.model_copy(update={"allow_private_targets": False}),
    )
    async with running_receiver() as receiver:
        await subscribe(runtime, receiver.url)
        async with running_worker(strict):
            event_id = await _publish(runtime)
            await eventually(_status_is(runtime, event_id, "failed"), "given up")

    attempts = await _attempts(runtime, (await _delivery(runtime, event_id)).id)
    assert {a.error for a in attempts} == {"blocked_target"}
    assert receiver.received == []


async def test_a_trickling_receiver_does_not_hold_up_another(runtime: Runtime) -> None:
    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for _ in range(100):
                await response.write(b".")
                await asyncio.sleep(0.1)
        return response

    async with running_receiver(trickle) as slow, running_receiver() as fast:
        await subscribe(runtime, slow.url, export_id="SLOW")
        await subscribe(runtime, fast.url, export_id="FAST")
        async with running_worker(runtime):
            event_id = await _publish(runtime)

            async def fast_has_it() -> bool:
                return len(fast.received) == 1

            await eventually(fast_has_it, "the healthy receiver got the event")
            slow_finished_first = await _slow_attempt_done(runtime, event_id, slow.url)
            await eventually(
                lambda: _slow_attempt_done(runtime, event_id, slow.url), "the slow one ended"
            )

    assert slow_finished_first is False
    async with transaction(runtime.sessions) as session:
        slow_attempt = await session.scalar(_attempts_to(event_id, slow.url))
    assert slow_attempt is not None
    # Cut off by the two-second timeout, keeping what had arrived.
    assert slow_attempt.duration_ms >= 1900
    assert 0 < len(slow_attempt.response_body) < 100


async def test_a_huge_answer_is_cut_off_after_4_kib_and_never_read_to_the_end(
    runtime: Runtime,
) -> None:
    hundred_mib = 100 * 1024 * 1024
    written = 0
    connection_dropped = asyncio.Event()

    async def flood(request: web.Request) -> web.StreamResponse:
        nonlocal written
        response = web.StreamResponse(headers={"Content-Length": str(hundred_mib)})
        await response.prepare(request)
        chunk = b"x" * (1024 * 1024)
        try:
            while written < hundred_mib:
                await response.write(chunk)
                written += len(chunk)
        except ConnectionError:
            connection_dropped.set()
        return response

    async with running_receiver(flood) as receiver:
        await subscribe(runtime, receiver.url, export_id="FLOOD")
        async with running_worker(runtime):
            event_id = await _publish(runtime)
            await eventually(_status_is(runtime, event_id, "succeeded"), "the delivery succeeded")
            await asyncio.wait_for(connection_dropped.wait(), timeout=10)

    attempts = await _attempts(runtime, (await _delivery(runtime, event_id)).id)
    assert [(a.response_status, len(a.response_body)) for a in attempts] == [(200, 4096)]
    # The worker hung up: socket buffers took a few MiB at most, never the whole answer.
    assert written < hundred_mib // 4


def _attempts_to(event_id: str, url: str) -> Select[Attempt]:
    return (
        select(Attempt)
        .join(Delivery, Delivery.id == Attempt.delivery_id)
        .join(Webhook, Webhook.id == Delivery.webhook_id)
        .where(Delivery.event_id == event_id, Webhook.url == url)
    )


async def _slow_attempt_done(runtime: Runtime, event_id: str, url: str) -> bool:
    async with transaction(runtime.sessions) as session:
        return await session.scalar(_attempts_to(event_id, url)) is not None


async def test_a_webhook_failing_longer_than_disable_after_is_disabled_with_a_reason(
    runtime: Runtime,
) -> None:
    async def fail(_: web.Request) -> web.StreamResponse:
        return web.Response(status=500)

    async with running_receiver(fail) as receiver:
        subscriber = await subscribe(runtime, receiver.url)
        async with transaction(runtime.sessions) as session:
            webhook = await session.get(Webhook, subscriber.webhook_id)
            assert webhook is not None
            # Failing for six days already, against the default limit of five.
            webhook.failing_since = webhook.created_at - timedelta(days=6)

        async def disabled() -> bool:
            async with transaction(runtime.sessions) as session:
                found = await session.get(Webhook, subscriber.webhook_id)
            return found is not None and not found.enabled

        async with running_worker(runtime):
            event_id = await _publish(runtime)
            await eventually(disabled, "the webhook was disabled")

    async with transaction(runtime.sessions) as session:
        webhook = await session.get(Webhook, subscriber.webhook_id)
    assert webhook is not None
    assert "Every attempt failed since" in (webhook.disabled_reason or "")
    # The delivery waits for the webhook to be enabled again rather than failing.
    assert (await _delivery(runtime, event_id)).status == "pending"
    assert len(receiver.received) == 1


async def test_a_manual_retry_of_a_failed_delivery_is_sent_at_once(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    healthy = False

    async def fail_until_fixed(_: web.Request) -> web.StreamResponse:
        return web.Response(status=200 if healthy else 500)

    async with running_receiver(fail_until_fixed) as receiver:
        subscriber = await subscribe(runtime, receiver.url)
        async with running_worker(runtime):
            event_id = await _publish(runtime)
            await eventually(_status_is(runtime, event_id, "failed"), "given up")
            healthy = True
            delivery = await _delivery(runtime, event_id)
            key = await _api_key(runtime, subscriber)
            answer = await client.post(
                f"/api/external/v1/deliveries/{delivery.id}/retry",
                headers={"Authorization": f"Bearer {key}"},
            )
            await eventually(_status_is(runtime, event_id, "succeeded"), "delivered on retry")

    assert answer.status_code == 202
    assert [r.headers["webhook-id"] for r in receiver.received] == [event_id] * 4


async def _api_key(runtime: Runtime, subscriber: Subscriber) -> str:
    async with transaction(runtime.sessions) as session:
        created = await create_api_key(
            session, subscriber.integration_id, ApiKeyCreate(name="tests"), CLI_ACTOR
        )
    return created.key
