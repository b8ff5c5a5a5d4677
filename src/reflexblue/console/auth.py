"""Signing in to the console and out of it."""

import html
import logging
from functools import lru_cache

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response
from starlette.types import Scope

from reflexblue.accounts.passwords import PasswordChecks, PasswordChecksBusy
from reflexblue.accounts.sessions import (
    LoginThrottle,
    TooManyLoginFailures,
    resume,
    sign_in_checked,
    sign_out,
)
from reflexblue.api.dependencies import RuntimeDep
from reflexblue.console.context import (
    PAGE_HEADERS,
    CheckedForm,
    form_text,
    page_text,
    render,
    url_with,
)
from reflexblue.console.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    check_login_csrf,
    clear_session_cookie,
    login_csrf_token,
    set_login_csrf_cookie,
    set_session_cookie,
)
from reflexblue.core.database import transaction
from reflexblue.core.errors import Unauthenticated
from reflexblue.core.runtime import Runtime
from reflexblue.operations.flood_gate import Refusal, Refused, client_address

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

HOME_PATH = "/management/general/integrations"
LOGIN_PATH = "/login"
USERNAME_MAX_LENGTH = 100
PASSWORD_MAX_LENGTH = 1024
BUSY_RETRY_SECONDS = 1
# Where the CSRF token goes in a page rendered once for many answers.
_CSRF_PLACEHOLDER = "login-csrf-token-goes-here"


@router.get(LOGIN_PATH)
async def login_page(request: Request, runtime: RuntimeDep, next: str = HOME_PATH) -> Response:
    target = safe_next(next)
    async with transaction(runtime.sessions) as session:
        signed_in = await resume(session, request.cookies.get(SESSION_COOKIE))
    if signed_in is not None:
        return RedirectResponse(target, status_code=303)
    signed_out = request.query_params.get("signed_out") == "1"
    return _login_form(request, next_path=target, signed_out=signed_out)


@router.post(LOGIN_PATH)
async def login(request: Request, runtime: RuntimeDep) -> Response:
    form = await request.form()
    check_login_csrf(request, form_text(form, "csrf_token"))
    username = (form_text(form, "username") or "").strip()
    password = form_text(form, "password") or ""
    target = safe_next(form_text(form, "next") or HOME_PATH)

    if not username or not password:
        message = "Enter your user name and your password."
        return _login_form(request, next_path=target, username=username, error=message, status=422)
    if len(username) > USERNAME_MAX_LENGTH or len(password) > PASSWORD_MAX_LENGTH:
        message = "The user name or password is not right."
        return _login_form(request, next_path=target, username="", error=message, status=401)

    throttle: LoginThrottle = request.app.state.login_throttle
    address = client_address(request.scope)
    try:
        throttle.admit(username, address)
    except TooManyLoginFailures as refusal:
        return _refused(request, target, username, refusal.detail, refusal.retry_after_seconds)
    try:
        token = await _check_and_sign_in(request, runtime, username, password)
    except PasswordChecksBusy as busy:
        throttle.abandoned(username, address)
        return _refused(request, target, username, busy.detail, BUSY_RETRY_SECONDS)
    except Unauthenticated as refusal:
        throttle.failed(username, address)
        logger.warning("console sign-in refused", extra={"address": address})
        return _login_form(
            request, next_path=target, username=username, error=refusal.detail, status=401
        )
    except BaseException:
        throttle.abandoned(username, address)
        raise

    throttle.succeeded(username, address)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=LOGIN_PATH)
    return response


async def _check_and_sign_in(
    request: Request, runtime: Runtime, username: str, password: str
) -> str:
    checks: PasswordChecks = request.app.state.password_checks
    replacing = request.cookies.get(SESSION_COOKIE)
    return await sign_in_checked(runtime.sessions, checks, username, password, replacing=replacing)


def sign_in_refusal(throttle: LoginThrottle, checks: PasswordChecks) -> Refusal:
    """For the flood gate: a sign-in that `login` would refuse whatever its form holds (its
    client address locked out or at its allowance, or every password check busy) gets the
    same 429 without its form being read."""

    def refuse(scope: Scope) -> Refused | None:
        if scope["path"] != LOGIN_PATH or scope["method"] != "POST":
            return None
        wait_seconds = throttle.address_refused_for(client_address(scope))
        if wait_seconds is not None:
            refusal = TooManyLoginFailures(wait_seconds)
            message, retry_after = refusal.detail, refusal.retry_after_seconds
        elif checks.all_busy:
            message, retry_after = PasswordChecksBusy().detail, BUSY_RETRY_SECONDS
        else:
            return None
        return Refused(LOGIN_PATH, _refused_unread(Request(scope), message, retry_after))

    return refuse


def _refused_unread(request: Request, message: str, retry_after_seconds: int) -> Response:
    """What `_refused` answers, for a sign-in whose form was not read: the login form with
    no name filled in, leading to the overview."""
    token = login_csrf_token(request)
    before, after = _refusal_page_around_token(message)
    headers = {**PAGE_HEADERS, "Retry-After": str(retry_after_seconds)}
    response = HTMLResponse(before + html.escape(token) + after, status_code=429, headers=headers)
    set_login_csrf_cookie(response, request, token)
    return response


@lru_cache(maxsize=128)
def _refusal_page_around_token(message: str) -> tuple[str, str]:
    """The login page saying `message`, in the two parts around its CSRF token. In a flood,
    refusals differ by these two alone; rendering the template for each would cost more than
    all the rest of a refusal. Messages differ by the seconds to wait, so there are few."""
    context = {
        "login_csrf": _CSRF_PLACEHOLDER,
        "next_path": HOME_PATH,
        "username": "",
        "error": message,
        "signed_out": False,
    }
    before, _, after = page_text("login.html", context).partition(_CSRF_PLACEHOLDER)
    return before, after


def _refused(
    request: Request, target: str, username: str, message: str, retry_after_seconds: int
) -> Response:
    """429: the login form again, saying why and how long to wait, its password unchecked."""
    response = _login_form(request, next_path=target, username=username, error=message, status=429)
    response.headers["Retry-After"] = str(retry_after_seconds)
    return response


@router.post("/logout")
async def logout(request: Request, runtime: RuntimeDep, _form: CheckedForm) -> Response:
    async with transaction(runtime.sessions) as session:
        await sign_out(session, request.cookies.get(SESSION_COOKIE))
    logger.info("console sign-out")
    response = RedirectResponse(url_with(LOGIN_PATH, signed_out="1"), status_code=303)
    clear_session_cookie(response, request)
    return response


def safe_next(candidate: str) -> str:
    """Only a path on this site: `//host` or `/\\host` would send the browser elsewhere."""
    if (
        not candidate.startswith("/")
        or candidate.startswith(("//", "/\\"))
        or any(char in candidate for char in "\r\n\t\\")
    ):
        return HOME_PATH
    return candidate


def _login_form(
    request: Request,
    *,
    next_path: str,
    username: str = "",
    error: str | None = None,
    signed_out: bool = False,
    status: int = 200,
) -> Response:
    token = login_csrf_token(request)
    response = render(
        request,
        "login.html",
        {
            "login_csrf": token,
            "next_path": next_path,
            "username": username,
            "error": error,
            "signed_out": signed_out,
        },
        status_code=status,
    )
    set_login_csrf_cookie(response, request, token)
    return response
