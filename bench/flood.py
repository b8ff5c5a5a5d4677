"""Floods: how much legitimate requests slow down while another process sends about 1,000
requests a second of bad API keys at the External API, or of bad sign-ins at the console.

One `reflexblue serve --no-worker`, at its default settings, on a fresh database. The measured
load comes from 127.0.0.1: `GET /api/external/v1/integration` with a valid API key and the
integrations overview with a signed-in session, each on an open-loop Poisson schedule, timed
from each request's planned moment to the end of its answer. The flood comes from 127.0.0.2,
in a process of its own, on an even open-loop schedule: a fresh random key in every request,
or a sign-in with a fresh random password and a valid login-form CSRF pair.

The baseline is the same measured load with no flood, run just before the floods in every
round; the figures are the p50 and p99 latencies, product (under the flood) over baseline.
Legitimate requests that fail beside a flood are noted as a result, not voided. After each
flood the server is given time to work off what the flood left queued before the next run.
"""

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import IO

import httpx

from bench.context import Context, progress
from bench.drain import DrainSetting
from bench.flood_client import STARTED_LINE, ClientResult, ClientSpec, Stream, StreamResult
from bench.latency import percentile
from bench.processes import REPOSITORY, BenchError, environment, free_port, running
from bench.report import Figure, Report, Target
from reflexblue.accounts.models import Role
from reflexblue.accounts.schemas import UserCreate
from reflexblue.accounts.service import create_user
from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.runtime import start_runtime
from reflexblue.integrations.api_keys import ApiKeyCreate, create_api_key
from reflexblue.integrations.schemas import IntegrationCreate
from reflexblue.integrations.service import create_integration

FLOOD_RATE_PER_SECOND = 1000.0
# Per measured stream: well inside one API key's default rate limit of 50 a second.
MEASURED_RATE_PER_SECOND = 25.0
MEASURED_ADDRESS = "127.0.0.1"
FLOOD_ADDRESS = "127.0.0.2"
WARMUP_REQUESTS = 20
# Settled: this many health checks in a row answered within SETTLED_MS, or the time is up.
SETTLED_CHECKS = 5
SETTLED_MS = 20.0
SETTLE_LIMIT_SECONDS = 60.0
CLIENT_TIMEOUT_SECONDS = 120.0
INTEGRATION_PATH = "/api/external/v1/integration"
OVERVIEW_PATH = "/management/general/integrations"
USERNAME = "bench"
PASSWORD = "bench password, long enough"  # of a throwaway database that lives for one command
FLOODS = {"keys": "bad-key flood", "logins": "bad sign-in flood"}
MEASURED = {"api": "External API", "console": "Console page"}
# The bodies the sign-in flood sends: a CSRF pair that passes, a name that is nobody's.
_FLOOD_CSRF = "flood-form-token"
_FLOOD_LOGIN_BODY = f"csrf_token={_FLOOD_CSRF}&username=mallory"
RATIO_TARGET = Target("≤ 2.0 × without", ratio_at_most=2.0)


@dataclass(frozen=True)
class FloodTargets:
    url: str
    api_key: str
    session_cookie: str


@dataclass(frozen=True)
class MeasuredStream:
    sent: int
    unexpected: int
    late_starts: int
    statuses: dict[str, int]
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class FloodRun:
    flood: str  # "none" for the baseline, else a key of FLOODS
    api: MeasuredStream
    console: MeasuredStream
    flood_sent: int
    flood_seconds: float
    flood_statuses: dict[str, int]
    flood_unexpected: int  # answers other than 401 and 429, failed or unanswered requests
    flood_late_starts: int

    @property
    def flood_per_second(self) -> float:
        return self.flood_sent / self.flood_seconds if self.flood_seconds > 0 else 0.0


def flood_figures() -> list[Figure]:
    figures = [
        Figure(
            f"flood_{flood}_{stream}_{share}",
            f"{label}, {share} under a {flood_label} (B: none)",
            "ms",
            RATIO_TARGET,
        )
        for flood, flood_label in FLOODS.items()
        for stream, label in MEASURED.items()
        for share in ("p50", "p99")
    ]
    figures.extend(
        Figure(f"flood_{flood}_rate", f"Flood sent, {flood_label}", "requests/s")
        for flood, flood_label in FLOODS.items()
    )
    return figures


def run_flood_benchmark(context: Context) -> None:
    """Per round: the measured load alone, then beside each flood in turn."""
    seconds, report = context.options.sizes.flood_seconds, context.report
    with flood_server(context.setting()) as targets:
        for round_number in range(context.options.rounds):
            for flood in ("none", *FLOODS):
                run = run_flood(targets, flood, seconds, seed=round_number)
                _record(report, run, round_number)
            progress(
                f"flood: round {round_number + 1}: External API p99 {run.api.p99_ms:.1f} ms "
                f"beside {run.flood_per_second:,.0f} bad sign-ins/s"
            )


@contextmanager
def flood_server(setting: DrainSetting) -> Iterator[FloodTargets]:
    """`reflexblue serve --no-worker` on a fresh database, with an integration's API key and a
    signed-in console session, both used a few times before the clock starts."""
    api_key = asyncio.run(_prepare(setting))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = ["reflexblue", "serve", "--no-worker", "--port", str(port)]
    # The product's default log level: the access line of every refused request is part of
    # what a flood costs.
    env = {**setting.worker_environment(), "REFLEXBLUE_LOG_LEVEL": "INFO"}
    with running(serve, env, ready_url=f"{url}/healthz"):
        targets = FloodTargets(url, api_key, _sign_in(url))
        _warm_up(targets)
        yield targets


async def _prepare(setting: DrainSetting) -> str:
    runtime = await start_runtime(setting.settings())
    try:
        async with transaction(runtime.sessions) as session:
            data = IntegrationCreate(name="Flood bench", external_id="FLOOD", export_id="FLOOD")
            integration = await create_integration(session, runtime.box, data, CLI_ACTOR)
            created = await create_api_key(
                session, integration.id, ApiKeyCreate(name="bench"), CLI_ACTOR
            )
            user = UserCreate(username=USERNAME, password=PASSWORD, role=Role.ADMIN)
            await create_user(session, user, CLI_ACTOR)
        return created.key
    finally:
        await runtime.close()


def _sign_in(url: str) -> str:
    with httpx.Client(base_url=url, timeout=30.0) as client:
        client.get("/login")
        csrf = client.cookies["reflexblue_login_csrf"]
        answer = client.post(
            "/login", data={"csrf_token": csrf, "username": USERNAME, "password": PASSWORD}
        )
        if answer.status_code != 303:
            raise BenchError(f"the bench user could not sign in: {answer.status_code}")
        return client.cookies["reflexblue_session"]


def _warm_up(targets: FloodTargets) -> None:
    with httpx.Client(base_url=targets.url, timeout=30.0) as client:
        for _ in range(WARMUP_REQUESTS):
            for path, headers in _measured_requests(targets):
                answer = client.get(path, headers=headers)
                if answer.status_code != 200:
                    raise BenchError(f"warming up, {path} answered {answer.status_code}")


def _measured_requests(targets: FloodTargets) -> list[tuple[str, dict[str, str]]]:
    return [
        (INTEGRATION_PATH, {"Authorization": f"Bearer {targets.api_key}"}),
        (OVERVIEW_PATH, {"Cookie": f"reflexblue_session={targets.session_cookie}"}),
    ]


def run_flood(targets: FloodTargets, flood: str, seconds: float, *, seed: int) -> FloodRun:
    """The measured load for `seconds`, beside the flood unless `flood` is "none"."""
    measured = _measured_spec(targets, seconds, seed)
    if flood == "none":
        return _run(flood, _run_client(measured), None)
    with _flooding(_flood_spec(targets, flood)) as flooding:
        result = _run_client(measured)
        flood_result = _flood_result(flooding)
    _settle(targets.url)
    return _run(flood, result, flood_result.streams[0])


def _settle(url: str) -> None:
    """Until the server answers health checks promptly again."""
    deadline = time.monotonic() + SETTLE_LIMIT_SECONDS
    prompt = 0
    with httpx.Client(base_url=url, timeout=SETTLE_LIMIT_SECONDS) as client:
        while prompt < SETTLED_CHECKS and time.monotonic() < deadline:
            began = time.perf_counter()
            client.get("/healthz")
            quick = (time.perf_counter() - began) * 1000 <= SETTLED_MS
            prompt = prompt + 1 if quick else 0


def _measured_spec(targets: FloodTargets, seconds: float, seed: int) -> ClientSpec:
    streams = [
        Stream(
            name,
            "GET",
            targets.url + path,
            MEASURED_RATE_PER_SECOND,
            [200],
            headers=headers,
            poisson=True,
            timed=True,
        )
        for name, (path, headers) in zip(MEASURED, _measured_requests(targets), strict=True)
    ]
    return ClientSpec(streams, MEASURED_ADDRESS, seconds, seed)


def _flood_spec(targets: FloodTargets, flood: str) -> ClientSpec:
    if flood == "keys":
        url = targets.url + INTEGRATION_PATH
        stream = Stream(flood, "GET", url, FLOOD_RATE_PER_SECOND, [401, 429], vary="key")
    else:
        stream = Stream(
            flood,
            "POST",
            targets.url + "/login",
            FLOOD_RATE_PER_SECOND,
            [401, 429],
            headers={
                "Cookie": f"reflexblue_login_csrf={_FLOOD_CSRF}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            body=_FLOOD_LOGIN_BODY,
            vary="password",
        )
    return ClientSpec([stream], FLOOD_ADDRESS, None)


def _spec_line(spec: ClientSpec) -> str:
    return json.dumps(asdict(spec)) + "\n"


def _run_client(spec: ClientSpec) -> ClientResult:
    done = subprocess.run(
        [sys.executable, "-m", "bench.flood_client"],
        input=_spec_line(spec),
        env=environment({}),
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"the measured client failed:\n{done.stderr}")
    return _client_result(done.stdout.strip().splitlines()[-1])


@contextmanager
def _flooding(spec: ClientSpec) -> Iterator["subprocess.Popen[str]"]:
    """The flood process, sending from the moment this is entered until `_flood_result`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.flood_client"],
        env=environment({}),
        cwd=REPOSITORY,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        stdin, stdout = _pipes(process)
        stdin.write(_spec_line(spec))
        stdin.flush()
        if stdout.readline().strip() != STARTED_LINE:
            raise BenchError("the flood client did not start")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def _flood_result(process: "subprocess.Popen[str]") -> ClientResult:
    """Stops the flood (its stdin closes) and reads what it sent."""
    stdin, stdout = _pipes(process)
    stdin.close()
    output = stdout.read().strip()
    if process.wait(timeout=CLIENT_TIMEOUT_SECONDS) != 0 or not output:
        raise BenchError("the flood client failed")
    return _client_result(output.splitlines()[-1])


def _pipes(process: "subprocess.Popen[str]") -> tuple[IO[str], IO[str]]:
    if process.stdin is None or process.stdout is None:
        raise BenchError("the flood client has no pipes")
    return process.stdin, process.stdout


def _client_result(line: str) -> ClientResult:
    raw = json.loads(line)
    return ClientResult([StreamResult(**stream) for stream in raw["streams"]])


def _measured(result: StreamResult) -> MeasuredStream:
    latencies = result.latencies_ms
    return MeasuredStream(
        result.sent,
        result.unexpected,
        result.late_starts,
        result.statuses,
        percentile(latencies, 50),
        percentile(latencies, 99),
        latencies[-1] if latencies else float("nan"),
    )


def _run(flood: str, measured: ClientResult, flooded: StreamResult | None) -> FloodRun:
    by_name = {stream.name: stream for stream in measured.streams}
    return FloodRun(
        flood,
        _measured(by_name["api"]),
        _measured(by_name["console"]),
        flooded.sent if flooded else 0,
        flooded.seconds if flooded else 0.0,
        flooded.statuses if flooded else {},
        flooded.unexpected if flooded else 0,
        flooded.late_starts if flooded else 0,
    )


def _record(report: Report, run: FloodRun, round_number: int) -> None:
    report.add_run("flood", run)
    where = f"flood, {FLOODS.get(run.flood, 'no flood')}, round {round_number + 1}"
    for name, stream in (("External API", run.api), ("console", run.console)):
        # Without a flood, a failed request means the run is broken; beside one, it is a
        # result: what the flood did to legitimate callers.
        failures = report.void if run.flood == "none" else report.notes
        if stream.unexpected:
            failures.append(f"{where}: {stream.unexpected} {name} requests did not get 200")
        if stream.late_starts > stream.sent // 100:
            report.notes.append(f"{where}: the client sent {stream.late_starts} {name} late")
    if run.flood == "none":
        for figure in _figures_of(report, "api", "console"):
            figure.baseline.append(_value(run, figure.key))
        return
    if run.flood_unexpected:
        report.notes.append(
            f"{where}: {run.flood_unexpected} flood requests got neither 401 nor 429 in time"
        )
    if run.flood_late_starts > run.flood_sent // 100:
        report.notes.append(f"{where}: the flood client sent {run.flood_late_starts} late")
    for figure in _figures_of(report, "api", "console", flood=run.flood):
        figure.product.append(_value(run, figure.key))
    report.figure(f"flood_{run.flood}_rate").product.append(run.flood_per_second)


def _figures_of(report: Report, *streams: str, flood: str | None = None) -> list[Figure]:
    floods = [flood] if flood else list(FLOODS)
    keys = {
        f"flood_{each}_{stream}_{share}"
        for each in floods
        for stream in streams
        for share in ("p50", "p99")
    }
    return [figure for figure in report.figures if figure.key in keys]


def _value(run: FloodRun, key: str) -> float:
    """The latency a figure's key names (flood_<flood>_<stream>_<p50|p99>) from a run."""
    _, _, stream, share = key.split("_")
    measured = run.api if stream == "api" else run.console
    return measured.p50_ms if share == "p50" else measured.p99_ms
