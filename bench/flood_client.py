"""The client process of the flood benchmark: open-loop streams of requests from one loopback
address, each request sent at its planned moment whether or not earlier ones were answered.

Run as `python -m bench.flood_client`; it reads one line of JSON, a `ClientSpec`, from stdin,
prints `started` once its streams are under way, and prints a JSON `ClientResult` when done:
after `seconds`, or, with `seconds` null, when its stdin closes (the flood, which runs for as
long as the measured load beside it does).

A flood stream sends on a fixed schedule (`rate` a second, evenly spaced) and varies the
credential in every request: a fresh random API key, or a fresh random password. A measured
stream sends on a Poisson schedule and times each request from its planned moment to the end
of its answer, so a stalled server cannot hide its backlog behind a slow client.
"""

import asyncio
import itertools
import json
import secrets
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import aiohttp

from bench.open_loop import poisson_schedule

# The client's own lag beyond this is reported: the schedule was not kept.
LATE_START_MS = 5.0
# How long requests still unanswered at the end are waited for: briefly for a flood, whose
# backlog is not what is measured, and long for the measured load, every answer of which counts.
FLOOD_GRACE_SECONDS = 2.0
MEASURED_GRACE_SECONDS = 30.0
STARTED_LINE = "started"


@dataclass(frozen=True)
class Stream:
    name: str
    method: str
    url: str
    rate_per_second: float
    expected_status: list[int]
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""  # a form body, sent as application/x-www-form-urlencoded
    # "key": a random API key in every request; "password": a random password appended to body.
    vary: str = ""
    poisson: bool = False  # the measured load; else an even schedule
    timed: bool = False  # keep each request's latency


@dataclass(frozen=True)
class ClientSpec:
    streams: list[Stream]
    local_address: str
    seconds: float | None  # None: until stdin closes
    seed: int = 0


@dataclass(frozen=True)
class StreamResult:
    name: str
    sent: int
    seconds: float
    # Answers by status; "error" for requests that failed outright, "unanswered" for those
    # still waiting when the stream's grace after its last send ran out.
    statuses: dict[str, int]
    unexpected: int
    late_starts: int
    latencies_ms: list[float]  # sorted; only for a timed stream

    @property
    def per_second(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class ClientResult:
    streams: list[StreamResult]


@dataclass
class _Tally:
    statuses: Counter[str] = field(default_factory=Counter)
    unexpected: int = 0
    late_starts: int = 0
    latencies_ms: list[float] = field(default_factory=list)


def _request_parts(stream: Stream) -> tuple[dict[str, str], bytes]:
    headers = dict(stream.headers)
    body = stream.body
    if stream.vary == "key":
        headers["Authorization"] = "Bearer rbk_" + secrets.token_urlsafe(32)
    elif stream.vary == "password":
        body += "&password=" + secrets.token_urlsafe(12)
    return headers, body.encode()


async def _send(
    session: aiohttp.ClientSession, stream: Stream, planned: float, tally: _Tally
) -> None:
    headers, body = _request_parts(stream)
    try:
        async with session.request(
            stream.method, stream.url, data=body or None, headers=headers, allow_redirects=False
        ) as response:
            await response.read()
            status = response.status
    except aiohttp.ClientError:
        tally.statuses["error"] += 1
        tally.unexpected += 1
        return
    if stream.timed:
        tally.latencies_ms.append((time.monotonic() - planned) * 1000)
    tally.statuses[str(status)] += 1
    if status not in stream.expected_status:
        tally.unexpected += 1


def _offsets(stream: Stream, seconds: float | None, seed: int) -> Iterable[float]:
    """Planned moments in seconds from the start; an even schedule may run without an end."""
    if stream.poisson:
        if seconds is None:
            raise ValueError(f"{stream.name}: a Poisson stream needs its seconds")
        return poisson_schedule(stream.rate_per_second, int(stream.rate_per_second * seconds), seed)
    moments = (index / stream.rate_per_second for index in itertools.count())
    return moments if seconds is None else itertools.takewhile(lambda m: m < seconds, moments)


async def _run_stream(
    session: aiohttp.ClientSession, stream: Stream, spec: ClientSpec, stop: asyncio.Event
) -> StreamResult:
    tally, tasks = _Tally(), []
    started = time.monotonic()
    for offset in _offsets(stream, spec.seconds, spec.seed):
        if stop.is_set():
            break
        planned = started + offset
        delay = planned - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif -delay * 1000 > LATE_START_MS:
            tally.late_starts += 1
        tasks.append(asyncio.create_task(_send(session, stream, planned, tally)))
    seconds = time.monotonic() - started
    grace = MEASURED_GRACE_SECONDS if stream.timed else FLOOD_GRACE_SECONDS
    _, unanswered = await asyncio.wait(tasks, timeout=grace) if tasks else (set(), set())
    if unanswered:
        for task in unanswered:
            task.cancel()
        await asyncio.gather(*unanswered, return_exceptions=True)
        tally.statuses["unanswered"] += len(unanswered)
        tally.unexpected += len(unanswered)
    return StreamResult(
        stream.name,
        len(tasks),
        seconds,
        dict(tally.statuses),
        tally.unexpected,
        tally.late_starts,
        sorted(tally.latencies_ms),
    )


async def _stop_when_stdin_closes(stop: asyncio.Event) -> None:
    await asyncio.to_thread(sys.stdin.read)
    stop.set()


async def run_client(spec: ClientSpec) -> ClientResult:
    stop = asyncio.Event()
    watcher = None if spec.seconds else asyncio.create_task(_stop_when_stdin_closes(stop))
    # No cap on connections: a request waiting for a free one would break the schedule.
    connector = aiohttp.TCPConnector(limit=0, local_addr=(spec.local_address, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        runs = [_run_stream(session, stream, spec, stop) for stream in spec.streams]
        print(STARTED_LINE, flush=True)
        results = await asyncio.gather(*runs)
    if watcher is not None:
        await watcher
    return ClientResult(list(results))


def main() -> None:
    raw = json.loads(sys.stdin.readline())
    streams = [Stream(**stream) for stream in raw.pop("streams")]
    result = asyncio.run(run_client(ClientSpec(streams=streams, **raw)))
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
