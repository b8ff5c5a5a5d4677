"""Who may call what: every route of the console and both APIs, called by every kind of caller.

The routes come from the application itself, so a route added without a row here fails the
test; each row names the route's access rule, and each rule says what each caller gets.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
from fastapi.routing import iter_route_contexts
from sqlalchemy import update
from starlette.routing import BaseRoute, Mount

from reflexblue.accounts.models import ConsoleSession, Role
from reflexblue.accounts.service import create_token, revoke_token
from reflexblue.accounts.sessions import sign_in
from reflexblue.app import create_app
from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction, utcnow
from reflexblue.core.runtime import Runtime
from reflexblue.core.settings import Settings
from reflexblue.integrations.api_keys import ApiKeyCreate, create_api_key, revoke_api_key
from reflexblue.integrations.models import ApiKey
from reflexblue.webhooks.models import Delivery, DeliveryStatus
from tests.conftest import TEST_PASSWORD, make_user
from tests.external.conftest import PUBLIC_URL, client_with, make_caller

MANAGEMENT = "/api/management"
EXTERNAL = "/api/external/v1"
CONSOLE = "/management/general/integrations"
SESSION_COOKIE = "reflexblue_session"
LOGIN_CSRF_COOKIE = "reflexblue_login_csrf"


class Answer(StrEnum):
    OK = "2xx"
    DONE = "2xx or 303 onward"  # a console form that did its work, or a redirect to a page
    LOGIN = "303 to the login page"
    UNAUTHENTICATED = "401"
    FORBIDDEN = "403"
    NOT_FOUND = "404"


class Caller(StrEnum):
    # Ordered so that the callers whose request succeeds (and may delete) come last.
    ANONYMOUS = "no credentials"
    REVOKED_USER_TOKEN = "revoked user token"
    REVOKED_KEY = "revoked API key"
    EXPIRED_KEY = "expired API key"
    EXPIRED_SESSION = "expired console session"
    VIEWER_TOKEN = "viewer's user token"
    VIEWER_SESSION = "viewer's console session"
    OTHER_KEY = "API key of another integration"
    OWN_KEY = "the integration's own API key"
    ADMIN_SESSION = "administrator's console session"
    ADMIN_TOKEN = "administrator's user token"


class Rule(StrEnum):
    PUBLIC = "anyone"
    MANAGEMENT_READ = "user token, any role"
    MANAGEMENT_WRITE = "user token, administrator"
    EXTERNAL_OWN = "API key, own resource only"
    EXTERNAL_ANY = "API key, its own collection"
    CONSOLE_READ = "console session, any role"
    CONSOLE_WRITE = "console session, administrator"
    CONSOLE_SIGN_OUT = "console session, any role, and it ends"


_EVERY_CALLER_REFUSED = {caller: Answer.UNAUTHENTICATED for caller in Caller}
_CONSOLE_REFUSED = {caller: Answer.LOGIN for caller in Caller}

EXPECTED: dict[Rule, dict[Caller, Answer]] = {
    Rule.PUBLIC: {caller: Answer.DONE for caller in Caller},
    Rule.MANAGEMENT_READ: {
        **_EVERY_CALLER_REFUSED,
        Caller.VIEWER_TOKEN: Answer.OK,
        Caller.ADMIN_TOKEN: Answer.OK,
    },
    Rule.MANAGEMENT_WRITE: {
        **_EVERY_CALLER_REFUSED,
        Caller.VIEWER_TOKEN: Answer.FORBIDDEN,
        Caller.ADMIN_TOKEN: Answer.OK,
    },
    Rule.EXTERNAL_OWN: {
        **_EVERY_CALLER_REFUSED,
        Caller.OTHER_KEY: Answer.NOT_FOUND,
        Caller.OWN_KEY: Answer.OK,
    },
    Rule.EXTERNAL_ANY: {
        **_EVERY_CALLER_REFUSED,
        Caller.OTHER_KEY: Answer.OK,
        Caller.OWN_KEY: Answer.OK,
    },
    Rule.CONSOLE_READ: {
        **_CONSOLE_REFUSED,
        Caller.VIEWER_SESSION: Answer.OK,
        Caller.ADMIN_SESSION: Answer.OK,
    },
    Rule.CONSOLE_SIGN_OUT: {
        **_CONSOLE_REFUSED,
        Caller.VIEWER_SESSION: Answer.DONE,
        Caller.ADMIN_SESSION: Answer.DONE,
    },
    Rule.CONSOLE_WRITE: {
        **_CONSOLE_REFUSED,
        Caller.VIEWER_SESSION: Answer.FORBIDDEN,
        Caller.ADMIN_SESSION: Answer.DONE,
    },
}


@dataclass
class World:
    """The ids the requests use, and what each caller presents."""

    ids: dict[str, str] = field(default_factory=dict)
    bearer: dict[Caller, str] = field(default_factory=dict)
    sessions: dict[Caller, tuple[str, str]] = field(default_factory=dict)  # token, CSRF token


@dataclass(frozen=True)
class Row:
    rule: Rule
    path: str  # filled from World.ids
    body: dict[str, Any] | None = None  # JSON for the APIs, a form for the console


SINCE = "2026-01-01T00:00:00Z"
# Every route there is, by (method, template); a mount is listed as ("MOUNT", its path).
ROUTES: dict[tuple[str, str], Row] = {
    ("MOUNT", "/static"): Row(Rule.PUBLIC, "/static/console.css"),
    ("GET", "/"): Row(Rule.PUBLIC, "/"),
    ("GET", "/healthz"): Row(Rule.PUBLIC, "/healthz"),
    ("GET", "/readyz"): Row(Rule.PUBLIC, "/readyz"),
    ("GET", "/metrics"): Row(Rule.PUBLIC, "/metrics"),
    ("GET", "/login"): Row(Rule.PUBLIC, "/login"),
    # Management API.
    ("GET", f"{MANAGEMENT}/openapi.json"): Row(Rule.PUBLIC, f"{MANAGEMENT}/openapi.json"),
    ("GET", f"{MANAGEMENT}/integrations"): Row(Rule.MANAGEMENT_READ, f"{MANAGEMENT}/integrations"),
    ("POST", f"{MANAGEMENT}/integrations"): Row(
        Rule.MANAGEMENT_WRITE,
        f"{MANAGEMENT}/integrations",
        {"name": "Matrix", "external_id": "m", "export_id": "MATRIX"},
    ),
    ("GET", f"{MANAGEMENT}/integrations/{{id}}"): Row(
        Rule.MANAGEMENT_READ, f"{MANAGEMENT}/integrations/{{own}}"
    ),
    ("PATCH", f"{MANAGEMENT}/integrations/{{id}}"): Row(
        Rule.MANAGEMENT_WRITE, f"{MANAGEMENT}/integrations/{{own}}", {"description": "checked"}
    ),
    ("DELETE", f"{MANAGEMENT}/integrations/{{id}}"): Row(
        Rule.MANAGEMENT_WRITE, f"{MANAGEMENT}/integrations/{{doomed_by_api}}"
    ),
    ("GET", f"{MANAGEMENT}/integrations/{{id}}/secret"): Row(
        Rule.MANAGEMENT_WRITE, f"{MANAGEMENT}/integrations/{{own}}/secret"
    ),
    ("POST", f"{MANAGEMENT}/integrations/{{id}}/secret/rotate"): Row(
        Rule.MANAGEMENT_WRITE, f"{MANAGEMENT}/integrations/{{own}}/secret/rotate"
    ),
    ("GET", f"{MANAGEMENT}/audit-log"): Row(Rule.MANAGEMENT_READ, f"{MANAGEMENT}/audit-log"),
    ("GET", f"{MANAGEMENT}/integrations/{{id}}/api-keys"): Row(
        Rule.MANAGEMENT_READ, f"{MANAGEMENT}/integrations/{{own}}/api-keys"
    ),
    ("POST", f"{MANAGEMENT}/integrations/{{id}}/api-keys"): Row(
        Rule.MANAGEMENT_WRITE, f"{MANAGEMENT}/integrations/{{own}}/api-keys", {"name": "matrix"}
    ),
    ("DELETE", f"{MANAGEMENT}/integrations/{{id}}/api-keys/{{key_id}}"): Row(
        Rule.MANAGEMENT_WRITE, f"{MANAGEMENT}/integrations/{{own}}/api-keys/{{key_by_api}}"
    ),
    ("GET", f"{MANAGEMENT}/event-types"): Row(Rule.MANAGEMENT_READ, f"{MANAGEMENT}/event-types"),
    ("POST", f"{MANAGEMENT}/event-types"): Row(
        Rule.MANAGEMENT_WRITE, f"{MANAGEMENT}/event-types", {"name": "matrix.checked"}
    ),
    ("POST", f"{MANAGEMENT}/events"): Row(
        Rule.MANAGEMENT_WRITE, f"{MANAGEMENT}/events", {"type": "webhook.test", "data": {}}
    ),
    ("POST", f"{MANAGEMENT}/events/batch"): Row(
        Rule.MANAGEMENT_WRITE,
        f"{MANAGEMENT}/events/batch",
        {"events": [{"type": "webhook.test", "data": {}}]},
    ),
    # External API.
    ("GET", f"{EXTERNAL}/openapi.json"): Row(Rule.PUBLIC, f"{EXTERNAL}/openapi.json"),
    ("GET", f"{EXTERNAL}/docs"): Row(Rule.PUBLIC, f"{EXTERNAL}/docs"),
    ("MOUNT", f"{EXTERNAL}/static"): Row(Rule.PUBLIC, f"{EXTERNAL}/static/redoc.standalone.js"),
    ("GET", f"{EXTERNAL}/integration"): Row(Rule.EXTERNAL_ANY, f"{EXTERNAL}/integration"),
    ("GET", f"{EXTERNAL}/event-types"): Row(Rule.EXTERNAL_ANY, f"{EXTERNAL}/event-types"),
    ("GET", f"{EXTERNAL}/webhooks"): Row(Rule.EXTERNAL_ANY, f"{EXTERNAL}/webhooks"),
    ("POST", f"{EXTERNAL}/webhooks"): Row(
        Rule.EXTERNAL_ANY, f"{EXTERNAL}/webhooks", {"url": PUBLIC_URL, "event_types": ["*"]}
    ),
    ("GET", f"{EXTERNAL}/webhooks/{{id}}"): Row(
        Rule.EXTERNAL_OWN, f"{EXTERNAL}/webhooks/{{webhook}}"
    ),
    ("PATCH", f"{EXTERNAL}/webhooks/{{id}}"): Row(
        Rule.EXTERNAL_OWN, f"{EXTERNAL}/webhooks/{{webhook}}", {"description": "checked"}
    ),
    ("DELETE", f"{EXTERNAL}/webhooks/{{id}}"): Row(
        Rule.EXTERNAL_OWN, f"{EXTERNAL}/webhooks/{{doomed_webhook}}"
    ),
    ("POST", f"{EXTERNAL}/webhooks/{{id}}/test"): Row(
        Rule.EXTERNAL_OWN, f"{EXTERNAL}/webhooks/{{webhook}}/test"
    ),
    ("GET", f"{EXTERNAL}/webhooks/{{id}}/deliveries"): Row(
        Rule.EXTERNAL_OWN, f"{EXTERNAL}/webhooks/{{webhook}}/deliveries"
    ),
    ("GET", f"{EXTERNAL}/deliveries/{{id}}"): Row(
        Rule.EXTERNAL_OWN, f"{EXTERNAL}/deliveries/{{delivery_by_api}}"
    ),
    ("POST", f"{EXTERNAL}/deliveries/{{id}}/retry"): Row(
        Rule.EXTERNAL_OWN, f"{EXTERNAL}/deliveries/{{delivery_by_api}}/retry"
    ),
    ("GET", f"{EXTERNAL}/webhooks/{{id}}/recover"): Row(
        Rule.EXTERNAL_OWN, f"{EXTERNAL}/webhooks/{{webhook}}/recover?since={SINCE}"
    ),
    ("POST", f"{EXTERNAL}/webhooks/{{id}}/recover"): Row(
        Rule.EXTERNAL_OWN, f"{EXTERNAL}/webhooks/{{webhook}}/recover", {"since": SINCE}
    ),
    ("GET", f"{EXTERNAL}/recoveries/{{id}}"): Row(
        Rule.EXTERNAL_OWN, f"{EXTERNAL}/recoveries/{{recovery}}"
    ),
    # Console.
    ("GET", CONSOLE): Row(Rule.CONSOLE_READ, CONSOLE),
    ("GET", f"{CONSOLE}/new"): Row(Rule.CONSOLE_WRITE, f"{CONSOLE}/new"),
    ("POST", f"{CONSOLE}/new"): Row(
        Rule.CONSOLE_WRITE,
        f"{CONSOLE}/new",
        {"name": "Console", "external_id": "c", "export_id": "CONSOLE_NEW", "description": ""},
    ),
    ("GET", f"{CONSOLE}/{{integration_id}}"): Row(Rule.CONSOLE_READ, f"{CONSOLE}/{{own}}"),
    ("POST", f"{CONSOLE}/{{integration_id}}"): Row(
        Rule.CONSOLE_WRITE,
        f"{CONSOLE}/{{edited_in_console}}",
        {"name": "Edited", "external_id": "e", "export_id": "EDITED", "version": "1"},
    ),
    ("POST", f"{CONSOLE}/{{integration_id}}/secret/reveal"): Row(
        Rule.CONSOLE_WRITE, f"{CONSOLE}/{{own}}/secret/reveal", {}
    ),
    ("POST", f"{CONSOLE}/{{integration_id}}/secret/rotate"): Row(
        Rule.CONSOLE_WRITE, f"{CONSOLE}/{{own}}/secret/rotate", {}
    ),
    ("POST", f"{CONSOLE}/{{integration_id}}/delete"): Row(
        Rule.CONSOLE_WRITE, f"{CONSOLE}/{{doomed_in_console}}/delete", {}
    ),
    ("POST", f"{CONSOLE}/{{integration_id}}/api-keys"): Row(
        Rule.CONSOLE_WRITE,
        f"{CONSOLE}/{{own}}/api-keys",
        {"name": "console", "expires_in_days": ""},
    ),
    ("POST", f"{CONSOLE}/{{integration_id}}/api-keys/{{key_id}}/revoke"): Row(
        Rule.CONSOLE_WRITE, f"{CONSOLE}/{{own}}/api-keys/{{key_in_console}}/revoke", {}
    ),
    ("GET", f"{CONSOLE}/{{integration_id}}/webhooks/{{webhook_id}}"): Row(
        Rule.CONSOLE_READ, f"{CONSOLE}/{{own}}/webhooks/{{webhook}}"
    ),
    ("POST", f"{CONSOLE}/{{integration_id}}/webhooks/{{webhook_id}}/test"): Row(
        Rule.CONSOLE_WRITE, f"{CONSOLE}/{{own}}/webhooks/{{webhook}}/test", {}
    ),
    (
        "POST",
        f"{CONSOLE}/{{integration_id}}/webhooks/{{webhook_id}}/deliveries/{{delivery_id}}/retry",
    ): Row(
        Rule.CONSOLE_WRITE,
        f"{CONSOLE}/{{own}}/webhooks/{{webhook}}/deliveries/{{delivery_in_console}}/retry",
        {},
    ),
    ("POST", f"{CONSOLE}/{{integration_id}}/webhooks/{{webhook_id}}/recover"): Row(
        Rule.CONSOLE_WRITE,
        f"{CONSOLE}/{{own}}/webhooks/{{webhook}}/recover",
        {"since": "2026-01-01T00:00"},
    ),
    # Last, as they end sessions: signing out, and signing in (which ends the caller's session).
    ("POST", "/logout"): Row(Rule.CONSOLE_SIGN_OUT, "/logout", {}),
    ("POST", "/login"): Row(Rule.PUBLIC, "/login", {"username": "mallory"}),
}


def _routes_of(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    for context in iter_route_contexts(routes):
        route = context.original_route
        if isinstance(route, Mount):
            inner = getattr(route.app, "routes", None)
            if inner is None:
                yield "MOUNT", prefix + route.path
            else:
                yield from _routes_of(inner, prefix + route.path)
            continue
        for method in sorted(set(context.methods or ()) - {"HEAD"}):
            yield method, prefix + (context.path or "")


def test_the_table_names_every_route_of_the_application(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None, data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/r.db"
    )
    routes = set(_routes_of(create_app(settings).routes))

    assert routes == set(ROUTES)


async def _key(runtime: Runtime, integration_id: str, name: str) -> tuple[str, str]:
    async with transaction(runtime.sessions) as session:
        created = await create_api_key(session, integration_id, ApiKeyCreate(name=name), CLI_ACTOR)
    return created.id, created.key


async def build_world(runtime: Runtime, api: httpx.AsyncClient) -> World:
    world = World()
    viewer = await make_user(runtime, "victor", Role.VIEWER)
    admin = await make_user(runtime, "alice", Role.ADMIN)
    await make_user(runtime, "mallory", Role.VIEWER)
    own = await make_caller(runtime, "ERP_ONE")
    other = await make_caller(runtime, "CRM_TWO")
    world.ids["own"] = own.integration_id
    for name in ("doomed_by_api", "doomed_in_console", "edited_in_console"):
        world.ids[name] = (await make_caller(runtime, name.upper())).integration_id
    world.ids["key_by_api"], _ = await _key(runtime, own.integration_id, "doomed by api")
    world.ids["key_in_console"], _ = await _key(runtime, own.integration_id, "doomed in console")
    revoked_id, revoked_key = await _key(runtime, own.integration_id, "revoked")
    expired_id, expired_key = await _key(runtime, own.integration_id, "expired")
    async with transaction(runtime.sessions) as session:
        await revoke_api_key(session, revoked_id, CLI_ACTOR)
        await session.execute(
            update(ApiKey).where(ApiKey.id == expired_id).values(expires_at=utcnow())
        )
        token_row, revoked_token = await create_token(session, "alice", "revoked", CLI_ACTOR)
        await revoke_token(session, token_row.id, CLI_ACTOR)

    await _add_webhooks(world, api, own.headers)
    world.bearer = {
        Caller.REVOKED_USER_TOKEN: revoked_token,
        Caller.REVOKED_KEY: revoked_key,
        Caller.EXPIRED_KEY: expired_key,
        Caller.VIEWER_TOKEN: viewer.token,
        Caller.OTHER_KEY: other.key,
        Caller.OWN_KEY: own.key,
        Caller.ADMIN_TOKEN: admin.token,
    }
    world.sessions = {
        Caller.VIEWER_SESSION: await _console_session(runtime, "victor"),
        Caller.ADMIN_SESSION: await _console_session(runtime, "alice"),
        Caller.EXPIRED_SESSION: await _console_session(runtime, "alice", expired=True),
    }
    return world


async def _add_webhooks(world: World, api: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """A webhook with two failed deliveries and a recovery, and a webhook to delete."""
    for name in ("webhook", "doomed_webhook"):
        created = await api.post(
            f"{EXTERNAL}/webhooks",
            json={"url": PUBLIC_URL, "event_types": ["*"]},
            headers=headers,
        )
        world.ids[name] = created.json()["id"]
    for name in ("delivery_by_api", "delivery_in_console"):
        test = await api.post(f"{EXTERNAL}/webhooks/{world.ids['webhook']}/test", headers=headers)
        world.ids[name] = test.json()["id"]
    recovery = await api.post(
        f"{EXTERNAL}/webhooks/{world.ids['webhook']}/recover",
        json={"since": SINCE},
        headers=headers,
    )
    world.ids["recovery"] = recovery.json()["id"]


async def fail_deliveries(runtime: Runtime, world: World) -> None:
    ids = [world.ids["delivery_by_api"], world.ids["delivery_in_console"]]
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(Delivery).where(Delivery.id.in_(ids)).values(status=DeliveryStatus.FAILED)
        )


async def _console_session(
    runtime: Runtime, username: str, *, expired: bool = False
) -> tuple[str, str]:
    async with transaction(runtime.sessions) as session:
        token, signed_in = await sign_in(session, username, TEST_PASSWORD)
    if expired:
        async with transaction(runtime.sessions) as session:
            await session.execute(
                update(ConsoleSession)
                .where(ConsoleSession.csrf_token == signed_in.csrf_token)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
    return token, signed_in.csrf_token


def _request_for(world: World, caller: Caller, row: Row, method: str) -> dict[str, Any]:
    headers: dict[str, str] = {}
    if caller in world.bearer:
        headers["Authorization"] = f"Bearer {world.bearer[caller]}"
    token, csrf = world.sessions.get(caller, ("", "forged-token"))
    cookies = [f"{SESSION_COOKIE}={token}"] if token else []
    request: dict[str, Any] = {"method": method, "url": row.path.format(**world.ids)}
    if row.body is not None and row.rule in (Rule.CONSOLE_WRITE, Rule.CONSOLE_SIGN_OUT):
        request["data"] = {**row.body, "csrf_token": csrf}
    elif row.path == "/login":
        # A real login form: its CSRF pair, and the right password of a third user.
        cookies.append(f"{LOGIN_CSRF_COOKIE}=login-form-token")
        request["data"] = {**(row.body or {}), "password": TEST_PASSWORD}
        request["data"]["csrf_token"] = "login-form-token"
    elif row.body is not None:
        request["json"] = row.body
    if cookies:
        headers["Cookie"] = "; ".join(cookies)
    request["headers"] = headers
    return request


def _answer_of(response: httpx.Response) -> Answer | int:
    status = response.status_code
    location = response.headers.get("location", "")
    if status == 303 and location.startswith("/login?next="):
        return Answer.LOGIN
    known = {401: Answer.UNAUTHENTICATED, 403: Answer.FORBIDDEN, 404: Answer.NOT_FOUND}
    if status in known:
        return known[status]
    if 200 <= status < 300 or status == 303:
        return Answer.OK if 200 <= status < 300 else Answer.DONE
    return status


def _matches(expected: Answer, got: Answer | int) -> bool:
    if expected == Answer.DONE:
        return got in (Answer.OK, Answer.DONE)
    return got == expected


async def test_every_caller_gets_exactly_what_the_rules_allow_on_every_route(
    runtime: Runtime,
) -> None:
    # Every caller comes from the one address of the test transport, and the wrong keys among
    # them would soon have it refused 429 for every key (tests/hardening/test_flood_limits.py);
    # here each answer is the route's rule alone.
    async with client_with(runtime, external_failed_key_burst=100_000) as client:
        world = await build_world(runtime, client)
        await fail_deliveries(runtime, world)
        mismatches: list[str] = []

        for (method, template), row in ROUTES.items():
            verb = "GET" if method == "MOUNT" else method
            for caller in Caller:
                client.cookies.clear()
                response = await client.request(**_request_for(world, caller, row, verb))
                expected = EXPECTED[row.rule][caller]
                got = _answer_of(response)
                if not _matches(expected, got):
                    mismatches.append(f"{method} {template} as {caller}: {got}, not {expected}")

    assert mismatches == []
