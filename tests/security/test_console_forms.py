"""The console over HTTP: CSRF on every form, a new session at each sign-in, cookie flags and
the security headers of every page."""

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from reflexblue.accounts.models import Role
from reflexblue.console.security import CONTENT_SECURITY_POLICY, LOGIN_CSRF_COOKIE
from reflexblue.core.database import Base
from reflexblue.core.runtime import Runtime
from tests.conftest import TEST_PASSWORD, make_user
from tests.console.conftest import OVERVIEW, csrf_of, log_in
from tests.security.test_authorisation_matrix import (
    ROUTES,
    SESSION_COOKIE,
    Caller,
    Rule,
    World,
    build_world,
    fail_deliveries,
)

CONSOLE_FORMS = {
    path: row
    for (method, path), row in ROUTES.items()
    if method == "POST" and row.rule in (Rule.CONSOLE_WRITE, Rule.CONSOLE_SIGN_OUT)
}
CONSOLE_PAGES = {
    path: row
    for (method, path), row in ROUTES.items()
    if method == "GET" and row.rule in (Rule.CONSOLE_READ, Rule.CONSOLE_WRITE)
}
_SCRIPT_TAG = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.DOTALL | re.IGNORECASE)
_EVENT_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
_JAVASCRIPT_URL = re.compile(r"(href|src|action)\s*=\s*\"\s*javascript:", re.IGNORECASE)


async def _snapshot(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to compare before and after a refused request."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    async with runtime.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            result = await connection.execute(select(table))
            rows[table.name] = sorted((tuple(row) for row in result), key=repr)
    return rows


def _signed(world: World, caller: Caller) -> dict[str, str]:
    token, _ = world.sessions[caller]
    return {"Cookie": f"{SESSION_COOKIE}={token}"}


async def _world(runtime: Runtime, client: httpx.AsyncClient) -> World:
    world = await build_world(runtime, client)
    await fail_deliveries(runtime, world)
    return world


@pytest.mark.parametrize(
    "forgery",
    ["no token", "empty token", "the viewer's token", "a token of the right form", "header only"],
)
async def test_every_console_form_refuses_a_request_without_the_sessions_token(
    runtime: Runtime, client: httpx.AsyncClient, forgery: str
) -> None:
    world = await _world(runtime, client)
    _, viewer_token = world.sessions[Caller.VIEWER_SESSION]
    _, admin_token = world.sessions[Caller.ADMIN_SESSION]
    submitted = {
        "no token": None,
        "empty token": "",
        "the viewer's token": viewer_token,
        "a token of the right form": "A" * len(admin_token),
        "header only": None,
    }[forgery]
    before = await _snapshot(runtime)

    for template, row in CONSOLE_FORMS.items():
        form = dict(row.body or {})
        if submitted is not None:
            form["csrf_token"] = submitted
        headers = _signed(world, Caller.ADMIN_SESSION)
        if forgery == "header only":
            headers["X-CSRF-Token"] = viewer_token
        response = await client.post(row.path.format(**world.ids), data=form, headers=headers)

        assert response.status_code == 403, template
        assert "did not come from a page of this console" in response.text

    assert await _snapshot(runtime) == before


async def test_the_right_token_in_the_form_is_accepted(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    """The other side of the refusals above: the same request with the session's token works."""
    world = await _world(runtime, client)
    _, token = world.sessions[Caller.ADMIN_SESSION]
    row = CONSOLE_FORMS[f"{OVERVIEW}/{{integration_id}}/secret/rotate"]

    response = await client.post(
        row.path.format(**world.ids),
        data={"csrf_token": token},
        headers=_signed(world, Caller.ADMIN_SESSION),
    )

    assert response.status_code == 303


@pytest.mark.parametrize(
    ("cookie", "field"),
    [(None, None), ("cookie-token", None), (None, "field-token"), ("cookie-token", "other")],
)
async def test_the_login_form_refuses_a_request_without_its_token_pair(
    runtime: Runtime, visitor: httpx.AsyncClient, cookie: str | None, field: str | None
) -> None:
    await make_user(runtime, "alice", Role.ADMIN)
    form = {"username": "alice", "password": "correct horse battery staple"}
    if field is not None:
        form["csrf_token"] = field
    headers = {"Cookie": f"{LOGIN_CSRF_COOKIE}={cookie}"} if cookie else {}

    response = await visitor.post("/login", data=form, headers=headers)

    assert response.status_code == 403
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


async def test_a_session_cookie_planted_before_sign_in_is_replaced_and_ended(
    runtime: Runtime, visitor: httpx.AsyncClient
) -> None:
    await make_user(runtime, "alice", Role.ADMIN)
    await make_user(runtime, "mallory", Role.VIEWER)
    # The attacker signs in, then plants their own session cookie in the victim's browser.
    await log_in(visitor, "mallory")
    planted = visitor.cookies[SESSION_COOKIE]

    signed_in = await _log_in_carrying(visitor, "alice", planted)

    fresh = _set_cookie_value(signed_in, SESSION_COOKIE)
    assert signed_in.status_code == 303
    assert fresh != planted
    visitor.cookies.clear()
    with_planted = await visitor.get(OVERVIEW, headers={"Cookie": f"{SESSION_COOKIE}={planted}"})
    assert with_planted.headers["location"].startswith("/login?next=")


async def test_a_made_up_session_id_is_never_adopted(
    runtime: Runtime, visitor: httpx.AsyncClient
) -> None:
    await make_user(runtime, "alice", Role.ADMIN)
    chosen = "rbs_" + "A" * 43

    signed_in = await _log_in_carrying(visitor, "alice", chosen)

    assert signed_in.status_code == 303
    assert _set_cookie_value(signed_in, SESSION_COOKIE) != chosen
    visitor.cookies.clear()
    response = await visitor.get(OVERVIEW, headers={"Cookie": f"{SESSION_COOKIE}={chosen}"})
    assert response.status_code == 303


async def _log_in_carrying(
    visitor: httpx.AsyncClient, username: str, session_id: str
) -> httpx.Response:
    """Sign in from a browser that already holds `session_id` as its session cookie."""
    visitor.cookies.clear()
    form = await visitor.get("/login")
    login_token = visitor.cookies[LOGIN_CSRF_COOKIE]
    cookies = f"{SESSION_COOKIE}={session_id}; {LOGIN_CSRF_COOKIE}={login_token}"
    return await visitor.post(
        "/login",
        data={"csrf_token": csrf_of(form.text), "username": username, "password": TEST_PASSWORD},
        headers={"Cookie": cookies},
    )


def _set_cookie_header(response: httpx.Response, name: str) -> str:
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    return header


def _set_cookie_value(response: httpx.Response, name: str) -> str:
    return _set_cookie_header(response, name).split(";", 1)[0].removeprefix(f"{name}=")


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_the_login_form_cookie_is_strict_http_only_and_scoped_to_the_login_page(
    visitor: httpx.AsyncClient, scheme: str
) -> None:
    response = await visitor.get(f"{scheme}://testserver/login")

    cookie = response.headers["set-cookie"]
    assert cookie.startswith("reflexblue_login_csrf=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/login" in cookie
    assert ("Secure" in cookie) == (scheme == "https")
    assert csrf_of(response.text) in cookie


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_the_session_cookie_has_no_domain_and_no_lifetime_and_sign_out_clears_it(
    runtime: Runtime, visitor: httpx.AsyncClient, scheme: str
) -> None:
    await make_user(runtime, "alice", Role.ADMIN)
    visitor.base_url = httpx.URL(f"{scheme}://testserver")
    signed_in = await log_in(visitor, "alice")
    token = csrf_of((await visitor.get(f"{OVERVIEW}/new")).text)

    signed_out = await visitor.post("/logout", data={"csrf_token": token})

    issued = _set_cookie_header(signed_in, SESSION_COOKIE).lower()
    assert "domain=" not in issued
    assert "max-age" not in issued
    assert "expires" not in issued
    cleared = _set_cookie_header(signed_out, SESSION_COOKIE)
    assert cleared.startswith(f'{SESSION_COOKIE}=""') or cleared.startswith(f"{SESSION_COOKIE}=;")
    assert "Max-Age=0" in cleared
    assert "HttpOnly" in cleared
    assert ("Secure" in cleared) == (scheme == "https")


def _assert_secure_headers(response: httpx.Response, what: str) -> None:
    headers = response.headers
    assert headers.get("content-security-policy") == CONTENT_SECURITY_POLICY, what
    assert headers["x-content-type-options"] == "nosniff", what
    assert headers["x-frame-options"] == "DENY", what


def test_the_policy_allows_no_inline_script_and_no_framing() -> None:
    directives = dict(
        ([*part.split(" ", 1), ""])[:2] for part in CONTENT_SECURITY_POLICY.split("; ")
    )

    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert "*" not in CONTENT_SECURITY_POLICY


async def test_every_console_page_carries_the_headers_and_holds_no_inline_script(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    world = await _world(runtime, client)
    extra = {
        "missing integration": f"{OVERVIEW}/int_missing",
        "unknown page": "/management/nothing-here",
        "style sheet": "/static/console.css",
        "script": "/static/console.js",
    }
    paths = {template: row.path.format(**world.ids) for template, row in CONSOLE_PAGES.items()}

    responses = {
        what: await client.get(path, headers=_signed(world, Caller.ADMIN_SESSION))
        for what, path in {**paths, **extra}.items()
    }
    # Signed in, the login page redirects to the console; it is the signed-out visitor's page.
    responses["login page"] = await client.get("/login", headers={"Cookie": ""})

    for what, response in responses.items():
        _assert_secure_headers(response, what)
        if "html" in response.headers.get("content-type", ""):
            for attributes, body in _SCRIPT_TAG.findall(response.text):
                assert "src=" in attributes, what
                assert not body.strip(), what
            assert not _EVENT_HANDLER.search(response.text), what
            assert not _JAVASCRIPT_URL.search(response.text), what


async def test_redirects_and_refusals_carry_the_headers_too(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    world = await _world(runtime, client)
    without_session = await client.get(OVERVIEW)
    viewer_refused = await client.get(
        f"{OVERVIEW}/new", headers=_signed(world, Caller.VIEWER_SESSION)
    )

    assert without_session.status_code == 303
    assert viewer_refused.status_code == 403
    for response in (without_session, viewer_refused):
        _assert_secure_headers(response, str(response.url))
