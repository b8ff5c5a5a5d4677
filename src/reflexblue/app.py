"""The web application: console, Management API and operations endpoints in one ASGI app."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from reflexblue.api.external import MOUNT_PATH as EXTERNAL_API_PATH
from reflexblue.api.external import create_external_api
from reflexblue.api.external.caller import flooding_address_refusal
from reflexblue.api.management import create_management_api
from reflexblue.api.problems import problem
from reflexblue.console.auth import sign_in_refusal
from reflexblue.console.install import install_console
from reflexblue.console.security import SecurityHeaders
from reflexblue.core.heap import startup_objects_frozen
from reflexblue.core.runtime import Runtime, start_runtime
from reflexblue.core.settings import Settings
from reflexblue.operations.flood_gate import FloodGate
from reflexblue.operations.metrics import FASTAPI_TELEMETRY_OFF, render_metrics
from reflexblue.operations.requests import RequestTracking
from reflexblue.webhooks.worker import run_supervised

logger = logging.getLogger(__name__)

OVERVIEW_PATH = "/management/general/integrations"


def create_app(
    settings: Settings,
    runtime: Runtime | None = None,
    *,
    run_worker: bool = False,
    migrate: bool = True,
) -> FastAPI:
    """The whole web application. With a runtime given, the caller owns its life cycle; with
    `run_worker`, the delivery worker runs inside it for as long as it serves. `migrate=False`
    skips the migrations at start-up, for a caller that has just applied them."""
    management = create_management_api()
    external = create_external_api(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        active = runtime or await start_runtime(settings, migrate=migrate)
        for each in (app, management, external):
            each.state.runtime = active
        stop_worker = asyncio.Event()
        worker = asyncio.create_task(run_supervised(active, stop_worker)) if run_worker else None
        logger.info("web application started", extra={"worker": run_worker})
        try:
            with startup_objects_frozen():
                yield
        finally:
            stop_worker.set()
            if worker is not None:
                await worker
            if runtime is None:
                await active.close()

    app = FastAPI(
        title="ReflexBlue",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        telemetry=FASTAPI_TELEMETRY_OFF,
    )
    if runtime is not None:
        for each in (app, management, external):
            each.state.runtime = runtime
    app.mount("/api/management", management)
    app.mount(EXTERNAL_API_PATH, external)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    install_console(app, settings)
    _add_operations_routes(app)
    _add_middleware(app, external)
    return app


def _add_middleware(app: FastAPI, external: FastAPI) -> None:
    """Each added middleware wraps those before it. Request tracking, outermost, sees every
    answer as it leaves; the security headers go on the flood gate's answers too."""
    refusals = [
        flooding_address_refusal(external.state.caller_limits, EXTERNAL_API_PATH),
        sign_in_refusal(app.state.login_throttle, app.state.password_checks),
    ]
    app.add_middleware(FloodGate, refusals=refusals)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestTracking)


async def _http_error(request: Request, error: Exception) -> Response:
    # A path under /api/ that reaches no API (a newline in it defeats the mounts' patterns,
    # for one) is still answered as problem details.
    assert isinstance(error, StarletteHTTPException)
    if request.url.path.startswith("/api/"):
        detail = error.detail if isinstance(error.detail, str) else "The request failed."
        return problem(error.status_code, detail, headers=error.headers)
    return await http_exception_handler(request, error)


def _add_operations_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(OVERVIEW_PATH, status_code=303)

    # HEAD too: some probes and load balancers check health with it.
    @app.api_route("/healthz", methods=["GET", "HEAD"], include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.api_route("/readyz", methods=["GET", "HEAD"], include_in_schema=False)
    async def readyz() -> JSONResponse:
        from reflexblue.core.migrations import pending_migrations

        active: Runtime = app.state.runtime
        try:
            async with active.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            behind = await pending_migrations(active.engine)
        except Exception:
            return JSONResponse({"status": "database unreachable"}, status_code=503)
        if behind:
            return JSONResponse({"status": "migrations pending"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        active: Runtime = app.state.runtime
        body, content_type = await render_metrics(active.engine, request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type})
