"""The web application: console, Management API and operations endpoints in one ASGI app."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import text

from reflexblue.api.management import create_management_api
from reflexblue.core.runtime import Runtime, start_runtime
from reflexblue.core.settings import Settings

logger = logging.getLogger(__name__)

OVERVIEW_PATH = "/management/general/integrations"


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """The whole web application. With a runtime given, the caller owns its life cycle."""
    management = create_management_api()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        active = runtime or await start_runtime(settings)
        for each in (app, management):
            each.state.runtime = active
        logger.info("web application started")
        try:
            yield
        finally:
            if runtime is None:
                await active.close()

    app = FastAPI(
        title="ReflexBlue", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None
    )
    if runtime is not None:
        for each in (app, management):
            each.state.runtime = runtime
    app.mount("/api/management", management)
    _add_operations_routes(app)
    return app


def _add_operations_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(OVERVIEW_PATH, status_code=303)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
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
