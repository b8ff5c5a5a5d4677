"""The backlog drain: deliveries queued before one `reflexblue worker` process starts, timed
from its first attempt to its last as the attempts table records them."""

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from bench.payload import EVENT_TYPE, event_data
from bench.processes import (
    BenchError,
    cpu_seconds,
    environment,
    peak_rss_bytes,
    require_alive,
    running,
)
from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime, start_runtime
from reflexblue.core.settings import Settings
from reflexblue.integrations.schemas import IntegrationCreate
from reflexblue.integrations.service import create_integration
from reflexblue.webhooks.event_types import create_event_type
from reflexblue.webhooks.models import Attempt, Delivery, DeliveryStatus
from reflexblue.webhooks.publishing import NewEvent, publish_events
from reflexblue.webhooks.schemas import EventTypeCreate, WebhookCreate
from reflexblue.webhooks.service import create_webhook

EVENTS_PER_TRANSACTION = 1000
WATCH_INTERVAL_SECONDS = 0.2
PROFILE_SECONDS = 10


@dataclass(frozen=True)
class DrainCase:
    key: str
    label: str
    webhooks: int
    fan_out: int  # webhooks each event goes to: 1 spreads events over the webhooks


DRAIN_CASES = (
    DrainCase("drain_fan_out_1_one_webhook", "Drain, fan-out 1, 1 webhook", 1, 1),
    DrainCase("drain_fan_out_1_16_webhooks", "Drain, fan-out 1, 16 webhooks", 16, 1),
    DrainCase("drain_fan_out_10", "Drain, fan-out 10", 10, 10),
)


@dataclass(frozen=True)
class Ledger:
    published: int
    succeeded: int
    failed: int
    pending: int
    received: int  # POSTs the receiver counted while the worker ran

    @property
    def balanced(self) -> bool:
        accounted = self.succeeded + self.failed + self.pending
        return self.published == accounted and self.received >= self.succeeded


@dataclass(frozen=True)
class DrainRun:
    case: str
    attempts: int
    seconds: float  # first attempt to last
    complete: bool  # False when the time limit stopped the worker with deliveries pending
    peak_rss_bytes: int
    ledger: Ledger
    # The worker's CPU time, its start-up included: unlike the rate, what other processes on
    # the machine do hardly changes it.
    worker_cpu_seconds: float = 0.0

    @property
    def deliveries_per_second(self) -> float:
        return (self.attempts - 1) / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class DrainSetting:
    database_url: str
    folder: Path
    master_key: str
    receiver_url: str
    deliveries: int
    limit_seconds: float
    profile_path: Path | None = None
    # More REFLEXBLUE_ settings for the worker, such as a short retry schedule.
    environment: dict[str, str] = field(default_factory=dict)

    def settings(self) -> Settings:
        return Settings(
            _env_file=None,
            data_dir=self.folder,
            database_url=self.database_url,
            master_key=self.master_key,
            allow_private_targets=True,
        )

    def worker_environment(self) -> dict[str, str]:
        return {
            "REFLEXBLUE_DATABASE_URL": self.database_url,
            "REFLEXBLUE_MASTER_KEY": self.master_key,
            "REFLEXBLUE_DATA_DIR": str(self.folder),
            "REFLEXBLUE_ALLOW_PRIVATE_TARGETS": "true",
            "REFLEXBLUE_LOG_LEVEL": "WARNING",
            **self.environment,
        }


# How many deliveries a drain still waits for; something run on every look at the database.
PendingCount = Callable[[Runtime], Awaitable[int]]
Observer = Callable[[Runtime], Awaitable[None]]


@dataclass(frozen=True)
class WorkerRun:
    complete: bool  # False when the time limit stopped the worker with deliveries pending
    peak_rss_bytes: int
    received: int  # POSTs the receiver counted while the worker ran
    cpu_seconds: float  # the worker's CPU time, its start-up included


def run_drain(case: DrainCase, setting: DrainSetting, received: Callable[[], int]) -> DrainRun:
    """Queue, drain with one worker process, and account for every delivery; `received` reads
    the receiver's count of requests."""
    settings = setting.settings()
    published = asyncio.run(queue_case(settings, case, setting))
    run = run_worker(setting, received)
    # After the worker stopped, so that what it finished on its way out is counted too.
    attempts, seconds, counts = asyncio.run(tally(settings))
    ledger = Ledger(published, *counts, received=run.received)
    return DrainRun(
        case.key, attempts, seconds, run.complete, run.peak_rss_bytes, ledger, run.cpu_seconds
    )


def run_worker(
    setting: DrainSetting,
    received: Callable[[], int],
    *,
    pending: PendingCount | None = None,
    observe: Observer | None = None,
) -> WorkerRun:
    """One `reflexblue worker` over what is queued, until `pending` (by default every pending
    delivery) comes to nothing or the time limit passes; `observe` runs at every look."""
    received_before = received()
    with running(["reflexblue", "worker"], setting.worker_environment()) as worker:
        complete = asyncio.run(_watch(setting, worker, pending or pending_deliveries, observe))
        # Read before stopping: the high-water mark and the CPU time go with the process.
        peak, cpu = peak_rss_bytes(worker.pid), cpu_seconds(worker.pid)
    return WorkerRun(complete, peak, received() - received_before, cpu)


async def queue_case(settings: Settings, case: DrainCase, setting: DrainSetting) -> int:
    """Subscribe the case's webhooks and queue the deliveries; the number queued."""
    runtime = await start_runtime(settings)
    try:
        integration_ids = await subscribe_receiver(runtime, case, setting.receiver_url)
        # Fan-out 1 addresses each event to one integration in turn; otherwise every webhook
        # takes it.
        targets = integration_ids if case.fan_out == 1 else None
        return await publish_to(runtime, targets, setting.deliveries // case.fan_out)
    finally:
        await runtime.close()


async def publish_to(
    runtime: Runtime, integration_ids: list[str] | None, events: int, first: int = 0
) -> int:
    """Publish `events` events, each to one of the integrations in turn, or to every webhook
    when `integration_ids` is None; the number of deliveries queued."""
    queued = 0
    for start in range(first, first + events, EVENTS_PER_TRANSACTION):
        batch = [
            NewEvent(EVENT_TYPE, event_data(i), _target(integration_ids, i))
            for i in range(start, min(start + EVENTS_PER_TRANSACTION, first + events))
        ]
        async with transaction(runtime.sessions) as session:
            published = await publish_events(session, batch)
        queued += sum(each.deliveries for each in published)
    return queued


def _target(integration_ids: list[str] | None, index: int) -> str | None:
    return integration_ids[index % len(integration_ids)] if integration_ids else None


async def subscribe_receiver(runtime: Runtime, case: DrainCase, receiver_url: str) -> list[str]:
    async with transaction(runtime.sessions) as session:
        await create_event_type(session, EventTypeCreate(name=EVENT_TYPE), CLI_ACTOR)
        integration_ids = []
        for number in range(case.webhooks):
            integration = await create_integration(
                session,
                runtime.box,
                IntegrationCreate(
                    name=f"Bench {number}", external_id=f"bench-{number}", export_id=f"B{number}"
                ),
                CLI_ACTOR,
            )
            await create_webhook(
                session,
                integration.id,
                WebhookCreate(url=f"{receiver_url}/hooks/{number}", event_types=["*"]),
                CLI_ACTOR,
                max_per_integration=runtime.settings.max_webhooks_per_integration,
            )
            integration_ids.append(integration.id)
    return integration_ids


async def _watch(
    setting: DrainSetting,
    worker: subprocess.Popen[bytes],
    pending: PendingCount,
    observe: Observer | None,
) -> bool:
    """Wait until nothing is pending or the limit passes; True when everything was sent."""
    runtime = await start_runtime(setting.settings(), migrate=False)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + setting.limit_seconds
    profiler: asyncio.subprocess.Process | None = None
    try:
        while await pending(runtime) > 0:
            require_alive(worker, "the worker")
            if observe is not None:
                await observe(runtime)
            if loop.time() > deadline:
                return False
            if profiler is None and setting.profile_path and await _attempted_any(runtime):
                profiler = await _start_profiler(worker.pid, setting.profile_path)
            await asyncio.sleep(WATCH_INTERVAL_SECONDS)
        return True
    finally:
        await runtime.close()
        if profiler is not None:
            await profiler.wait()


async def pending_deliveries(runtime: Runtime) -> int:
    async with transaction(runtime.sessions) as session:
        query = select(func.count()).where(Delivery.status == DeliveryStatus.PENDING.value)
        return int(await session.scalar(query) or 0)


async def _attempted_any(runtime: Runtime) -> bool:
    async with transaction(runtime.sessions) as session:
        return await session.scalar(select(Attempt.id).limit(1)) is not None


async def _start_profiler(pid: int, path: Path) -> asyncio.subprocess.Process:
    """py-spy sampling the worker while it drains; raw output, one line per stack."""
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        raise BenchError(f"--profile needs py-spy at {py_spy}")
    return await asyncio.create_subprocess_exec(
        str(py_spy),
        *("record", "-p", str(pid), "-d", str(PROFILE_SECONDS), "-f", "raw", "-o", str(path)),
        env=environment({}),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def tally(
    settings: Settings, since: datetime | None = None
) -> tuple[int, float, tuple[int, int, int]]:
    """Attempts (those after `since`, when given), seconds from the first to the last, and
    deliveries by final status."""
    runtime = await start_runtime(settings, migrate=False)
    try:
        async with transaction(runtime.sessions) as session:
            attempts = select(
                func.count(), func.min(Attempt.attempted_at), func.max(Attempt.attempted_at)
            )
            if since is not None:
                attempts = attempts.where(Attempt.attempted_at > since)
            count, first, last = (await session.execute(attempts)).one()
            rows = await session.execute(
                select(Delivery.status, func.count()).group_by(Delivery.status)
            )
            by_status = {status: int(n) for status, n in rows}
    finally:
        await runtime.close()
    seconds = (last - first).total_seconds() if count > 1 else 0.0
    statuses = (
        by_status.get(DeliveryStatus.SUCCEEDED.value, 0),
        by_status.get(DeliveryStatus.FAILED.value, 0),
        by_status.get(DeliveryStatus.PENDING.value, 0),
    )
    return int(count), seconds, statuses
