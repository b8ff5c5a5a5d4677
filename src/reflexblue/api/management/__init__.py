"""The Management API, for administrators' automation, mounted at /api/management."""

from fastapi import Depends, FastAPI

from reflexblue.api.dependencies import require_json_body
from reflexblue.api.external.documentation import install_openapi
from reflexblue.api.management import api_keys, audit, event_types, events, integrations
from reflexblue.api.problems import install_problem_handlers
from reflexblue.operations.metrics import FASTAPI_TELEMETRY_OFF


def create_management_api() -> FastAPI:
    api = FastAPI(
        title="ReflexBlue Management API",
        version="1",
        description="Manage integrations and their secret keys. Authenticate with a user "
        "token: `Authorization: Bearer rbu_…` (create one with `reflexblue tokens create`).",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(require_json_body)],
        telemetry=FASTAPI_TELEMETRY_OFF,
    )
    api.include_router(integrations.router)
    api.include_router(audit.router)
    api.include_router(api_keys.router)
    api.include_router(event_types.router)
    api.include_router(events.router)
    install_openapi(api)
    install_problem_handlers(api, realm="management")
    return api
