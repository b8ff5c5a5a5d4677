"""The open-loop load generator process: POSTs on a Poisson schedule, each request sent at its
planned moment whether or not the earlier ones have been answered.

Run as `python -m bench.open_loop`, with a JSON `OpenLoopSpec` on stdin; it prints a JSON
`OpenLoopResult`. Every body carries its planned send time as `data.scheduled_at` (seconds
since the epoch), so whoever receives the request, directly or as a webhook, can tell how long
after that moment it arrived; a stalled system cannot hide its backlog behind a slow client.
"""

import asyncio
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field

import aiohttp

from bench.payload import EVENT_TYPE, event_data

# The client's own lag beyond this is reported: the schedule was not kept.
LATE_START_MS = 5.0


@dataclass(frozen=True)
class OpenLoopSpec:
    url: str
    rate_per_second: float
    requests: int
    expected_status: int
    seed: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    # "event": the Management API's publish body; "webhook": the body a webhook carries.
    shape: str = "event"


@dataclass(frozen=True)
class OpenLoopResult:
    requests: int
    seconds: float
    unexpected: int  # answers with another status, and requests that failed outright
    late_starts: int  # requests the client itself sent more than LATE_START_MS after plan


def poisson_schedule(rate_per_second: float, requests: int, seed: int) -> list[float]:
    """Offsets in seconds from the start: exponential gaps with the given mean rate."""
    rng = random.Random(seed)  # a load schedule, not a secret
    offsets, moment = [], 0.0
    for _ in range(requests):
        moment += rng.expovariate(rate_per_second)
        offsets.append(moment)
    return offsets


def request_body(shape: str, index: int, scheduled_at: float) -> bytes:
    data = event_data(index) | {"scheduled_at": scheduled_at}
    if shape == "event":
        return json.dumps({"type": EVENT_TYPE, "data": data}).encode()
    return json.dumps({"type": EVENT_TYPE, "timestamp": "", "data": data}).encode()


@dataclass
class _Tally:
    unexpected: int = 0
    late_starts: int = 0


async def _send(
    session: aiohttp.ClientSession, spec: OpenLoopSpec, body: bytes, tally: _Tally
) -> None:
    try:
        async with session.post(spec.url, data=body, headers=spec.headers) as response:
            await response.read()
            if response.status != spec.expected_status:
                tally.unexpected += 1
    except aiohttp.ClientError:
        tally.unexpected += 1


async def run_open_loop(spec: OpenLoopSpec) -> OpenLoopResult:
    offsets = poisson_schedule(spec.rate_per_second, spec.requests, spec.seed)
    tally = _Tally()
    headers = {"content-type": "application/json", **spec.headers}
    spec = OpenLoopSpec(**(asdict(spec) | {"headers": headers}))
    # No cap on connections: a request waiting for a free one would break the schedule.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        started_wall, started = time.time(), time.monotonic()
        tasks = []
        for index, offset in enumerate(offsets):
            delay = offset - (time.monotonic() - started)
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay * 1000 > LATE_START_MS:
                tally.late_starts += 1
            body = request_body(spec.shape, index, started_wall + offset)
            tasks.append(asyncio.create_task(_send(session, spec, body, tally)))
        await asyncio.gather(*tasks)
        seconds = time.monotonic() - started
    return OpenLoopResult(spec.requests, seconds, tally.unexpected, tally.late_starts)


def main() -> None:
    spec = OpenLoopSpec(**json.loads(sys.stdin.read()))
    result = asyncio.run(run_open_loop(spec))
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
