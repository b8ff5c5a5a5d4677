"""One benchmark command: every figure, each baseline run just before the product's run of the
same figure, round after round, so that drift on a shared machine touches both alike."""

import base64
import secrets
import shutil
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import httpx

from bench.databases import DatabaseFactory, bench_databases, scratch_folder
from bench.drain import DRAIN_CASES, DrainCase, DrainRun, DrainSetting, run_drain
from bench.ingest import IngestRound, ingest_servers, run_ingest_round
from bench.load import LoadResult, LoadSpec
from bench.processes import free_port, measure_load, running
from bench.report import Figure, Report, Target
from bench.signing import run_signing_round

MIB = 1024 * 1024
_STARTED = time.monotonic()
DELIVERY_TARGET = Target("≥ 0.80 × B (stretch 0.90)", ratio_at_least=0.80)


@dataclass(frozen=True)
class Sizes:
    deliveries: int  # queued per drain run
    baseline_requests: int  # per run of B
    concurrency: int  # requests in flight for B and for the ingest clients
    ingest_requests: int
    batches: int  # batch requests per ingest round
    batch_events: int
    signing_loops: int
    drain_limit_seconds: float  # a drain still running then is stopped and reported incomplete


FULL = Sizes(50_000, 50_000, 64, 5_000, 10, 1_000, 200_000, 120.0)
QUICK = Sizes(2_000, 2_000, 64, 200, 2, 1_000, 20_000, 60.0)


@dataclass(frozen=True)
class Options:
    postgresql: bool
    quick: bool
    rounds: int
    json_path: Path
    deliveries: int | None = None
    drain_limit_seconds: float | None = None
    profile_folder: Path | None = None

    @property
    def sizes(self) -> Sizes:
        chosen = QUICK if self.quick else FULL
        if self.deliveries is not None:
            chosen = replace(chosen, deliveries=self.deliveries, baseline_requests=self.deliveries)
        if self.drain_limit_seconds is not None:
            chosen = replace(chosen, drain_limit_seconds=self.drain_limit_seconds)
        return chosen


def run_benchmarks(options: Options) -> Report:
    sizes = options.sizes
    report = Report("postgresql" if options.postgresql else "sqlite", options.rounds, asdict(sizes))
    report.figures = _figures()
    folder = scratch_folder()
    try:
        with ExitStack() as stack:
            receiver_url = _start_receiver(stack)
            databases = stack.enter_context(bench_databases(folder, postgresql=options.postgresql))
            context = _Context(options, report, databases, folder, receiver_url)
            _drains(context)
            _ingest(context)
        _signing(options, report)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return report


def _figures() -> list[Figure]:
    drains = [Figure(c.key, c.label, "deliveries/s", DELIVERY_TARGET) for c in DRAIN_CASES]
    return [
        *drains,
        Figure("ingest", "Ingest, POST /events", "requests/s", Target("≥ 0.50", 0.50)),
        Figure("ingest_batch", "Ingest, POST /events/batch", "events/s"),
        Figure("signing", "Signing, 1 KiB body", "µs/call", Target("≤ 5 µs", at_most=5.0)),
        Figure("worker_peak_rss", "Worker peak RSS", "MiB", Target("≤ 200 MiB", at_most=200)),
    ]


@dataclass
class _Context:
    options: Options
    report: Report
    databases: DatabaseFactory
    folder: Path
    receiver_url: str
    master_key: str = ""
    runs: int = 0

    def __post_init__(self) -> None:
        self.master_key = base64.b64encode(secrets.token_bytes(32)).decode()

    def setting(self, profile_path: Path | None = None) -> DrainSetting:
        self.runs += 1
        data_folder = self.folder / f"data-{self.runs}"
        data_folder.mkdir()
        return DrainSetting(
            database_url=self.databases.create(),
            folder=data_folder,
            master_key=self.master_key,
            receiver_url=self.receiver_url,
            deliveries=self.options.sizes.deliveries,
            limit_seconds=self.options.sizes.drain_limit_seconds,
            profile_path=profile_path,
        )

    def received(self) -> int:
        return int(httpx.get(f"{self.receiver_url}/count", timeout=5.0).text)


def _start_receiver(stack: ExitStack) -> str:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stack.enter_context(running(["bench.receiver", str(port)], {}, ready_url=f"{url}/count"))
    return url


def _drains(context: _Context) -> None:
    report = context.report
    for round_number in range(context.options.rounds):
        peaks = []
        for case in DRAIN_CASES:
            figure = report.figure(case.key)
            figure.baseline.append(_baseline(context).per_second)
            run = _drain(context, case, round_number)
            _progress(f"{case.label}: {run.deliveries_per_second:,.0f}/s")
            report.add_run("drains", run)
            figure.product.append(run.deliveries_per_second)
            peaks.append(run.peak_rss_bytes / MIB)
            _check_drain(report, run, round_number)
        report.figure("worker_peak_rss").product.append(max(peaks))


def _drain(context: _Context, case: DrainCase, round_number: int) -> DrainRun:
    profile = context.options.profile_folder
    path = profile / f"{case.key}.txt" if profile and round_number == 0 else None
    return run_drain(case, context.setting(path), context.received)


def _baseline(context: _Context) -> LoadResult:
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
    _check_load(context.report, "baseline B", result)
    context.report.add_run("baseline", result)
    return result


def _progress(message: str) -> None:
    """A line on stderr while a run of several minutes goes on; the table comes at the end."""
    print(f"[{time.monotonic() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


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


def _check_load(report: Report, what: str, result: LoadResult) -> None:
    if result.unexpected:
        report.void.append(f"{what}: {result.unexpected} requests failed or got another status")


def _ingest(context: _Context) -> None:
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
            _progress(f"ingest: {ingest.product.per_second:,.0f}/s")


def _record_ingest(report: Report, ingest: IngestRound) -> None:
    report.add_run("ingest", ingest)
    _check_load(report, "ingest, bare endpoint", ingest.bare)
    _check_load(report, "ingest, product", ingest.product)
    _check_load(report, "ingest, batch", ingest.batch)
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
