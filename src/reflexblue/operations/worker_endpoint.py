"""`reflexblue worker` on its own has no web application: this small server gives Prometheus
its /metrics (and a /healthz) there, when a port is chosen."""

import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from reflexblue.core.errors import ConfigurationError
from reflexblue.core.heap import startup_objects_frozen
from reflexblue.core.runtime import Runtime
from reflexblue.operations.metrics import render_metrics
from reflexblue.webhooks.worker import run_until_signalled

logger = logging.getLogger(__name__)

_RUNTIME = web.AppKey("runtime", Runtime)


async def run_worker_process(
    runtime: Runtime, *, metrics_host: str, metrics_port: int | None
) -> None:
    """Deliver until SIGTERM or SIGINT, serving metrics meanwhile when a port is given."""
    if metrics_port is None:
        with startup_objects_frozen():
            await run_until_signalled(runtime)
        return
    async with serving_metrics(runtime, metrics_host, metrics_port):
        with startup_objects_frozen():
            await run_until_signalled(runtime)


@asynccontextmanager
async def serving_metrics(runtime: Runtime, host: str, port: int) -> AsyncIterator[None]:
    app = web.Application()
    app[_RUNTIME] = runtime
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as error:
        await runner.cleanup()
        raise ConfigurationError(
            f"cannot serve metrics on {host}:{port}: {_reason(error)}"
        ) from None
    logger.info("worker metrics served", extra={"host": host, "port": port})
    try:
        yield
    finally:
        await runner.cleanup()


def _reason(error: OSError) -> str:
    # A name that does not resolve says so in its own words; a refused bind is worded by asyncio
    # as "error while attempting to bind on address …", where the cause alone is enough.
    if isinstance(error, socket.gaierror) or not error.errno:
        return str(error.strerror or error)
    return os.strerror(error.errno)


async def _metrics(request: web.Request) -> web.Response:
    body, content_type = await render_metrics(
        request.app[_RUNTIME].engine, request.headers.get("Accept")
    )
    return web.Response(body=body, headers={"Content-Type": content_type})


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
