"""Plugging the console into the web application: routes, static files, headers, error pages."""

import logging

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from reflexblue.accounts.sessions import LoginThrottle
from reflexblue.api.problems import problem
from reflexblue.console import auth, pages, sections
from reflexblue.console.context import PACKAGE_DIR, LoginRequired, is_htmx, render, url_with
from reflexblue.console.security import CsrfRefused, SecurityHeaders
from reflexblue.core.errors import DomainError, Forbidden, NotFound

logger = logging.getLogger(__name__)

_STATUS_BY_ERROR: dict[type[DomainError], int] = {CsrfRefused: 403, Forbidden: 403, NotFound: 404}


def install_console(app: FastAPI) -> None:
    app.state.login_throttle = LoginThrottle()
    app.include_router(auth.router)
    app.include_router(pages.router)
    app.include_router(sections.router)
    app.mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static")
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(LoginRequired, _send_to_login)
    for error_class in _STATUS_BY_ERROR:
        app.add_exception_handler(error_class, _error_page)


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
