"""Failures cost little: a backlog drained while the receiver answers 500 to a fixed tenth of
attempts, against the same drain with every attempt answered 204.

Throughput is the successful attempts per second while the backlog lasts: from the first
attempt to the last first attempt of a delivery, so that the retries of the last deliveries,
which wait out the schedule with nothing else to do, do not stretch the time. Both runs are
rated the same way.

Retry punctuality: while the worker runs, the harness reads the due time (`next_attempt_at`)
of every delivery waiting for a retry; the receiver notes when each attempt arrived. Lateness
is the arrival of a retry minus the due time set for it. The product's schedule has whole
seconds with ±20% jitter, so a due time cannot be derived afterwards, only read while it waits.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import httpx
from sqlalchemy import func, select

from bench.context import Context, progress
from bench.drain import DRAIN_CASES, DrainSetting, Ledger, queue_case, run_worker, tally
from bench.latency import percentile
from bench.receiver import fails
from bench.report import Figure, Report, Target
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime, start_runtime
from reflexblue.core.settings import Settings
from reflexblue.webhooks.models import Attempt, Delivery, DeliveryStatus

# Whole seconds is what the setting takes; two retries, so three attempts in all.
RETRY_SCHEDULE = "1,1"
ATTEMPTS_AT_MOST = 3
CASE = DRAIN_CASES[1]  # fan-out 1 over 16 webhooks: each webhook-id is one delivery


@dataclass(frozen=True)
class FailureRun:
    flaky: bool
    busy_seconds: float
    successes_in_window: int
    complete: bool
    ledger: Ledger
    expected_failed: int  # deliveries the receiver's rule fails on every attempt
    retries: int
    retries_timed: int  # retries whose due time the harness saw
    lateness_p50_ms: float
    lateness_p99_ms: float
    lateness_max_ms: float

    @property
    def successes_per_second(self) -> float:
        return self.successes_in_window / self.busy_seconds if self.busy_seconds > 0 else 0.0


@dataclass
class _DueTimes:
    """(webhook-id, attempts made) → when the next attempt is due, in seconds since the epoch."""

    seen: dict[tuple[str, int], float] = field(default_factory=dict)

    async def __call__(self, runtime: Runtime) -> None:
        async with transaction(runtime.sessions) as session:
            rows = await session.execute(
                select(Delivery.event_id, Delivery.attempt_count, Delivery.next_attempt_at).where(
                    Delivery.status == DeliveryStatus.PENDING.value, Delivery.attempt_count > 0
                )
            )
            for event_id, attempts, due in rows:
                if due is not None:
                    self.seen[(event_id, attempts)] = due.timestamp()


def run_failure_drain(
    setting: DrainSetting, received: Callable[[], int], *, flaky: bool
) -> FailureRun:
    """Queue, drain with the short retry schedule, and account for every delivery."""
    path = "/flaky" if flaky else ""
    setting = replace(
        setting,
        receiver_url=setting.receiver_url + path,
        environment={**setting.environment, "REFLEXBLUE_RETRY_SCHEDULE": RETRY_SCHEDULE},
    )
    settings = setting.settings()
    published = asyncio.run(queue_case(settings, CASE, setting))
    due_times = _DueTimes()
    run = run_worker(setting, received, observe=due_times if flaky else None)
    _, _, counts = asyncio.run(tally(settings))
    first, last_first, successes = asyncio.run(_busy_window(settings))
    arrivals = _take_arrivals(setting.receiver_url.removesuffix(path)) if flaky else []
    lateness = sorted(_lateness_ms(arrivals, due_times.seen))
    retries = sum(1 for _, attempt, _, _ in arrivals if attempt > 1)
    return FailureRun(
        flaky=flaky,
        busy_seconds=last_first - first,
        successes_in_window=successes,
        complete=run.complete,
        ledger=Ledger(published, *counts, received=run.received),
        expected_failed=_expected_failed(arrivals),
        retries=retries,
        retries_timed=len(lateness),
        lateness_p50_ms=percentile(lateness, 50),
        lateness_p99_ms=percentile(lateness, 99),
        lateness_max_ms=lateness[-1] if lateness else float("nan"),
    )


async def _busy_window(settings: Settings) -> tuple[float, float, int]:
    """The first attempt, the last first attempt of a delivery (epoch seconds), and the
    successful attempts up to then."""
    runtime = await start_runtime(settings, migrate=False)
    try:
        async with transaction(runtime.sessions) as session:
            firsts = (
                select(func.min(Attempt.attempted_at).label("first"))
                .group_by(Attempt.delivery_id)
                .subquery()
            )
            start, end = (
                await session.execute(select(func.min(firsts.c.first), func.max(firsts.c.first)))
            ).one()
            if start is None:
                return 0.0, 0.0, 0
            successes = await session.scalar(
                select(func.count()).where(Attempt.error.is_(None), Attempt.attempted_at <= end)
            )
    finally:
        await runtime.close()
    return _epoch(start), _epoch(end), int(successes or 0)


def _epoch(moment: object) -> float:
    # A backend may hand an aggregate back without the column's type: naive, or as text.
    if isinstance(moment, datetime):
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return datetime.fromisoformat(str(moment)).replace(tzinfo=UTC).timestamp()


def _take_arrivals(receiver_url: str) -> list[tuple[str, int, float, int]]:
    rows = httpx.get(f"{receiver_url}/arrivals", timeout=30.0).json()
    return [(str(w), int(a), float(t), int(s)) for w, a, t, s in rows]


def _lateness_ms(
    arrivals: list[tuple[str, int, float, int]], due: dict[tuple[str, int], float]
) -> list[float]:
    found = []
    for webhook_id, attempt, arrived, _ in arrivals:
        due_at = due.get((webhook_id, attempt - 1))
        if attempt > 1 and due_at is not None:
            found.append((arrived - due_at) * 1000)
    return found


def _expected_failed(arrivals: list[tuple[str, int, float, int]]) -> int:
    ids = {webhook_id for webhook_id, _, _, _ in arrivals}
    return sum(all(fails(i, n) for n in range(1, ATTEMPTS_AT_MOST + 1)) for i in ids)


def failure_figures() -> list[Figure]:
    return [
        Figure(
            "failures_drain",
            "Drain, 10% answered 500 (B: all 204)",
            "successes/s",
            Target("≥ 0.85 × all-success", ratio_at_least=0.85),
        ),
        Figure(
            "retry_lateness_p99",
            "Retry lateness p99 past due",
            "ms",
            Target("≤ 100 ms", at_most=100),
        ),
    ]


def run_failure_benchmark(context: Context) -> None:
    sizes, report = context.options.sizes, context.report
    for round_number in range(context.options.rounds):
        for flaky in (False, True):
            setting = context.setting(deliveries=sizes.failure_deliveries)
            run = run_failure_drain(setting, context.received, flaky=flaky)
            _record(report, run, round_number)
        progress(
            f"failures: {run.successes_per_second:,.0f} successes/s, "
            f"retry lateness p99 {run.lateness_p99_ms:,.0f} ms"
        )


def _record(report: Report, run: FailureRun, round_number: int) -> None:
    report.add_run("failures", run)
    where = f"failures, {'10% 500' if run.flaky else 'all 204'}, round {round_number + 1}"
    if not run.ledger.balanced:
        report.void.append(f"{where}: the ledger does not balance: {run.ledger}")
    if not run.complete:
        report.void.append(f"{where}: stopped at the time limit with deliveries pending")
    drain = report.figure("failures_drain")
    if not run.flaky:
        drain.baseline.append(run.successes_per_second)
        return
    drain.product.append(run.successes_per_second)
    report.figure("retry_lateness_p99").product.append(run.lateness_p99_ms)
    if run.ledger.failed != run.expected_failed:
        report.notes.append(
            f"{where}: {run.ledger.failed} deliveries failed for good where the receiver's rule "
            f"fails {run.expected_failed} on every attempt"
        )
    if run.retries_timed < run.retries:
        report.notes.append(
            f"{where}: the due time of {run.retries - run.retries_timed} of {run.retries} "
            "retries was not seen; lateness is over the others"
        )
