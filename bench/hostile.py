"""Hostile receivers: how fast the worker drains healthy webhooks while other webhooks point
at receivers that hang, trickle, send 100 MB, reset the connection or answer invalid HTTP,
against the same drain with no hostile webhook at all (the baseline, same command).

The hostile webhooks' deliveries are queued first, so that they are claimed first and hold
their share of the worker's slots from the start. The rate is the healthy webhooks' attempts
over the time from their first attempt to their last; the drain ends when no healthy delivery
is pending, whatever the hostile ones are still doing.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVarTuple

from sqlalchemy import Select, func, select

from bench.context import Context, progress
from bench.drain import (
    DrainCase,
    DrainSetting,
    Ledger,
    publish_to,
    run_worker,
    subscribe_receiver,
)
from bench.hostile_receiver import BEHAVIOURS
from bench.processes import free_port, running
from bench.report import Figure, Report, Target
from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime, start_runtime
from reflexblue.core.settings import Settings
from reflexblue.integrations.schemas import IntegrationCreate
from reflexblue.integrations.service import create_integration
from reflexblue.webhooks.models import Attempt, Delivery, DeliveryStatus, Webhook
from reflexblue.webhooks.schemas import WebhookCreate
from reflexblue.webhooks.service import create_webhook

HEALTHY = DrainCase("hostile", "Healthy webhooks", webhooks=16, fan_out=1)
# Per hostile webhook: enough to keep its share of slots busy for a while.
HOSTILE_DELIVERIES = 64


@dataclass(frozen=True)
class HostileRun:
    hostile: bool
    attempts: int  # of the healthy webhooks
    seconds: float
    complete: bool
    ledger: Ledger  # of the healthy webhooks' deliveries
    hostile_queued: int

    @property
    def deliveries_per_second(self) -> float:
        return (self.attempts - 1) / self.seconds if self.seconds > 0 else 0.0


def hostile_figures() -> list[Figure]:
    return [
        Figure(
            "hostile_drain",
            "Drain beside hostile receivers (B: none)",
            "deliveries/s",
            Target("≥ 0.90 × without", ratio_at_least=0.90),
        )
    ]


def run_hostile_benchmark(context: Context) -> None:
    sizes, report = context.options.sizes, context.report
    port = free_port()
    hostile_url = f"http://127.0.0.1:{port}"
    with running(["bench.hostile_receiver", str(port)], {}, ready_url=f"{hostile_url}/ready"):
        for round_number in range(context.options.rounds):
            for hostile in (False, True):
                setting = context.setting(deliveries=sizes.hostile_deliveries)
                url = hostile_url if hostile else None
                run = run_hostile_drain(setting, context.received, url)
                _record(report, run, round_number)
            progress(f"hostile: healthy drain {run.deliveries_per_second:,.0f}/s beside them")


def _record(report: Report, run: HostileRun, round_number: int) -> None:
    report.add_run("hostile", run)
    where = f"hostile, {'with' if run.hostile else 'without'} them, round {round_number + 1}"
    if not run.ledger.balanced:
        report.void.append(f"{where}: the ledger does not balance: {run.ledger}")
    if not run.complete:
        report.notes.append(
            f"{where}: stopped at the time limit with {run.ledger.pending:,} healthy pending"
        )
    figure = report.figure("hostile_drain")
    (figure.product if run.hostile else figure.baseline).append(run.deliveries_per_second)


def run_hostile_drain(
    setting: DrainSetting, received: Callable[[], int], hostile_url: str | None
) -> HostileRun:
    """The healthy drain, with the hostile webhooks alongside when `hostile_url` is given."""
    settings = setting.settings()
    healthy, published, hostile_queued = asyncio.run(_queue(setting, hostile_url))

    async def pending(runtime: Runtime) -> int:
        async with transaction(runtime.sessions) as session:
            query = _healthy(select(func.count()).select_from(Delivery), healthy)
            query = query.where(Delivery.status == DeliveryStatus.PENDING.value)
            return int(await session.scalar(query) or 0)

    run = run_worker(setting, received, pending=pending)
    attempts, seconds, counts = asyncio.run(_tally(settings, healthy))
    # The receiver counts the healthy webhooks' requests only: the hostile ones go elsewhere.
    ledger = Ledger(published, *counts, received=run.received)
    return HostileRun(
        hostile_url is not None, attempts, seconds, run.complete, ledger, hostile_queued
    )


async def _queue(setting: DrainSetting, hostile_url: str | None) -> tuple[list[str], int, int]:
    """The hostile webhooks' deliveries first, then the healthy ones: the healthy integrations,
    the healthy deliveries queued and the hostile ones queued."""
    runtime = await start_runtime(setting.settings())
    try:
        healthy = await subscribe_receiver(runtime, HEALTHY, setting.receiver_url)
        hostile_queued = 0
        if hostile_url is not None:
            hostile = await _subscribe_hostile(runtime, hostile_url)
            events = HOSTILE_DELIVERIES * len(hostile)
            hostile_queued = await publish_to(runtime, hostile, events)
        published = await publish_to(runtime, healthy, setting.deliveries, first=hostile_queued)
        return healthy, published, hostile_queued
    finally:
        await runtime.close()


async def _subscribe_hostile(runtime: Runtime, hostile_url: str) -> list[str]:
    integration_ids = []
    async with transaction(runtime.sessions) as session:
        for path in BEHAVIOURS:
            name = path.strip("/")
            integration = await create_integration(
                session,
                runtime.box,
                IntegrationCreate(name=f"Hostile {name}", external_id=name, export_id=f"H_{name}"),
                CLI_ACTOR,
            )
            await create_webhook(
                session,
                integration.id,
                WebhookCreate(url=f"{hostile_url}{path}", event_types=["*"]),
                CLI_ACTOR,
                max_per_integration=runtime.settings.max_webhooks_per_integration,
            )
            integration_ids.append(integration.id)
    return integration_ids


_Columns = TypeVarTuple("_Columns")


def _healthy(query: Select[*_Columns], healthy: list[str]) -> Select[*_Columns]:
    return query.join(Webhook, Webhook.id == Delivery.webhook_id).where(
        Webhook.integration_id.in_(healthy)
    )


async def _tally(settings: Settings, healthy: list[str]) -> tuple[int, float, tuple[int, int, int]]:
    """The healthy webhooks' attempts, seconds from the first to the last, and their
    deliveries by final status."""
    runtime = await start_runtime(settings, migrate=False)
    try:
        async with transaction(runtime.sessions) as session:
            timing = _healthy(
                select(
                    func.count(), func.min(Attempt.attempted_at), func.max(Attempt.attempted_at)
                ).join(Delivery, Delivery.id == Attempt.delivery_id),
                healthy,
            )
            count, first, last = (await session.execute(timing)).one()
            statuses = _healthy(
                select(Delivery.status, func.count()).select_from(Delivery), healthy
            ).group_by(Delivery.status)
            by_status = {status: int(n) for status, n in await session.execute(statuses)}
    finally:
        await runtime.close()
    seconds = (last - first).total_seconds() if count > 1 else 0.0
    return (
        int(count),
        seconds,
        (
            by_status.get(DeliveryStatus.SUCCEEDED.value, 0),
            by_status.get(DeliveryStatus.FAILED.value, 0),
            by_status.get(DeliveryStatus.PENDING.value, 0),
        ),
    )
