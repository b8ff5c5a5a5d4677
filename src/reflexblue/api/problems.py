"""RFC 9457 problem details: the one shape every API error takes."""

import logging
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from reflexblue.core.database import DatabaseFault, database_fault
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
# Seconds a client is asked to wait before it tries again while the database is away.
DATABASE_RETRY_AFTER_SECONDS = 5


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
    507: "Insufficient storage",
}
# The status and detail of each database fault. When a connection is lost during a commit, no
# one knows whether the commit took effect; a full disk makes the database roll the transaction
# back, so only there can the answer promise that nothing was stored.
DATABASE_FAULT_ANSWERS: dict[DatabaseFault, tuple[int, str]] = {
    DatabaseFault.UNAVAILABLE: (
        503,
        "The database is not reachable right now; try again shortly.",
    ),
    DatabaseFault.DISK_FULL: (
        507,
        "The database's disk is full, so nothing of this request was stored. Data stored "
        "before is intact; ask the operator to free space, then try again.",
    ),
}
DATABASE_ERRORS = (DBAPIError, PoolTimeout)


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


@lru_cache(maxsize=64)
def fixed_problem_body(status: int, detail: str) -> bytes:
    """The rendered body of a problem without field errors, for an answer sent again and again
    (a refusal in a flood), where rendering the JSON each time would be most of its cost."""
    return bytes(problem(status, detail).body)


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
        malformed = next((d for d in details if d.get("type") == "json_invalid"), None)
        if malformed is not None:
            reason = (malformed.get("ctx") or {}).get("error", "it cannot be parsed")
            detail = f"The request body is not valid JSON: {reason}."
            return problem(400, detail, title="Malformed JSON")
        failure = validation_failed(details)
        return problem(422, failure.detail, errors=failure.errors)

    async def on_http_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        detail = error.detail if isinstance(error.detail, str) else "The request failed."
        return problem(error.status_code, detail, headers=error.headers)

    async def on_database_error(request: Request, error: Exception) -> JSONResponse:
        fault = database_fault(error)
        if fault is None:  # a statement of ours that failed: a bug, with its traceback
            return await on_unexpected(request, error)
        log_database_fault(fault, error, request.url.path)
        status, detail = DATABASE_FAULT_ANSWERS[fault]
        return problem(status, detail, headers=database_retry_headers())

    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error", extra={"path": request.url.path})
        return problem(500, "Something went wrong on our side; the error has been logged.")

    app.add_exception_handler(DomainError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    for error_class in DATABASE_ERRORS:
        app.add_exception_handler(error_class, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)


def log_database_fault(fault: DatabaseFault, error: BaseException, path: str) -> None:
    """One line per refused request; no traceback, since the fault is not in the code. The
    error's class names what the driver saw; its message may hold the statement, so it is
    left out."""
    fields = {"path": path, "error": type(_driver_error(error)).__name__}
    if fault is DatabaseFault.DISK_FULL:
        logger.error("database disk full; request refused", extra=fields)
    else:
        logger.warning("database unavailable; request refused", extra=fields)


def database_retry_headers() -> dict[str, str]:
    return {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}


def _driver_error(error: BaseException) -> BaseException:
    """The driver's own exception beneath SQLAlchemy's and the dialect's wrappings."""
    innermost = error
    while (cause := getattr(innermost, "orig", None) or innermost.__cause__) is not None:
        innermost = cause
    return innermost
