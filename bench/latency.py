"""Live latency: events published through `POST /api/management/events` on an open-loop
Poisson schedule to a `reflexblue serve` that delivers with its own worker, timed from each
event's planned send time to its webhook request's arrival at the receiver.

The baseline is the same schedule, client and body sent straight to the receiver, so the
ratio says what publishing, storing and delivering add to a bare request.

The maximum sustainable publish rate is taken as the closed-loop ingest rate of the same
server (64 requests in flight, its worker delivering alongside), measured once before the
rounds; the loads are a half and a tenth of it.
"""

import asyncio
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import httpx

from bench.context import Context, progress
from bench.drain import DrainSetting
from bench.ingest import EVENTS_PATH, WARMUP_REQUESTS, prepare_publisher
from bench.load import LoadSpec
from bench.open_loop import OpenLoopSpec
from bench.payload import EVENT_TYPE, event_data
from bench.processes import BenchError, free_port, measure_load, measure_open_loop, running
from bench.report import Figure, Report, Target

ARRIVAL_TIMEOUT_SECONDS = 60.0
ARRIVAL_POLL_SECONDS = 0.05
DIRECT_PATH = "/latency/direct"


@dataclass(frozen=True)
class LatencyTargets:
    product_url: str
    receiver_url: str
    token: str


@dataclass(frozen=True)
class LatencyRun:
    load: str  # "half" or "tenth" of the maximum rate
    path: str  # "product" or "baseline"
    rate_per_second: float
    sent: int
    accepted: int  # answered with the expected status
    arrived: int  # timed arrivals at the receiver
    late_starts: int  # sends the client itself started late
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def complete(self) -> bool:
        return self.accepted == self.sent and self.arrived >= self.accepted


@contextmanager
def latency_server(setting: DrainSetting) -> Iterator[LatencyTargets]:
    """`reflexblue serve` with its worker, on a fresh database whose one webhook points at the
    receiver's timed path."""
    timed = replace(setting, receiver_url=f"{setting.receiver_url}/latency")
    token = asyncio.run(prepare_publisher(timed))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = ["reflexblue", "serve", "--port", str(port)]
    with running(serve, setting.worker_environment(), ready_url=f"{url}/healthz"):
        yield LatencyTargets(url, setting.receiver_url, token)


def maximum_rate(targets: LatencyTargets, requests: int, concurrency: int) -> float:
    """Events/s the server accepts closed-loop; waits until all of them were delivered."""
    counter = _Counter(targets.receiver_url)
    before = counter()
    result = measure_load(
        LoadSpec(
            url=targets.product_url + EVENTS_PATH,
            requests=requests,
            concurrency=concurrency,
            expected_status=202,
            warmup=WARMUP_REQUESTS,
            headers=_publish_headers(targets.token),
            body=json.dumps({"type": EVENT_TYPE, "data": event_data(0)}),
        )
    )
    if result.unexpected:
        raise BenchError(f"{result.unexpected} publish requests failed while finding the rate")
    _wait_for_arrivals(counter, before + requests + WARMUP_REQUESTS)
    return result.per_second


def run_latency(
    targets: LatencyTargets, *, load: str, path: str, rate: float, requests: int, seed: int
) -> LatencyRun:
    """One open-loop run, on the product's path or straight to the receiver."""
    counter = _Counter(targets.receiver_url)
    _take_latencies(targets.receiver_url)  # anything left from before is not this run's
    before = counter()
    if path == "product":
        url, shape, status = targets.product_url + EVENTS_PATH, "event", 202
        headers = _publish_headers(targets.token)
    else:
        url, shape, status, headers = targets.receiver_url + DIRECT_PATH, "webhook", 204, {}
    spec = OpenLoopSpec(url, rate, requests, status, seed=seed, headers=headers, shape=shape)
    result = measure_open_loop(spec)
    accepted = requests - result.unexpected
    _wait_for_arrivals(counter, before + accepted)
    latencies = sorted(_take_latencies(targets.receiver_url))
    return LatencyRun(
        load,
        path,
        rate,
        requests,
        accepted,
        len(latencies),
        result.late_starts,
        percentile(latencies, 50),
        percentile(latencies, 99),
        latencies[-1] if latencies else math.nan,
    )


def percentile(ordered: list[float], share: float) -> float:
    """The nearest-rank percentile of sorted values."""
    if not ordered:
        return math.nan
    rank = max(math.ceil(share / 100 * len(ordered)), 1)
    return ordered[rank - 1]


class _Counter:
    def __init__(self, receiver_url: str) -> None:
        self._url = f"{receiver_url}/count"

    def __call__(self) -> int:
        return int(httpx.get(self._url, timeout=5.0).text)


def _publish_headers(token: str) -> dict[str, str]:
    return {"content-type": "application/json", "authorization": f"Bearer {token}"}


def _take_latencies(receiver_url: str) -> list[float]:
    taken: list[float] = httpx.get(f"{receiver_url}/latencies", timeout=30.0).json()
    return taken


def _wait_for_arrivals(count: Callable[[], int], expected: int) -> None:
    """Until the receiver has counted `expected` requests, or the timeout passes (the caller's
    ledger then shows what is missing)."""
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_SECONDS
    while count() < expected and time.monotonic() < deadline:
        time.sleep(ARRIVAL_POLL_SECONDS)


def latency_figures() -> list[Figure]:
    return [
        Figure("latency_rate", "Live latency: maximum publish rate", "events/s"),
        Figure("latency_half_p50", "Live latency p50, ½ rate", "ms", Target("≤ 5 ms", at_most=5)),
        Figure("latency_half_p99", "Live latency p99, ½ rate", "ms", Target("≤ 25 ms", at_most=25)),
        Figure(
            "latency_tenth_p99", "Live latency p99, ⅒ rate", "ms", Target("≤ 10 ms", at_most=10)
        ),
    ]


def run_latency_benchmark(context: Context) -> None:
    """The rate once, then per round: the baseline and the product at half the rate, then
    both at a tenth."""
    sizes, report = context.options.sizes, context.report
    with latency_server(context.setting()) as targets:
        rate = maximum_rate(targets, sizes.ingest_requests, sizes.concurrency)
        report.figure("latency_rate").product.append(rate)
        progress(f"latency: maximum publish rate {rate:,.0f}/s")
        loads = (
            ("half", 0.5, sizes.latency_half_events),
            ("tenth", 0.1, sizes.latency_tenth_events),
        )
        for round_number in range(context.options.rounds):
            for load, share, events in loads:
                for path in ("baseline", "product"):
                    run = run_latency(
                        targets,
                        load=load,
                        path=path,
                        rate=rate * share,
                        requests=events,
                        seed=round_number,
                    )
                    _record(report, run)
            progress(f"latency: round {round_number + 1} done")


def _record(report: Report, run: LatencyRun) -> None:
    report.add_run("latency", run)
    where = f"latency, {run.path} at {run.load} rate"
    if not run.complete:
        report.void.append(
            f"{where}: {run.sent} sent, {run.accepted} accepted, {run.arrived} arrived"
        )
    if run.late_starts > run.sent // 100:
        report.notes.append(f"{where}: the client started {run.late_starts} sends late")
    side = "product" if run.path == "product" else "baseline"
    if run.load == "half":
        getattr(report.figure("latency_half_p50"), side).append(run.p50_ms)
        getattr(report.figure("latency_half_p99"), side).append(run.p99_ms)
    else:
        getattr(report.figure("latency_tenth_p99"), side).append(run.p99_ms)
