"""The External API's OpenAPI document: errors as problem details, and a docs page."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from reflexblue.api.problems import PROBLEM_CONTENT_TYPE


class ProblemFieldError(BaseModel):
    field: str = Field(description="The field, query parameter or header that is not right.")
    message: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details."""

    type: str = Field(examples=["about:blank"])
    title: str
    status: int
    detail: str
    errors: list[ProblemFieldError] | None = None


_DESCRIPTIONS = {
    400: "The body is not valid JSON.",
    401: "The API key is missing, malformed, unknown, revoked or expired.",
    404: "Nothing with this id belongs to the calling integration.",
    409: "The request conflicts with the current state.",
    413: "The body is larger than 1 MiB.",
    415: "The body is not JSON.",
    422: "The input is not valid; `errors` names each field.",
    429: "Too many requests with this API key; wait as long as Retry-After says.",
}
_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}},
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry documenting these error statuses."""
    return {status: {"model": Problem, "description": _DESCRIPTIONS[status]} for status in statuses}


def read_errors(*extra: int) -> dict[int | str, dict[str, Any]]:
    return errors(401, 422, 429, *extra)


def write_errors(*extra: int) -> dict[int | str, dict[str, Any]]:
    return errors(400, 401, 413, 415, 422, 429, *extra)


def install_openapi(api: FastAPI) -> None:
    """Errors are documented as `application/problem+json`, which is what they are sent as."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(
                title=api.title,
                version=api.version,
                description=api.description,
                routes=api.routes,
                servers=api.servers,
            )
            _problems_as_problem_json(schema)
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


def _problems_as_problem_json(schema: dict[str, Any]) -> None:
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status.isdigit() and int(status) >= 400 and "application/json" in content:
                    content[PROBLEM_CONTENT_TYPE] = content.pop("application/json")
                if status.isdigit() and int(status) in _HEADERS:
                    response["headers"] = _HEADERS[int(status)]


# Nothing but the product itself: Redoc styles its page inline and parses in a blob worker.
DOCS_PAGE_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self' blob:",
        "worker-src 'self' blob:",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    )
)

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ReflexBlue External API</title>
<style>body { margin: 0; }</style>
</head>
<body>
<redoc spec-url="openapi.json"></redoc>
<script src="static/redoc.standalone.js"></script>
</body>
</html>
"""
