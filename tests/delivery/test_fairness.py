"""One webhook's backlog does not starve the others."""

import asyncio

from aiohttp import web
from sqlalchemy import func, select

from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.webhooks.models import Delivery, DeliveryStatus
from reflexblue.webhooks.publishing import publish_event
from reflexblue.webhooks.worker import WorkerConfig
from tests.delivery.conftest import eventually, running_worker, subscribe
from tests.support.receiver import running_receiver

BACKLOG = 600


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
