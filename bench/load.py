"""The load generator process: a bare aiohttp client keeping a fixed number of POSTs in flight.

Run as `python -m bench.load`, with a JSON `LoadSpec` on stdin; it prints a JSON `LoadResult`.
In a process of its own, like the product's worker, so that neither shares a core with the
harness. It runs on the standard asyncio loop, as the product's worker does.

With `signing_key` set it is the delivery baseline B: pre-built 1 KiB webhook bodies, each
request given fresh Standard Webhooks headers (timestamp and HMAC-SHA256 signature). Without
it, every request carries the same body and headers (the ingest client).
"""

import asyncio
import base64
import json
import sys
import time
from dataclasses import asdict, dataclass, field

import aiohttp

from bench.payload import event_data, standard_webhook_headers, webhook_body

# Distinct bodies the delivery baseline cycles through, built before the clock starts.
PREBUILT_BODIES = 256


@dataclass(frozen=True)
class LoadSpec:
    url: str
    requests: int
    concurrency: int
    expected_status: int
    warmup: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    signing_key: str | None = None  # base64; makes this the signed delivery baseline


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    unexpected: int  # answers with another status, and requests that failed outright
    cpu_seconds: float = 0.0  # the generator's own CPU time over the measured requests

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


class _Requests:
    """Hands out request numbers to the concurrent senders until the total is reached."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self._next = 0
        self._key = base64.b64decode(spec.signing_key) if spec.signing_key else b""
        self._bodies = [webhook_body(event_data(i)) for i in range(PREBUILT_BODIES)]
        self._plain_body = spec.body.encode()
        self.unexpected = 0

    def take(self, total: int) -> int | None:
        if self._next >= total:
            return None
        self._next += 1
        return self._next

    def reset(self) -> None:
        self._next = 0

    def build(self, number: int) -> tuple[dict[str, str], bytes]:
        if not self._key:
            return self.spec.headers, self._plain_body
        body = self._bodies[number % PREBUILT_BODIES]
        return standard_webhook_headers(self._key, f"msg_{number}", body), body


async def _sender(session: aiohttp.ClientSession, work: _Requests, total: int) -> None:
    spec = work.spec
    while (number := work.take(total)) is not None:
        headers, body = work.build(number)
        try:
            async with session.post(spec.url, data=body, headers=headers) as response:
                await response.read()
                if response.status != spec.expected_status:
                    work.unexpected += 1
        except aiohttp.ClientError:
            work.unexpected += 1


async def _round(session: aiohttp.ClientSession, work: _Requests, total: int) -> None:
    work.reset()
    senders = min(work.spec.concurrency, max(total, 1))
    await asyncio.gather(*(_sender(session, work, total) for _ in range(senders)))


async def run_load(spec: LoadSpec) -> LoadResult:
    work = _Requests(spec)
    connector = aiohttp.TCPConnector(limit=spec.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        if spec.warmup:
            await _round(session, work, spec.warmup)
        work.unexpected = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        await _round(session, work, spec.requests)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return LoadResult(spec.requests, seconds, work.unexpected, cpu)


def main() -> None:
    spec = LoadSpec(**json.loads(sys.stdin.read()))
    result = asyncio.run(run_load(spec))
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
