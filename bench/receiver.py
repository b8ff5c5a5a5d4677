"""The receiver process: aiohttp on uvloop answering every POST with 204 and counting them.

Run as `python -m bench.receiver PORT`. `GET /count` answers the number of POSTs so far, so
the harness can check a run's ledger against what actually arrived.
"""

import asyncio
import sys

import uvloop
from aiohttp import web

_COUNT = web.AppKey("count", list[int])


async def _receive(request: web.Request) -> web.StreamResponse:
    await request.read()
    request.app[_COUNT][0] += 1
    return web.Response(status=204)


async def _count(request: web.Request) -> web.StreamResponse:
    return web.Response(text=str(request.app[_COUNT][0]))


def receiver_app() -> web.Application:
    app = web.Application()
    app[_COUNT] = [0]
    app.router.add_get("/count", _count)
    app.router.add_post("/{tail:.*}", _receive)
    return app


async def serve(port: int) -> None:
    runner = web.AppRunner(receiver_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
