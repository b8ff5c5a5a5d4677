"""The External API, for external systems acting as their integration: /api/external/v1."""

from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from reflexblue.api.dependencies import require_json_body
from reflexblue.api.external import catalogue, recoveries, webhooks
from reflexblue.api.external.caller import CallerLimits
from reflexblue.api.external.documentation import DOCS_PAGE, DOCS_PAGE_POLICY, install_openapi
from reflexblue.api.problems import install_problem_handlers
from reflexblue.core.settings import Settings
from reflexblue.operations.metrics import FASTAPI_TELEMETRY_OFF

MOUNT_PATH = "/api/external/v1"
_STATIC_DIR = Path(__file__).resolve().parent / "static"

DESCRIPTION = """\
The API an external system uses to manage its own webhooks as its integration.

**Authentication.** Every request carries one of the integration's API keys:
`Authorization: Bearer rbk_…`. An administrator creates keys in the console, the Management
API or with `reflexblue api-keys create`. A missing, unknown, revoked or expired key gets 401.

**Errors** are RFC 9457 problem details (`application/problem+json`) with `errors` naming
each field that is not right.

**Lists** return `{"items": […], "next_cursor": …}`; pass `next_cursor` as `cursor` for the
next page until it is null.

**Retries.** Every POST accepts an `Idempotency-Key` header: a repeat with the same key and
body within 24 hours returns the first answer instead of acting twice.

**Rate limits** are per API key; beyond them the answer is 429 with `Retry-After` seconds.
A client address that sends many keys that are not right is answered 429 as well, for a
while, for every request without a key recently used with success from this server.
"""


def create_external_api(settings: Settings) -> FastAPI:
    api = FastAPI(
        title="ReflexBlue External API",
        version="v1",
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(require_json_body)],
        telemetry=FASTAPI_TELEMETRY_OFF,
    )
    api.state.caller_limits = CallerLimits.from_settings(settings)
    api.include_router(catalogue.router)
    api.include_router(webhooks.router)
    api.include_router(recoveries.router)
    api.mount("/static", StaticFiles(directory=_STATIC_DIR), name="static")
    _add_docs_page(api)
    install_openapi(api)
    install_problem_handlers(api, realm="external")
    return api


def _add_docs_page(api: FastAPI) -> None:
    @api.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(DOCS_PAGE, headers={"Content-Security-Policy": DOCS_PAGE_POLICY})
