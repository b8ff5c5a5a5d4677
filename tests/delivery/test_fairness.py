"""One webhook's backlog does not starve the others."""

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import func, select

from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.core.settings import Settings
from reflexblue.webhooks.models import Attempt, Delivery, DeliveryStatus
from reflexblue.webhooks.publishing import publish_event
from reflexblue.webhooks.worker import DeliveryWorker, WorkerConfig
from tests.delivery.conftest import Subscriber, eventually, running_worker, subscribe
from tests.support.receiver import Receiver, Responder, running_receiver
from tests.support.settings import loopback_delivery_settings

BACKLOG = 600
# Long enough that no held request times out while a test settles; an answer counts as
# prompt within half of it.
DELIVERY_TIMEOUT_SECONDS = 6.0


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    loopback = loopback_delivery_settings(database_url, tmp_path)
    return loopback.model_copy(update={"delivery_timeout": DELIVERY_TIMEOUT_SECONDS})


async def _pending_for(runtime: Runtime, webhook_id: str) -> int:
    async with transaction(runtime.sessions) as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(
                Delivery.webhook_id == webhook_id,
                Delivery.status == DeliveryStatus.PENDING.value,
            )
        )
    return int(count or 0)


async def test_a_new_event_for_another_webhook_overtakes_a_big_backlog(runtime: Runtime) -> None:
    release_backlog = asyncio.Event()

    async def held(_: web.Request) -> web.StreamResponse:
        await release_backlog.wait()
        return web.Response(status=204)

    async with running_receiver(held) as busy, running_receiver() as other:
        backlogged = await subscribe(runtime, busy.url, export_id="BUSY")
        quiet = await subscribe(runtime, other.url, export_id="QUIET")
        async with transaction(runtime.sessions) as session:
            for number in range(BACKLOG):
                await publish_event(
                    session, "webhook.test", {"n": number}, integration_id=backlogged.integration_id
                )
        config = WorkerConfig(poll_interval_seconds=0.2, batch_size=20, per_webhook_in_flight=4)
        async with running_worker(runtime, config) as worker:

            async def backlog_is_being_sent() -> bool:
                return len(busy.received) == config.per_webhook_in_flight

            await eventually(backlog_is_being_sent, "the backlogged webhook has its share")
            async with transaction(runtime.sessions) as session:
                await publish_event(
                    session, "webhook.test", {}, integration_id=quiet.integration_id
                )
            worker.wake()

            async def the_other_has_it() -> bool:
                return len(other.received) == 1

            await eventually(the_other_has_it, "the other webhook got its event")
            # Every one of the backlog's attempts is still held open by its receiver.
            assert len(busy.received) == config.per_webhook_in_flight
            assert await _pending_for(runtime, backlogged.webhook_id) == BACKLOG
            release_backlog.set()


async def test_a_due_retry_goes_before_the_backlog_of_first_attempts_due_earlier(
    runtime: Runtime,
) -> None:
    # The test settings retry at once, so the failed first attempt is due again right away,
    # behind every event of the backlog in order of due time.
    seen_retry = asyncio.Event()
    first_attempts: list[str] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        data = (await request.json())["data"]
        if "retried" not in data:
            await asyncio.sleep(0.01)
            return web.Response(status=204)
        if data["retried"] in first_attempts:
            seen_retry.set()
            return web.Response(status=204)
        first_attempts.append(data["retried"])
        return web.Response(status=500)

    async with running_receiver(answer) as receiver:
        subscriber = await subscribe(runtime, receiver.url)
        async with transaction(runtime.sessions) as session:
            for data in [{"retried": "yes"}] + [{"n": n} for n in range(BACKLOG)]:
                await publish_event(
                    session, "webhook.test", data, integration_id=subscriber.integration_id
                )
        config = WorkerConfig(poll_interval_seconds=0.2, batch_size=10, per_webhook_in_flight=2)
        async with running_worker(runtime, config):
            await asyncio.wait_for(seen_retry.wait(), timeout=30)
            sent_before_the_retry = len(receiver.received) - 2

    assert sent_before_the_retry < BACKLOG // 4


# Shares far enough apart to tell which one a webhook got; no slots lent (see LENDING).
SHARES = WorkerConfig(
    poll_interval_seconds=0.2, per_webhook_in_flight=8, unproven_in_flight=2, alone_in_flight=8
)
# Of 16 slots, 12 may be lent to a lone webhook and 4 stay free.
LENDING = WorkerConfig(
    poll_interval_seconds=0.2,
    max_in_flight=16,
    per_webhook_in_flight=4,
    unproven_in_flight=2,
    alone_in_flight=12,
)
SHARE_EVENTS = 20


async def _publish_many(runtime: Runtime, integration_id: str, count: int) -> None:
    async with transaction(runtime.sessions) as session:
        for number in range(count):
            await publish_event(
                session, "webhook.test", {"n": number}, integration_id=integration_id
            )


async def _after_one_more_claim(
    runtime: Runtime, worker: DeliveryWorker, quiet: Subscriber, quiet_receiver: Receiver
) -> None:
    """Return once the worker has claimed again after this moment: a quiet webhook's new
    event reaches its receiver only through a claim."""
    before = len(quiet_receiver.received)
    await _publish_many(runtime, quiet.integration_id, 1)
    worker.wake()

    async def delivered() -> bool:
        return len(quiet_receiver.received) > before

    await eventually(delivered, "the quiet webhook got its event")


async def _leased(runtime: Runtime, webhook_id: str) -> int:
    """A webhook's deliveries claimed by a worker and not yet settled."""
    async with transaction(runtime.sessions) as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.webhook_id == webhook_id, Delivery.locked_until.is_not(None))
        )
    return int(count or 0)


async def _attempts_recorded(runtime: Runtime) -> int:
    async with transaction(runtime.sessions) as session:
        count = await session.scalar(select(func.count()).select_from(Attempt))
    return int(count or 0)


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: the connection is dropped without an answer
    after_seconds: float = 0.0


def _holding(release: asyncio.Event, answers: dict[int, Answer]) -> Responder:
    """A receiver that answers the n-th request (from 1) as `answers[n]` says and holds every
    other request until `release`."""
    arrivals = 0

    async def answer(request: web.Request) -> web.StreamResponse:
        nonlocal arrivals
        arrivals += 1
        planned = answers.get(arrivals)
        if planned is None:
            await release.wait()
            return web.Response(status=204)
        await asyncio.sleep(planned.after_seconds)
        if planned.status is None:
            assert request.transport is not None
            request.transport.abort()
            raise ConnectionResetError("dropped on purpose")
        return web.Response(status=planned.status)

    return answer


async def _in_flight_after(
    runtime: Runtime, answers: dict[int, Answer], config: WorkerConfig = SHARES
) -> int:
    """Requests the receiver got once the worker settled, given how it answers. Settled means
    that a quiet webhook's new event has since gone out, past whatever the first one holds."""
    release = asyncio.Event()
    async with (
        running_receiver(_holding(release, answers)) as receiver,
        running_receiver() as quiet_receiver,
    ):
        subscriber = await subscribe(runtime, receiver.url, export_id="SHARED")
        quiet = await subscribe(runtime, quiet_receiver.url, export_id="QUIET")
        await _publish_many(runtime, subscriber.integration_id, SHARE_EVENTS)
        async with running_worker(runtime, config) as worker:

            async def answered() -> bool:
                return await _attempts_recorded(runtime) == len(answers)

            await eventually(answered, "the answered attempts are recorded")
            await _after_one_more_claim(runtime, worker, quiet, quiet_receiver)
            got = len(receiver.received)
            release.set()
    return got


OK = Answer(204)
ERROR = Answer(500)
NO_ANSWER = Answer(None)


async def test_a_webhook_not_yet_answered_gets_the_unproven_share(runtime: Runtime) -> None:
    assert await _in_flight_after(runtime, {}) == SHARES.unproven_in_flight


async def test_one_success_gives_a_webhook_its_full_share(runtime: Runtime) -> None:
    got = await _in_flight_after(runtime, {1: OK})

    assert got == 1 + SHARES.per_webhook_in_flight


async def test_a_prompt_error_answer_gives_a_webhook_its_full_share_too(runtime: Runtime) -> None:
    # An error frees its slot as soon as a success would: the first answer proves the webhook,
    # and the slot of the third request goes to its retry (due at once) within the full share.
    got = await _in_flight_after(runtime, {1: OK, 3: ERROR})

    assert got == 2 + SHARES.per_webhook_in_flight


async def test_an_attempt_without_an_answer_takes_the_webhook_back_to_the_unproven_share(
    runtime: Runtime,
) -> None:
    # The third request's connection is dropped; its retry would take the freed slot if the
    # share stayed full.
    got = await _in_flight_after(runtime, {1: OK, 3: NO_ANSWER})

    assert got == 1 + SHARES.per_webhook_in_flight


async def test_an_answer_slower_than_half_the_timeout_proves_nothing(runtime: Runtime) -> None:
    # Held to the edge of the timeout, a success frees its slot for one more request, which
    # the unproven share allows, and no more.
    slow = Answer(204, after_seconds=DELIVERY_TIMEOUT_SECONDS / 2 + 0.3)

    got = await _in_flight_after(runtime, {1: slow})

    assert got == 1 + SHARES.unproven_in_flight


async def test_a_lone_proven_webhook_borrows_the_idle_slots_but_those_kept_free(
    runtime: Runtime,
) -> None:
    # Its twelve held attempts leave four slots, which the quiet webhook's event then takes.
    got = await _in_flight_after(runtime, {1: OK}, LENDING)

    assert got == 1 + LENDING.alone_in_flight


async def test_a_lone_webhook_not_proven_borrows_nothing(runtime: Runtime) -> None:
    assert await _in_flight_after(runtime, {}, LENDING) == LENDING.unproven_in_flight


async def test_a_lone_webhook_answering_with_errors_borrows_nothing(runtime: Runtime) -> None:
    # Its first answer, an error, gives it the full share; the retry takes the freed slot.
    got = await _in_flight_after(runtime, {1: ERROR}, LENDING)

    assert got == 1 + LENDING.per_webhook_in_flight


# A pool of 4 that a hanging webhook fills alone; its attempts stall after 0.3 s.
STALLING = WorkerConfig(
    poll_interval_seconds=0.2,
    max_in_flight=4,
    per_webhook_in_flight=4,
    unproven_in_flight=4,
    stalled_after_seconds=0.3,
    stalled_in_flight=4,
)


async def test_attempts_that_stall_give_their_slots_to_other_webhooks(runtime: Runtime) -> None:
    release = asyncio.Event()
    async with (
        running_receiver(_holding(release, {})) as hanging_receiver,
        running_receiver() as quiet_receiver,
    ):
        hanging = await subscribe(runtime, hanging_receiver.url, export_id="HANGING")
        quiet = await subscribe(runtime, quiet_receiver.url, export_id="QUIET")
        await _publish_many(runtime, hanging.integration_id, SHARE_EVENTS)
        async with running_worker(runtime, STALLING) as worker:

            async def pool_full() -> bool:
                return len(hanging_receiver.received) == STALLING.max_in_flight

            await eventually(pool_full, "the hanging webhook holds the whole pool")
            await _after_one_more_claim(runtime, worker, quiet, quiet_receiver)
            # Delivered while every attempt of the hanging webhook is still held: none has
            # ended (they would end only at the timeout, 6 s, and be recorded).
            assert await _attempts_recorded(runtime) == 0
            assert len(hanging_receiver.received) == STALLING.max_in_flight
            release.set()


async def test_stalled_attempts_set_aside_are_bounded(runtime: Runtime) -> None:
    config = replace(STALLING, stalled_in_flight=2)
    release = asyncio.Event()
    async with (
        running_receiver(_holding(release, {})) as first_receiver,
        running_receiver(_holding(release, {})) as second_receiver,
    ):
        first = await subscribe(runtime, first_receiver.url, export_id="FIRST")
        await _publish_many(runtime, first.integration_id, SHARE_EVENTS)
        async with running_worker(runtime, config) as worker:

            async def first_holds_the_pool() -> bool:
                return len(first_receiver.received) == config.max_in_flight

            await eventually(first_holds_the_pool, "the first webhook holds the whole pool")
            second = await subscribe(runtime, second_receiver.url, export_id="SECOND")
            await _publish_many(runtime, second.integration_id, SHARE_EVENTS)
            worker.wake()

            async def second_got_the_set_aside_slots() -> bool:
                return len(second_receiver.received) == config.stalled_in_flight

            await eventually(second_got_the_set_aside_slots, "two slots set aside for stalls")
            # Its own attempts stall too, but no more are set aside: it gets nothing more
            # over several stall periods and idle waits.
            await asyncio.sleep(5 * config.stalled_after_seconds)
            assert len(second_receiver.received) == config.stalled_in_flight
            assert len(first_receiver.received) == config.max_in_flight
            # Nor were more claimed to wait for a connection.
            assert await _leased(runtime, second.webhook_id) == config.stalled_in_flight
            release.set()
