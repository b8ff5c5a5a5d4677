"""What every benchmark of one command shares: the sizes, the options, the databases, the
receiver and the report."""

import base64
import secrets
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from bench.databases import DatabaseFactory
from bench.drain import DrainSetting
from bench.load import LoadResult
from bench.report import Report

_STARTED = time.monotonic()


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
    latency_half_events: int  # published per open-loop run at half the maximum rate
    latency_tenth_events: int  # and at a tenth of it
    failure_deliveries: int  # per drain of the failures figure
    memory_deliveries: int  # the drain whose peak RSS is measured
    soak_minutes: float
    seeded_deliveries: int  # finished deliveries already in the big database
    seeded_integrations: int
    page_requests: int  # requests per list page timing
    hostile_deliveries: int  # to the healthy webhooks, per drain
    flood_seconds: float  # of measured load per run of the flood benchmark


FULL = Sizes(
    deliveries=50_000,
    baseline_requests=50_000,
    concurrency=64,
    ingest_requests=5_000,
    batches=10,
    batch_events=1_000,
    signing_loops=200_000,
    drain_limit_seconds=120.0,
    latency_half_events=3_000,
    latency_tenth_events=600,
    failure_deliveries=20_000,
    memory_deliveries=100_000,
    soak_minutes=10.0,
    seeded_deliveries=1_000_000,
    seeded_integrations=100_000,
    page_requests=500,
    hostile_deliveries=20_000,
    flood_seconds=20.0,
)
QUICK = replace(
    FULL,
    deliveries=2_000,
    baseline_requests=2_000,
    ingest_requests=200,
    batches=2,
    signing_loops=20_000,
    drain_limit_seconds=60.0,
    latency_half_events=200,
    latency_tenth_events=60,
    failure_deliveries=2_000,
    memory_deliveries=5_000,
    soak_minutes=0.5,
    seeded_deliveries=5_000,
    seeded_integrations=1_000,
    page_requests=30,
    hostile_deliveries=2_000,
    flood_seconds=1.0,
)
# What `--only` accepts, in the order a full run takes them.
BENCHMARKS = (
    "drains",
    "ingest",
    "latency",
    "failures",
    "hostile",
    "flood",
    "big_tables",
    "soak",
    "signing",
)


@dataclass(frozen=True)
class Options:
    postgresql: bool
    quick: bool
    rounds: int
    json_path: Path
    deliveries: int | None = None
    drain_limit_seconds: float | None = None
    profile_folder: Path | None = None
    only: tuple[str, ...] = BENCHMARKS
    soak_minutes: float | None = None

    @property
    def sizes(self) -> Sizes:
        chosen = QUICK if self.quick else FULL
        if self.deliveries is not None:
            chosen = replace(chosen, deliveries=self.deliveries, baseline_requests=self.deliveries)
        if self.drain_limit_seconds is not None:
            chosen = replace(chosen, drain_limit_seconds=self.drain_limit_seconds)
        if self.soak_minutes is not None:
            chosen = replace(chosen, soak_minutes=self.soak_minutes)
        return chosen


@dataclass
class Context:
    options: Options
    report: Report
    databases: DatabaseFactory
    folder: Path
    receiver_url: str
    master_key: str = ""
    runs: int = 0

    def __post_init__(self) -> None:
        self.master_key = base64.b64encode(secrets.token_bytes(32)).decode()

    def setting(
        self, profile_path: Path | None = None, deliveries: int | None = None
    ) -> DrainSetting:
        self.runs += 1
        data_folder = self.folder / f"data-{self.runs}"
        data_folder.mkdir()
        return DrainSetting(
            database_url=self.databases.create(),
            folder=data_folder,
            master_key=self.master_key,
            receiver_url=self.receiver_url,
            deliveries=deliveries or self.options.sizes.deliveries,
            limit_seconds=self.options.sizes.drain_limit_seconds,
            profile_path=profile_path,
        )

    def received(self) -> int:
        return int(httpx.get(f"{self.receiver_url}/count", timeout=5.0).text)


def progress(message: str) -> None:
    """A line on stderr while a run of several minutes goes on; the table comes at the end."""
    print(f"[{time.monotonic() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def check_load(report: Report, what: str, result: LoadResult) -> None:
    if result.unexpected:
        report.void.append(f"{what}: {result.unexpected} requests failed or got another status")
