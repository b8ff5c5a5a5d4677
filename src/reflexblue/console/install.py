"""Plugging the console into the web application: routes, static files, headers, error pages."""

import logging

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from reflexblue.accounts.passwords import PasswordChecks
from reflexblue.accounts.sessions import LoginThrottle
from reflexblue.api.problems import (
    DATABASE_ERRORS,
    DATABASE_FAULT_ANSWERS,
    BodyTooLarge,
    UnsupportedMediaType,
    database_retry_headers,
    log_database_fault,
    problem,
)
from reflexblue.console import auth, pages, sections
from reflexblue.console.context import (
    PACKAGE_DIR,
    FormRefused,
    LoginRequired,
    is_htmx,
    render,
    url_with,
)
from reflexblue.console.security import CsrfRefused
from reflexblue.core.database import DatabaseFault, database_fault
from reflexblue.core.errors import DomainError, Forbidden, NotFound
from reflexblue.core.settings import Settings

logger = logging.getLogger(__name__)

_STATUS_BY_ERROR: dict[type[DomainError], int] = {
    CsrfRefused: 403,
    Forbidden: 403,
    NotFound: 404,
    FormRefused: 400,
    BodyTooLarge: 413,
    UnsupportedMediaType: 415,
}
_FAULT_TITLES = {
    DatabaseFault.UNAVAILABLE: "The database is not reachable",
    DatabaseFault.DISK_FULL: "The database's disk is full",
}


def install_console(app: FastAPI, settings: Settings) -> None:
    app.state.login_throttle = LoginThrottle(
        failures_allowed=settings.login_failures_allowed,
        lockout_seconds=settings.login_lockout_seconds,
        lockout_max_seconds=settings.login_lockout_max_seconds,
    )
    app.state.password_checks = PasswordChecks(settings.password_checks_at_once)
    app.include_router(auth.router)
    app.include_router(pages.router)
    app.include_router(sections.router)
    app.mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static")
    app.add_exception_handler(LoginRequired, _send_to_login)
    for error_class in _STATUS_BY_ERROR:
        app.add_exception_handler(error_class, _error_page)
    for database_error in DATABASE_ERRORS:
        app.add_exception_handler(database_error, _database_error_page)


async def _send_to_login(request: Request, error: Exception) -> Response:
    assert isinstance(error, LoginRequired)
    target = url_with(auth.LOGIN_PATH, next=error.next_path)
    if is_htmx(request):
        # htmx follows this header with a full page load instead of swapping in a login form.
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _error_page(request: Request, error: Exception) -> Response:
    assert isinstance(error, DomainError)
    status = next(code for cls, code in _STATUS_BY_ERROR.items() if isinstance(error, cls))
    if status == 403:
        logger.warning(
            "console request refused",
            extra={"path": request.url.path, "reason": type(error).__name__},
        )
    if request.url.path.startswith("/api/"):
        return problem(status, error.detail, title=error.title, errors=error.errors)
    context = {"title": error.title, "detail": error.detail, "status": status}
    return render(request, "error.html", context, status_code=status)


async def _database_error_page(request: Request, error: Exception) -> Response:
    fault = database_fault(error)
    if fault is None:
        logger.exception("unexpected error", extra={"path": request.url.path})
        context = {
            "title": "Something went wrong",
            "detail": "Something went wrong on our side; the error has been logged.",
        }
        return render(request, "error.html", context, status_code=500)
    log_database_fault(fault, error, request.url.path)
    status, detail = DATABASE_FAULT_ANSWERS[fault]
    context = {"title": _FAULT_TITLES[fault], "detail": detail}
    response = render(request, "error.html", context, status_code=status)
    response.headers.update(database_retry_headers())
    return response
