"""RFC 9457 problem details: the one shape every API error takes."""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from reflexblue.core.errors import (
    Conflict,
    DomainError,
    FieldError,
    Forbidden,
    NotFound,
    PreconditionFailed,
    Unauthenticated,
    ValidationFailed,
)
from reflexblue.core.validation import validation_failed

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"


class UnsupportedMediaType(DomainError):
    title = "Unsupported media type"


class BodyTooLarge(DomainError):
    title = "Request body too large"


_STATUS_BY_ERROR: dict[type[DomainError], int] = {
    ValidationFailed: 422,
    NotFound: 404,
    Conflict: 409,
    PreconditionFailed: 412,
    Unauthenticated: 401,
    Forbidden: 403,
    UnsupportedMediaType: 415,
    BodyTooLarge: 413,
}
_TITLE_BY_STATUS = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or _TITLE_BY_STATUS.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


def install_problem_handlers(app: FastAPI, *, realm: str) -> None:
    """Every error an API can produce, each turned into problem details."""

    async def on_domain_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, DomainError)
        status = next(s for cls, s in _STATUS_BY_ERROR.items() if isinstance(error, cls))
        headers = {"WWW-Authenticate": f'Bearer realm="{realm}"'} if status == 401 else None
        return problem(
            status, error.detail, title=error.title, errors=error.errors, headers=headers
        )

    async def on_invalid_request(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        details = list(error.errors())
        if any(detail.get("type") == "json_invalid" for detail in details):
            return problem(400, "The request body is not valid JSON.", title="Malformed JSON")
        failure = validation_failed(details)
        return problem(422, failure.detail, errors=failure.errors)

    async def on_http_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        detail = error.detail if isinstance(error.detail, str) else "The request failed."
        return problem(error.status_code, detail, headers=error.headers)

    async def on_database_unavailable(_: Request, error: Exception) -> JSONResponse:
        logger.warning("database unavailable", extra={"error": type(error).__name__})
        return problem(
            503,
            "The database is not reachable right now; try again shortly.",
            headers={"Retry-After": "5"},
        )

    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error", extra={"path": request.url.path})
        return problem(500, "Something went wrong on our side; the error has been logged.")

    app.add_exception_handler(DomainError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(OperationalError, on_database_unavailable)
    app.add_exception_handler(InterfaceError, on_database_unavailable)
    app.add_exception_handler(Exception, on_unexpected)
