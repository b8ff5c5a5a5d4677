"""What keeps the console safe in a browser: security headers, cookies and CSRF checks."""

import secrets
from functools import lru_cache

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reflexblue.core.crypto import tokens_equal
from reflexblue.core.errors import DomainError

SESSION_COOKIE = "reflexblue_session"
LOGIN_CSRF_COOKIE = "reflexblue_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LOGIN_CSRF_MAX_AGE_SECONDS = 60 * 60

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "object-src 'none'",
    )
)
_SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
# The APIs answer JSON to programs and keep their own headers (their docs page may need
# other sources); everything else is the console.
_API_PREFIX = "/api/"


class CsrfRefused(DomainError):
    title = "Request refused"

    def __init__(self) -> None:
        super().__init__(
            "This form did not come from a page of this console, or it has expired. "
            "Go back, reload the page and try again."
        )


class SecurityHeaders:
    """ASGI middleware that puts the console's security headers on every console response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_API_PREFIX):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def is_https(request: Request) -> bool:
    # The scope's scheme is what `request.url` would be built from, without parsing a URL.
    return request.scope.get("scheme") == "https"


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    # No max-age: the browser forgets the cookie when it closes, the server expires it anyway.
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
        path="/",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, httponly=True, samesite="lax", secure=is_https(request), path="/"
    )


def login_csrf_token(request: Request) -> str:
    """The pre-session token of the login form: the cookie's, or a fresh one."""
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)


def set_login_csrf_cookie(response: Response, request: Request, token: str) -> None:
    response.raw_headers.append((b"set-cookie", _login_csrf_cookie(token, is_https(request))))


@lru_cache(maxsize=256)
def _login_csrf_cookie(token: str, secure: bool) -> bytes:
    """The Set-Cookie value for the login form's token, formatted by Starlette once per token:
    a flood of sign-ins refused at the door sends the same token again and again, and the
    formatting costs more than the rest of such a refusal."""
    scratch = Response()
    scratch.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=LOGIN_CSRF_MAX_AGE_SECONDS,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/login",
    )
    return next(value for name, value in scratch.raw_headers if name == b"set-cookie")


def check_login_csrf(request: Request, submitted: str | None) -> None:
    """Double submit: the form's hidden token must equal the cookie only this site could set."""
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or not submitted or not tokens_equal(expected, submitted):
        raise CsrfRefused()


def check_csrf(expected: str, request: Request, submitted: str | None) -> None:
    """A state-changing request must carry the session's token, in the form or the header."""
    offered = submitted or request.headers.get(CSRF_HEADER)
    if not offered or not tokens_equal(expected, offered):
        raise CsrfRefused()
