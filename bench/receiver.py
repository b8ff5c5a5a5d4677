"""The receiver process: aiohttp on uvloop answering every POST with 204 and counting them.

Run as `python -m bench.receiver PORT`. `GET /count` answers the number of POSTs so far, so
the harness can check a run's ledger against what actually arrived.

Two paths keep more than a count:
- `POST /latency/...` notes, for a body whose `data` carries `scheduled_at` (seconds since the
  epoch), how long after that moment the request arrived; `GET /latencies` hands the notes
  over (in milliseconds) and forgets them.
- `POST /flaky/...` answers 500 to a fixed tenth of attempts, chosen by a hash of the
  `webhook-id` header and the attempt's number for that id, and notes every arrival;
  `GET /arrivals` hands the notes over as `[webhook_id, attempt, seconds, status]` and forgets
  them.
"""

import asyncio
import hashlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import uvloop
from aiohttp import web

FAILING_SHARE_PERCENT = 10


@dataclass
class _Notes:
    count: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    arrivals: list[tuple[str, int, float, int]] = field(default_factory=list)


_NOTES = web.AppKey("notes", _Notes)


def fails(webhook_id: str, attempt: int) -> bool:
    """Whether the flaky path answers 500 to this attempt; the same answer every run."""
    digest = hashlib.sha256(f"{webhook_id}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < FAILING_SHARE_PERCENT


async def _receive(request: web.Request) -> web.StreamResponse:
    await request.read()
    request.app[_NOTES].count += 1
    return web.Response(status=204)


async def _receive_timed(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    arrived = time.time()
    notes = request.app[_NOTES]
    notes.count += 1
    scheduled = _scheduled_at(body)
    if scheduled is not None:
        notes.latencies_ms.append((arrived - scheduled) * 1000)
    return web.Response(status=204)


def _scheduled_at(body: bytes) -> float | None:
    try:
        document: Any = json.loads(body)
        value = document["data"]["scheduled_at"]
    except (ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) else None


async def _receive_flaky(request: web.Request) -> web.StreamResponse:
    await request.read()
    arrived = time.time()
    notes = request.app[_NOTES]
    notes.count += 1
    webhook_id = request.headers.get("webhook-id", "")
    notes.attempts[webhook_id] += 1
    attempt = notes.attempts[webhook_id]
    status = 500 if fails(webhook_id, attempt) else 204
    notes.arrivals.append((webhook_id, attempt, arrived, status))
    return web.Response(status=status)


async def _count(request: web.Request) -> web.StreamResponse:
    return web.Response(text=str(request.app[_NOTES].count))


async def _latencies(request: web.Request) -> web.StreamResponse:
    notes = request.app[_NOTES]
    taken, notes.latencies_ms = notes.latencies_ms, []
    return web.json_response(taken)


async def _arrivals(request: web.Request) -> web.StreamResponse:
    notes = request.app[_NOTES]
    taken, notes.arrivals = notes.arrivals, []
    notes.attempts.clear()
    return web.json_response(taken)


def receiver_app() -> web.Application:
    app = web.Application()
    app[_NOTES] = _Notes()
    app.router.add_get("/count", _count)
    app.router.add_get("/latencies", _latencies)
    app.router.add_get("/arrivals", _arrivals)
    app.router.add_post("/latency/{tail:.*}", _receive_timed)
    app.router.add_post("/flaky/{tail:.*}", _receive_flaky)
    app.router.add_post("/{tail:.*}", _receive)
    return app


async def serve(port: int) -> None:
    runner = web.AppRunner(receiver_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
