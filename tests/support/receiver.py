"""A real HTTP receiver for webhook tests: records what arrives and answers as told."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.postgres import free_port

Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    received: list[ReceivedRequest] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


async def _answer_ok(_: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


@asynccontextmanager
async def running_receiver(responder: Responder = _answer_ok) -> AsyncIterator[Receiver]:
    """Listen on a free loopback port; every request is recorded, then answered by responder."""
    port = free_port()
    receiver = Receiver(url=f"http://127.0.0.1:{port}")

    async def handle(request: web.Request) -> web.StreamResponse:
        receiver.received.append(
            ReceivedRequest(request.path_qs, dict(request.headers), await request.read())
        )
        receiver.arrived.set()
        return await responder(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield receiver
    finally:
        await runner.cleanup()
