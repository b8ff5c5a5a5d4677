"""The worker as a real process: killed, stopped, doubled, and cut off from its database."""

import asyncio
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import func, select

from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime, start_runtime
from reflexblue.webhooks.models import Delivery
from reflexblue.webhooks.publishing import publish_event
from tests.delivery.conftest import eventually, subscribe, worker_process
from tests.support.postgres import running_postgres
from tests.support.receiver import running_receiver
from tests.support.settings import loopback_delivery_settings

WORKER_STOP_LIMIT_SECONDS = 20.0


async def _publish_many(runtime: Runtime, count: int) -> list[str]:
    async with transaction(runtime.sessions) as session:
        return [(await publish_event(session, "webhook.test", {"n": n})).id for n in range(count)]


async def _count(runtime: Runtime, status: str) -> int:
    async with transaction(runtime.sessions) as session:
        query = select(func.count()).select_from(Delivery).where(Delivery.status == status)
        return int(await session.scalar(query) or 0)


def _all_succeeded(runtime: Runtime, total: int):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return await _count(runtime, "succeeded") == total

    return check


async def _exit_code(process: subprocess.Popen[bytes]) -> int:
    return await asyncio.to_thread(process.wait, WORKER_STOP_LIMIT_SECONDS)


async def test_deliveries_of_a_killed_worker_are_sent_by_the_next_one(runtime: Runtime) -> None:
    gate = asyncio.Event()

    async def held(_: web.Request) -> web.StreamResponse:
        await gate.wait()
        return web.Response()

    async with running_receiver(held) as receiver:
        await subscribe(runtime, receiver.url)
        event_ids = await _publish_many(runtime, 20)

        with worker_process(runtime.settings) as first:
            await receiver.arrived.wait()  # an attempt is under way...
            first.send_signal(signal.SIGKILL)  # ...when the worker dies
            await _exit_code(first)
        gate.set()

        with worker_process(runtime.settings) as second:
            await eventually(_all_succeeded(runtime, 20), "every delivery succeeded")
            second.send_signal(signal.SIGTERM)
            assert await _exit_code(second) == 0

    assert set(event_ids) <= {request.headers["webhook-id"] for request in receiver.received}


async def test_sigterm_finishes_what_is_in_flight_and_exits_cleanly(runtime: Runtime) -> None:
    async def slow(_: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.5)
        return web.Response()

    async with running_receiver(slow) as receiver:
        await subscribe(runtime, receiver.url)
        await _publish_many(runtime, 10)
        with worker_process(runtime.settings) as worker:
            await receiver.arrived.wait()
            worker.send_signal(signal.SIGTERM)
            exit_code = await _exit_code(worker)

    async with transaction(runtime.sessions) as session:
        still_claimed = await session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.status == "pending", Delivery.locked_until.is_not(None))
        )
    assert exit_code == 0
    assert still_claimed == 0  # finished, or released for the next worker at once
    assert await _count(runtime, "succeeded") >= 1


@pytest.mark.postgresql_only
async def test_two_workers_on_postgresql_send_each_delivery_once(runtime: Runtime) -> None:
    async with running_receiver() as receiver:
        await subscribe(runtime, receiver.url)
        event_ids = await _publish_many(runtime, 100)
        # A roomy timeout: on a loaded machine a 2-second attempt may time out after the
        # receiver got it, and its retry would be a second arrival that no double claim caused.
        settings = runtime.settings.model_copy(update={"delivery_timeout": 15.0})
        with (
            worker_process(settings, wait_until_started=True) as one,
            worker_process(settings, wait_until_started=True) as two,
        ):
            await eventually(_all_succeeded(runtime, 100), "every delivery succeeded")
            for process in (one, two):
                process.send_signal(signal.SIGTERM)
            assert [await _exit_code(one), await _exit_code(two)] == [0, 0]

    arrivals = Counter(request.headers["webhook-id"] for request in receiver.received)
    assert arrivals == Counter({event_id: 1 for event_id in event_ids})


@asynccontextmanager
async def _runtime_on(url: str, data_dir: Path) -> AsyncIterator[Runtime]:
    started = await start_runtime(loopback_delivery_settings(url, data_dir.parent))
    try:
        yield started
    finally:
        await started.close()


async def test_a_postgresql_restart_costs_no_event(tmp_path: Path) -> None:
    with running_postgres() as server:
        async with (
            _runtime_on(server.url, tmp_path / "data") as runtime,
            running_receiver() as receiver,
        ):
            await subscribe(runtime, receiver.url)
            with worker_process(runtime.settings) as worker:
                before = await _publish_many(runtime, 20)
                await eventually(_all_succeeded(runtime, 20), "the first events arrived")

                await asyncio.to_thread(server.stop)
                await asyncio.sleep(2)  # the worker meets a missing database for a while
                await asyncio.to_thread(server.start)
                await runtime.engine.dispose()  # the test's own pool held dead connections

                after = await _publish_many(runtime, 20)
                await eventually(_all_succeeded(runtime, 40), "the later events arrived too")
                worker.send_signal(signal.SIGTERM)
                assert await _exit_code(worker) == 0

    received = {request.headers["webhook-id"] for request in receiver.received}
    assert set(before + after) <= received
