"""One benchmark command: every figure, each baseline run just before the product's run of the
same figure, round after round, so that drift on a shared machine touches both alike."""

import base64
import secrets
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass

from bench.big_tables import big_table_figures, run_big_tables_benchmark
from bench.context import Context, Options, check_load, progress
from bench.databases import bench_databases, scratch_folder
from bench.drain import DRAIN_CASES, DrainCase, DrainRun, run_drain
from bench.failures import failure_figures, run_failure_benchmark
from bench.flood import flood_figures, run_flood_benchmark
from bench.hostile import hostile_figures, run_hostile_benchmark
from bench.ingest import IngestRound, ingest_servers, run_ingest_round
from bench.latency import latency_figures, run_latency_benchmark
from bench.load import LoadResult, LoadSpec
from bench.processes import free_port, measure_load, running
from bench.report import Figure, Report, Target
from bench.signing import run_signing_round
from bench.soak import run_soak_benchmark, soak_figures

MIB = 1024 * 1024
DELIVERY_TARGET = Target("≥ 0.80 × B (stretch 0.90)", ratio_at_least=0.80)
# The CPU form of the delivery target: what a worker that kept up with 0.80 times B on a core of
# its own could spend per delivery, against what B spends per request.
CPU_TARGET = Target("≤ 1.25 × B's", ratio_at_most=1.25)


def run_benchmarks(options: Options) -> Report:
    sizes = options.sizes
    report = Report("postgresql" if options.postgresql else "sqlite", options.rounds, asdict(sizes))
    report.figures = [f for name in options.only for f in _figures()[name]]
    folder = scratch_folder()
    steps: dict[str, Callable[[Context], None]] = {
        "drains": _drains,
        "ingest": _ingest,
        "latency": run_latency_benchmark,
        "failures": run_failure_benchmark,
        "hostile": run_hostile_benchmark,
        "flood": run_flood_benchmark,
        "big_tables": run_big_tables_benchmark,
        "soak": run_soak_benchmark,
    }
    try:
        with ExitStack() as stack:
            receiver_url = _start_receiver(stack)
            databases = stack.enter_context(bench_databases(folder, postgresql=options.postgresql))
            context = Context(options, report, databases, folder, receiver_url)
            for name in options.only:
                if name in steps:
                    steps[name](context)
        if "signing" in options.only:
            _signing(options, report)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return report


def _figures() -> dict[str, list[Figure]]:
    drains = [Figure(c.key, c.label, "deliveries/s", DELIVERY_TARGET) for c in DRAIN_CASES]
    return {
        "drains": [
            *drains,
            Figure("worker_peak_rss", "Worker peak RSS", "MiB", Target("≤ 200 MiB", at_most=200)),
            Figure("drain_cpu", "Drain CPU per delivery, all drains", "µs", CPU_TARGET),
        ],
        "ingest": [
            Figure("ingest", "Ingest, POST /events", "requests/s", Target("≥ 0.50", 0.50)),
            Figure("ingest_batch", "Ingest, POST /events/batch", "events/s"),
        ],
        "latency": latency_figures(),
        "failures": failure_figures(),
        "hostile": hostile_figures(),
        "flood": flood_figures(),
        "big_tables": big_table_figures(),
        "soak": soak_figures(),
        "signing": [
            Figure("signing", "Signing, 1 KiB body", "µs/call", Target("≤ 5 µs", at_most=5.0)),
        ],
    }


def _start_receiver(stack: ExitStack) -> str:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stack.enter_context(running(["bench.receiver", str(port)], {}, ready_url=f"{url}/count"))
    return url


def _drains(context: Context) -> None:
    report = context.report
    for round_number in range(context.options.rounds):
        peaks = []
        spent = _CpuSpent()
        for case in DRAIN_CASES:
            figure = report.figure(case.key)
            baseline = _baseline(context)
            figure.baseline.append(baseline.per_second)
            run = _drain(context, case, round_number)
            progress(f"{case.label}: {run.deliveries_per_second:,.0f}/s")
            report.add_run("drains", run)
            figure.product.append(run.deliveries_per_second)
            spent.add(baseline, run)
            peaks.append(run.peak_rss_bytes / MIB)
            _check_drain(report, run, round_number)
        report.figure("worker_peak_rss").product.append(max(peaks))
        cpu = report.figure("drain_cpu")
        cpu.baseline.append(spent.baseline_per_request)
        cpu.product.append(spent.worker_per_attempt)


@dataclass
class _CpuSpent:
    """CPU time of one round's drains and of their baselines, in µs per request sent."""

    baseline_seconds: float = 0.0
    baseline_requests: int = 0
    worker_seconds: float = 0.0
    worker_attempts: int = 0

    def add(self, baseline: LoadResult, run: DrainRun) -> None:
        self.baseline_seconds += baseline.cpu_seconds
        self.baseline_requests += baseline.requests
        self.worker_seconds += run.worker_cpu_seconds
        self.worker_attempts += run.attempts

    @property
    def baseline_per_request(self) -> float:
        return 1e6 * self.baseline_seconds / max(self.baseline_requests, 1)

    @property
    def worker_per_attempt(self) -> float:
        return 1e6 * self.worker_seconds / max(self.worker_attempts, 1)


def _drain(context: Context, case: DrainCase, round_number: int) -> DrainRun:
    profile = context.options.profile_folder
    path = profile / f"{case.key}.txt" if profile and round_number == 0 else None
    return run_drain(case, context.setting(path), context.received)


def _baseline(context: Context) -> LoadResult:
    """B: the bare signed sender, as many requests as a drain delivers, 64 in flight."""
    sizes = context.options.sizes
    result = measure_load(
        LoadSpec(
            url=f"{context.receiver_url}/baseline",
            requests=sizes.baseline_requests,
            concurrency=sizes.concurrency,
            expected_status=204,
            signing_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        )
    )
    check_load(context.report, "baseline B", result)
    context.report.add_run("baseline", result)
    return result


def _check_drain(report: Report, run: DrainRun, round_number: int) -> None:
    where = f"{run.case}, round {round_number + 1}"
    if not run.ledger.balanced:
        report.void.append(f"{where}: the ledger does not balance: {run.ledger}")
    if run.attempts < 2:
        report.void.append(f"{where}: fewer than two attempts were made")
    if not run.complete:
        report.notes.append(
            f"{where}: stopped at the time limit with {run.ledger.pending:,} deliveries pending; "
            f"rated over the {run.attempts:,} attempts made"
        )


def _ingest(context: Context) -> None:
    sizes = context.options.sizes
    report = context.report
    with ingest_servers(context.setting()) as targets:
        for _ in range(context.options.rounds):
            ingest = run_ingest_round(
                targets,
                requests=sizes.ingest_requests,
                concurrency=sizes.concurrency,
                batches=sizes.batches,
                batch_events=sizes.batch_events,
            )
            _record_ingest(report, ingest)
            progress(f"ingest: {ingest.product.per_second:,.0f}/s")


def _record_ingest(report: Report, ingest: IngestRound) -> None:
    report.add_run("ingest", ingest)
    check_load(report, "ingest, bare endpoint", ingest.bare)
    check_load(report, "ingest, product", ingest.product)
    check_load(report, "ingest, batch", ingest.batch)
    single = report.figure("ingest")
    single.baseline.append(ingest.bare.per_second)
    single.product.append(ingest.product.per_second)
    report.figure("ingest_batch").product.append(ingest.batch_events_per_second)


def _signing(options: Options, report: Report) -> None:
    figure = report.figure("signing")
    for _ in range(options.rounds):
        result = run_signing_round(options.sizes.signing_loops)
        report.add_run("signing", result)
        figure.baseline.append(result.bare_microseconds)
        figure.product.append(result.product_microseconds)
