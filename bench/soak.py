"""Memory: the worker's peak resident memory while it drains a large backlog, and a soak at
half load (events published at half the rate that drain reached) that shows whether its memory
or its throughput drifts over the minutes.

Both run once per command, whatever `--rounds` says: each takes minutes. The soak's start is
taken at the end of its first fifth, so that the worker's warm-up is not mistaken for growth;
throughput is the receiver's count over the first fifth and over the last.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bench.context import Context, progress
from bench.drain import (
    DRAIN_CASES,
    DrainRun,
    DrainSetting,
    pending_deliveries,
    publish_to,
    run_drain,
    subscribe_receiver,
)
from bench.processes import free_port, peak_rss_bytes, resident_bytes, running
from bench.report import Figure, Report, Target
from reflexblue.core.runtime import start_runtime
from reflexblue.core.settings import Settings

MIB = 1024 * 1024
CASE = DRAIN_CASES[1]  # fan-out 1 over 16 webhooks
PUBLISH_TICK_SECONDS = 0.1
SAMPLE_INTERVAL_SECONDS = 2.0
MEMORY_DRAIN_LIMIT_SECONDS = 900.0
SOAK_LOAD_SHARE = 0.5


@dataclass(frozen=True)
class Sample:
    seconds: float  # since the soak began
    received: int  # the receiver's count since the soak began
    rss_bytes: int


@dataclass
class SoakRun:
    rate_per_second: float  # events published per second, one delivery each
    minutes: float
    published: int = 0
    delivered: int = 0
    pending_at_end: int = 0
    peak_rss_bytes: int = 0
    samples: list[Sample] = field(default_factory=list)

    @property
    def start_rss_mib(self) -> float:
        return self._at_fifth(1).rss_bytes / MIB

    @property
    def end_rss_mib(self) -> float:
        return self.samples[-1].rss_bytes / MIB

    @property
    def first_fifth_per_second(self) -> float:
        return self._rate(self.samples[0], self._at_fifth(1))

    @property
    def last_fifth_per_second(self) -> float:
        return self._rate(self._at_fifth(4), self.samples[-1])

    def _at_fifth(self, fifths: int) -> Sample:
        moment = self.minutes * 60 * fifths / 5
        return min(self.samples, key=lambda sample: abs(sample.seconds - moment))

    @staticmethod
    def _rate(first: Sample, last: Sample) -> float:
        seconds = last.seconds - first.seconds
        return (last.received - first.received) / seconds if seconds > 0 else 0.0


def soak_figures() -> list[Figure]:
    return [
        Figure(
            "worker_peak_rss_big_drain",
            "Worker peak RSS, big drain",
            "MiB",
            Target("≤ 200 MiB", at_most=200),
        ),
        Figure(
            "soak_rss",
            "Soak: worker RSS at end (B: start)",
            "MiB",
            Target("≤ 1.10 × start", ratio_at_most=1.10),
        ),
        Figure(
            "soak_throughput",
            "Soak: deliveries/s, last fifth (B: first)",
            "deliveries/s",
            Target("0.90–1.10 × first", ratio_at_least=0.90, ratio_at_most=1.10),
        ),
    ]


def run_soak_benchmark(context: Context) -> None:
    sizes, report = context.options.sizes, context.report
    setting = context.setting(deliveries=sizes.memory_deliveries)
    setting = replace(setting, limit_seconds=max(setting.limit_seconds, MEMORY_DRAIN_LIMIT_SECONDS))
    drain = run_drain(CASE, setting, context.received)
    _check_drain(report, drain)
    report.figure("worker_peak_rss_big_drain").product.append(drain.peak_rss_bytes / MIB)
    progress(
        f"memory: peak {drain.peak_rss_bytes / MIB:,.0f} MiB draining {drain.ledger.published:,} "
        f"at {drain.deliveries_per_second:,.0f}/s"
    )
    rate = drain.deliveries_per_second * SOAK_LOAD_SHARE
    soak = run_soak(context.setting(), context.received, rate, sizes.soak_minutes)
    _record_soak(report, soak)
    progress(
        f"soak: RSS {soak.start_rss_mib:,.0f} → {soak.end_rss_mib:,.0f} MiB, "
        f"{soak.first_fifth_per_second:,.0f} → {soak.last_fifth_per_second:,.0f} deliveries/s"
    )


def _check_drain(report: Report, drain: DrainRun) -> None:
    report.add_run("memory_drain", drain)
    if not drain.ledger.balanced:
        report.void.append(f"memory drain: the ledger does not balance: {drain.ledger}")
    if not drain.complete:
        report.notes.append(
            f"memory drain: stopped at the time limit with {drain.ledger.pending:,} pending"
        )


def _record_soak(report: Report, soak: SoakRun) -> None:
    report.add_run("soak", soak)
    if soak.delivered < soak.published - soak.pending_at_end:
        report.void.append(
            f"soak: {soak.published:,} published, {soak.delivered:,} arrived, "
            f"{soak.pending_at_end:,} pending at the end"
        )
    rss = report.figure("soak_rss")
    rss.product.append(soak.end_rss_mib)
    rss.baseline.append(soak.start_rss_mib)
    throughput = report.figure("soak_throughput")
    throughput.product.append(soak.last_fifth_per_second)
    throughput.baseline.append(soak.first_fifth_per_second)


def run_soak(
    setting: DrainSetting, received: Callable[[], int], rate: float, minutes: float
) -> SoakRun:
    """One worker (its own process) while events are published at `rate` for `minutes`."""
    settings = setting.settings()
    integration_ids = asyncio.run(_subscribe(setting))
    port = free_port()
    environment = {**setting.worker_environment(), "REFLEXBLUE_WORKER_METRICS_PORT": str(port)}
    soak = SoakRun(rate, minutes)
    ready = f"http://127.0.0.1:{port}/healthz"
    with running(["reflexblue", "worker"], environment, ready_url=ready) as worker:
        before = received()
        asyncio.run(
            _publish_and_sample(settings, integration_ids, soak, worker.pid, received, before)
        )
        soak.pending_at_end = asyncio.run(_pending(setting))
        soak.peak_rss_bytes = peak_rss_bytes(worker.pid)
        soak.delivered = received() - before
    return soak


async def _subscribe(setting: DrainSetting) -> list[str]:
    runtime = await start_runtime(setting.settings())
    try:
        return await subscribe_receiver(runtime, CASE, setting.receiver_url)
    finally:
        await runtime.close()


async def _publish_and_sample(
    settings: Settings,
    integration_ids: list[str],
    soak: SoakRun,
    worker_pid: int,
    received: Callable[[], int],
    received_before: int,
) -> None:
    """Publish on a steady schedule (the events owed so far, every tick) and note the
    receiver's count and the worker's memory every few seconds."""
    runtime = await start_runtime(settings, migrate=False)
    loop = asyncio.get_running_loop()
    started = loop.time()
    next_sample = 0.0
    try:
        while (elapsed := loop.time() - started) < soak.minutes * 60:
            owed = int(elapsed * soak.rate_per_second) - soak.published
            if owed > 0:
                soak.published += await publish_to(
                    runtime, integration_ids, owed, first=soak.published
                )
            if elapsed >= next_sample:
                count = await asyncio.to_thread(received)
                sample = Sample(elapsed, count - received_before, resident_bytes(worker_pid))
                soak.samples.append(sample)
                next_sample += SAMPLE_INTERVAL_SECONDS
            await asyncio.sleep(PUBLISH_TICK_SECONDS)
        count = await asyncio.to_thread(received)
        soak.samples.append(
            Sample(loop.time() - started, count - received_before, resident_bytes(worker_pid))
        )
    finally:
        await runtime.close()


async def _pending(setting: DrainSetting) -> int:
    runtime = await start_runtime(setting.settings(), migrate=False)
    try:
        return await pending_deliveries(runtime)
    finally:
        await runtime.close()
