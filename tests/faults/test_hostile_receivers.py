"""A worker process beside receivers that hang, trickle, send 100 MB, reset the connection or
answer with something that is not HTTP: healthy webhooks are delivered while those attempts
are still in flight, and each hostile attempt is recorded with its error class and a short
body.

How fast healthy webhooks drain beside hostile ones is a figure of bench/hostile.py, not
something a test times.
"""

from collections import Counter

from sqlalchemy import select

from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.webhooks.models import Attempt, Delivery, DeliveryStatus
from reflexblue.webhooks.publishing import publish_event
from reflexblue.webhooks.sender import RESPONSE_BODY_LIMIT_BYTES
from reflexblue.webhooks.worker import WorkerConfig
from tests.delivery.conftest import Subscriber, eventually, subscribe, worker_process
from tests.faults.conftest import secret_of, verified_deliveries
from tests.support.hostile import (
    HUGE_BODY_BYTES,
    HUGE_MARKER,
    Behaviour,
    HostileReceiver,
    running_hostile_receiver,
)
from tests.support.receiver import running_receiver

# Long enough that the hanging attempts are surely still under way when the healthy webhooks
# are done; the hostile attempts end after it.
DELIVERY_TIMEOUT_SECONDS = 8.0
# A hostile webhook never answers with success, so it keeps the share of an unproven one.
SHARE_OF_ONE_WEBHOOK = WorkerConfig().unproven_in_flight
# More deliveries to the hanging receiver than one webhook may have in flight at once.
HOSTILE_DELIVERIES = {
    Behaviour.HANG: SHARE_OF_ONE_WEBHOOK + 4,
    Behaviour.TRICKLE: 3,
    Behaviour.HUGE: 2,
    Behaviour.RESET: 3,
    Behaviour.INVALID: 3,
}
ERROR_CLASS = {
    Behaviour.HANG: "timeout",
    Behaviour.TRICKLE: "timeout",
    Behaviour.HUGE: None,  # a 2xx status is success, however much body follows
    Behaviour.RESET: "connection",
    Behaviour.INVALID: "connection",
}
HEALTHY_WEBHOOKS = 4
HEALTHY_EVENTS_EACH = 25


async def _publish_to(runtime: Runtime, subscriber: Subscriber, count: int) -> list[str]:
    async with transaction(runtime.sessions) as session:
        return [
            (
                await publish_event(
                    session, "webhook.test", {"n": n}, integration_id=subscriber.integration_id
                )
            ).id
            for n in range(count)
        ]


async def _attempts_by_webhook(runtime: Runtime) -> dict[str, list[Attempt]]:
    async with transaction(runtime.sessions) as session:
        rows = await session.execute(
            select(Attempt, Delivery.webhook_id).join(Delivery, Delivery.id == Attempt.delivery_id)
        )
        found: dict[str, list[Attempt]] = {}
        for attempt, webhook_id in rows:
            found.setdefault(webhook_id, []).append(attempt)
        return found


async def _statuses(runtime: Runtime, webhook_ids: list[str]) -> Counter[str]:
    async with transaction(runtime.sessions) as session:
        rows = await session.scalars(
            select(Delivery.status).where(Delivery.webhook_id.in_(webhook_ids))
        )
        return Counter(rows)


async def _subscribe_hostile(
    runtime: Runtime, hostile: HostileReceiver
) -> dict[Behaviour, Subscriber]:
    return {
        behaviour: await subscribe(
            runtime, hostile.url_of(behaviour), export_id=f"HOSTILE_{behaviour.name}"
        )
        for behaviour in Behaviour
    }


def _hostile_attempts_in_flight(hostile: HostileReceiver) -> bool:
    return (
        hostile.open_now[Behaviour.HANG.value] == SHARE_OF_ONE_WEBHOOK
        and hostile.open_now[Behaviour.TRICKLE.value] == HOSTILE_DELIVERIES[Behaviour.TRICKLE]
    )


async def test_healthy_webhooks_are_delivered_while_hostile_receivers_hold_their_attempts(
    runtime: Runtime,
) -> None:
    settings = runtime.settings.model_copy(update={"delivery_timeout": DELIVERY_TIMEOUT_SECONDS})
    async with running_hostile_receiver() as hostile, running_receiver() as healthy:
        hostile_subscribers = await _subscribe_hostile(runtime, hostile)
        for behaviour, subscriber in hostile_subscribers.items():
            await _publish_to(runtime, subscriber, HOSTILE_DELIVERIES[behaviour])
        healthy_subscribers = [
            await subscribe(runtime, f"{healthy.url}/H{n}", export_id=f"HEALTHY_{n}")
            for n in range(HEALTHY_WEBHOOKS)
        ]
        secrets = {
            f"/H{n}": await secret_of(runtime, s.integration_id)
            for n, s in enumerate(healthy_subscribers)
        }
        healthy_ids = [s.webhook_id for s in healthy_subscribers]

        with worker_process(settings):

            async def hostile_in_flight() -> bool:
                return _hostile_attempts_in_flight(hostile)

            await eventually(hostile_in_flight, "the hanging and trickling attempts are open")
            published: list[str] = []
            for subscriber in healthy_subscribers:
                published += await _publish_to(runtime, subscriber, HEALTHY_EVENTS_EACH)

            async def healthy_all_succeeded() -> bool:
                statuses = await _statuses(runtime, healthy_ids)
                return statuses[DeliveryStatus.SUCCEEDED.value] == len(published)

            await eventually(healthy_all_succeeded, "every healthy delivery succeeded")
            still_in_flight = _hostile_attempts_in_flight(hostile)
            hang_attempts_so_far = len(
                (await _attempts_by_webhook(runtime)).get(
                    hostile_subscribers[Behaviour.HANG].webhook_id, []
                )
            )

            async def hostile_recorded() -> bool:
                attempts = await _attempts_by_webhook(runtime)
                return all(
                    len(attempts.get(subscriber.webhook_id, []))
                    >= min(HOSTILE_DELIVERIES[behaviour], SHARE_OF_ONE_WEBHOOK)
                    for behaviour, subscriber in hostile_subscribers.items()
                )

            await eventually(hostile_recorded, "every hostile webhook has its attempts recorded")
            attempts = await _attempts_by_webhook(runtime)

    assert still_in_flight, "the healthy deliveries finished after the hostile ones"
    assert hang_attempts_so_far == 0
    assert hostile.most_open[Behaviour.HANG.value] == SHARE_OF_ONE_WEBHOOK
    assert {event_id for _, event_id in verified_deliveries(healthy, secrets)} == set(published)
    for behaviour, subscriber in hostile_subscribers.items():
        recorded = attempts[subscriber.webhook_id]
        assert {a.error for a in recorded} == {ERROR_CLASS[behaviour]}, behaviour
        assert all(len(a.response_body) <= RESPONSE_BODY_LIMIT_BYTES for a in recorded)
    huge = attempts[hostile_subscribers[Behaviour.HUGE].webhook_id]
    assert all(a.response_status == 200 for a in huge)
    assert all(a.response_body.startswith(HUGE_MARKER.decode()) for a in huge)
    # The sender stopped reading each huge answer long before its end.
    assert hostile.huge_bytes_sent
    assert max(hostile.huge_bytes_sent) < HUGE_BODY_BYTES // 4
