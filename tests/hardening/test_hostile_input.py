"""Hostile bodies at every door that takes one: each JSON route of both APIs and each console
form. Every answer is a 4xx that says what is wrong (problem details from the APIs, an error
page or the form again from the console), never a 5xx or a hang, and afterwards every row of
every table is as it was.

The JSON routes come from the APIs' own OpenAPI documents and the forms from the application's
route table (via the authorisation matrix), so a route added later without a row here fails.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select

from reflexblue.core.database import Base
from reflexblue.core.runtime import Runtime
from tests.conftest import ApiUser
from tests.external.conftest import PUBLIC_URL, Caller, client_with, make_caller
from tests.security.test_authorisation_matrix import (
    ROUTES,
    SESSION_COOKIE,
    Rule,
    World,
    build_world,
    fail_deliveries,
)
from tests.security.test_authorisation_matrix import Caller as MatrixCaller
from tests.support.management import PROBLEM_CONTENT_TYPE

MANAGEMENT = "/api/management"
EXTERNAL = "/api/external/v1"
MIB = 1024 * 1024
# Far longer than any answer takes; a request still waiting then is hanging.
ANSWER_WITHIN_SECONDS = 20.0
NESTING = 100_000
Snapshot = dict[str, list[tuple[Any, ...]]]


# --- what is sent -------------------------------------------------------------------------


@dataclass(frozen=True)
class Door:
    """A JSON route, the ids its path needs, and a body it accepts."""

    path: str  # filled from the world's ids
    valid: Any
    credential: str  # "admin" or "key"


# Every route of both APIs whose OpenAPI operation has a request body.
DOORS: dict[tuple[str, str], Door] = {
    ("POST", f"{MANAGEMENT}/integrations"): Door(
        f"{MANAGEMENT}/integrations",
        {"name": "Hostile", "external_id": "h", "export_id": "HOSTILE"},
        "admin",
    ),
    ("PATCH", f"{MANAGEMENT}/integrations/{{id}}"): Door(
        f"{MANAGEMENT}/integrations/{{integration}}", {"name": "Renamed"}, "admin"
    ),
    ("POST", f"{MANAGEMENT}/integrations/{{id}}/api-keys"): Door(
        f"{MANAGEMENT}/integrations/{{integration}}/api-keys", {"name": "hostile"}, "admin"
    ),
    ("POST", f"{MANAGEMENT}/event-types"): Door(
        f"{MANAGEMENT}/event-types", {"name": "hostile.tried"}, "admin"
    ),
    ("POST", f"{MANAGEMENT}/events"): Door(
        f"{MANAGEMENT}/events", {"type": "webhook.test", "data": {"n": 1}}, "admin"
    ),
    ("POST", f"{MANAGEMENT}/events/batch"): Door(
        f"{MANAGEMENT}/events/batch",
        {"events": [{"type": "webhook.test", "data": {"n": 1}}]},
        "admin",
    ),
    ("POST", f"{EXTERNAL}/webhooks"): Door(
        f"{EXTERNAL}/webhooks", {"url": PUBLIC_URL, "event_types": ["webhook.test"]}, "key"
    ),
    ("PATCH", f"{EXTERNAL}/webhooks/{{id}}"): Door(
        f"{EXTERNAL}/webhooks/{{webhook}}", {"description": "changed"}, "key"
    ),
    ("POST", f"{EXTERNAL}/webhooks/{{id}}/recover"): Door(
        f"{EXTERNAL}/webhooks/{{webhook}}/recover", {"since": "2026-01-01T00:00:00Z"}, "key"
    ),
}


@dataclass(frozen=True)
class Hostile:
    content: bytes
    content_type: str | None = "application/json"


_PLACEHOLDER = "@@hostile@@"


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _every_string(replacement: bytes) -> Callable[[Any], Hostile]:
    """The valid body with every string in it replaced by `replacement`, bytes of JSON."""

    def build(valid: Any) -> Hostile:
        body = _json(_strings_replaced(valid, _PLACEHOLDER))
        return Hostile(body.replace(_json(_PLACEHOLDER), replacement))

    return build


def _strings_replaced(value: Any, replacement: str) -> Any:
    if isinstance(value, str):
        return replacement
    if isinstance(value, dict):
        return {key: _strings_replaced(each, replacement) for key, each in value.items()}
    if isinstance(value, list):
        return [_strings_replaced(each, replacement) for each in value]
    return value


def _first_name_twice(valid: dict[str, Any]) -> Hostile:
    # The same name with the same value: "last one wins" would accept it, so only the
    # repetition itself can be what is refused.
    name, value = next(iter(valid.items()))
    return Hostile(b"{" + _json(name) + b": " + _json(value) + b", " + _json(valid)[1:])


def _multipart(valid: dict[str, Any]) -> Hostile:
    boundary = "hostileboundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in valid.items()
    ]
    body = "".join(parts) + f"--{boundary}--\r\n"
    return Hostile(body.encode(), f"multipart/form-data; boundary={boundary}")


def _form_encoded(valid: dict[str, Any]) -> Hostile:
    fields = "&".join(f"{name}={value}" for name, value in valid.items())
    return Hostile(fields.encode(), "application/x-www-form-urlencoded")


BODIES: dict[str, Callable[[Any], Hostile]] = {
    "100,000 unclosed [": lambda _: Hostile(b"[" * NESTING),
    "100,000 nested arrays": lambda _: Hostile(b"[" * NESTING + b"]" * NESTING),
    "100,000 nested objects": lambda _: Hostile(b'{"a":' * NESTING + b"1" + b"}" * NESTING),
    "every value nested 500 arrays deep": _every_string(b"[" * 500 + b"]" * 500),
    "over 1 MiB": lambda valid: Hostile(_json(valid) + b" " * MIB),
    "invalid UTF-8 in a string": _every_string(b'"\xff\xfe"'),
    "an encoded surrogate (CESU-8)": _every_string(b'"\xed\xa0\x80"'),
    "UTF-16": lambda valid: Hostile(json.dumps(valid).encode("utf-16-le")),
    "a UTF-8 byte order mark": lambda valid: Hostile(b"\xef\xbb\xbf" + _json(valid)),
    "a lone surrogate escaped": _every_string(b'"\\ud800"'),
    "a NUL character": _every_string(b'"a\\u0000b"'),
    "other control characters": _every_string(b'"a\\u0007\\u001bb"'),
    "1e999": _every_string(b"1e999"),
    "-1e999": _every_string(b"-1e999"),
    "NaN": _every_string(b"NaN"),
    "Infinity": _every_string(b"Infinity"),
    "a number of 5,000 digits": _every_string(b"9" * 5000),
    "a duplicate name": _first_name_twice,
    "text/plain": lambda valid: Hostile(_json(valid), "text/plain"),
    "form-encoded": _form_encoded,
    "multipart": _multipart,
    "no content type": lambda valid: Hostile(_json(valid), None),
    "an empty body": lambda _: Hostile(b""),
    "an array": lambda valid: Hostile(_json([valid])),
    "a string": lambda _: Hostile(b'"hostile"'),
    "null": lambda _: Hostile(b"null"),
    "a number": lambda _: Hostile(b"42"),
    "trailing data": lambda valid: Hostile(_json(valid) + b" {}"),
}


# --- the world the requests meet ----------------------------------------------------------


@dataclass
class Setting:
    http: httpx.AsyncClient
    ids: dict[str, str]
    headers: dict[str, dict[str, str]]


@pytest.fixture
async def setting(runtime: Runtime, admin: ApiUser) -> AsyncIterator[Setting]:
    """An integration with an API key and a webhook, and a client without rate limits."""
    caller: Caller = await make_caller(runtime, "HOSTILE_TARGET")
    limits = {"external_rate_limit": 1e6, "external_rate_burst": 1_000_000}
    async with client_with(runtime, **limits) as http:
        created = await http.post(
            f"{EXTERNAL}/webhooks",
            json={"url": PUBLIC_URL, "event_types": ["*"]},
            headers=caller.headers,
        )
        assert created.status_code == 201, created.text
        ids = {"integration": caller.integration_id, "webhook": created.json()["id"]}
        yield Setting(http, ids, {"admin": admin.headers, "key": caller.headers})


async def _snapshot(runtime: Runtime) -> Snapshot:
    rows: Snapshot = {}
    async with runtime.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            result = await connection.execute(select(table))
            rows[table.name] = sorted((tuple(row) for row in result), key=repr)
    return rows


async def _warm_up(setting: Setting) -> None:
    """One accepted read per credential, so that the `last_used_at` each of them writes (once
    a minute at most) is written before the snapshot, not during the hostile requests."""
    for read in (f"{MANAGEMENT}/integrations", f"{EXTERNAL}/webhooks"):
        credential = "admin" if read.startswith(MANAGEMENT) else "key"
        response = await setting.http.get(read, headers=setting.headers[credential])
        assert response.status_code == 200, response.text


async def _send(setting: Setting, method: str, door: Door, hostile: Hostile) -> httpx.Response:
    headers = dict(setting.headers[door.credential])
    if hostile.content_type is not None:
        headers["Content-Type"] = hostile.content_type
    async with asyncio.timeout(ANSWER_WITHIN_SECONDS):
        return await setting.http.request(
            method, door.path.format(**setting.ids), content=hostile.content, headers=headers
        )


def _refusal_problem(response: httpx.Response) -> str | None:
    """What is wrong with the answer as the refusal of a hostile body, or None if nothing."""
    if not 400 <= response.status_code < 500:
        return f"status {response.status_code}: {response.text[:200]}"
    if not response.headers.get("content-type", "").startswith(PROBLEM_CONTENT_TYPE):
        return f"content type {response.headers.get('content-type')}"
    body = response.json()
    if body.get("status") != response.status_code or not body.get("detail"):
        return f"problem details {body}"
    return None


# --- the JSON routes ----------------------------------------------------------------------


async def test_the_table_names_every_route_that_takes_a_json_body(
    client: httpx.AsyncClient,
) -> None:
    documented = set()
    for mount in (MANAGEMENT, EXTERNAL):
        document = (await client.get(f"{mount}/openapi.json")).json()
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                if "requestBody" in operation:
                    documented.add((method.upper(), mount + path))

    assert documented == set(DOORS)


async def test_each_valid_body_of_the_table_is_accepted(runtime: Runtime, setting: Setting) -> None:
    """The other side of the refusals below: the bodies they start from are good ones."""
    for (method, template), door in DOORS.items():
        response = await _send(setting, method, door, Hostile(_json(door.valid)))

        assert 200 <= response.status_code < 300, f"{method} {template}: {response.text}"


@pytest.mark.parametrize("kind", list(BODIES))
async def test_a_hostile_body_is_refused_at_every_json_route_and_changes_nothing(
    runtime: Runtime, setting: Setting, kind: str
) -> None:
    await _warm_up(setting)
    before = await _snapshot(runtime)
    wrong: dict[str, str] = {}

    for (method, template), door in DOORS.items():
        response = await _send(setting, method, door, BODIES[kind](door.valid))
        problem = _refusal_problem(response)
        if problem is not None:
            wrong[f"{method} {template}"] = problem

    assert wrong == {}
    assert await _snapshot(runtime) == before


async def test_a_refused_body_is_told_what_is_wrong_with_it(setting: Setting) -> None:
    door = DOORS[("POST", f"{MANAGEMENT}/events")]
    expected = {
        "a duplicate name": "'type' appears more than once",
        "a UTF-8 byte order mark": "byte order mark",
        "invalid UTF-8 in a string": "not UTF-8",
        "1e999": "beyond the range of a double",
        "NaN": "NaN is not a JSON number",
        "100,000 nested arrays": "too deeply",
        "a number of 5,000 digits": "too many digits",
    }

    for kind, part in expected.items():
        response = await _send(setting, "POST", door, BODIES[kind](door.valid))

        assert part in response.json()["detail"], kind


# --- the console's forms ------------------------------------------------------------------

CONSOLE_FORMS = {
    template: row
    for (method, template), row in ROUTES.items()
    if method == "POST" and row.rule in (Rule.CONSOLE_WRITE, Rule.CONSOLE_SIGN_OUT)
}
# Forms with fields of their own; the others carry only the CSRF token (and the overview's
# sort, order and search, which fall back to defaults when they are not right).
FORMS_WITH_FIELDS = {template for template, row in CONSOLE_FORMS.items() if row.body}
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class HostileForm:
    content: bytes
    content_type: str = FORM_CONTENT_TYPE


def _encoded(fields: list[tuple[str, str]]) -> bytes:
    return urlencode(fields).encode()


def _with_values(change: Callable[[str, str], str]) -> Callable[[dict[str, str]], HostileForm]:
    def build(form: dict[str, str]) -> HostileForm:
        fields = [
            (name, value if name == "csrf_token" else change(name, value))
            for name, value in form.items()
        ]
        return HostileForm(_encoded(fields))

    return build


def _raw_into_first_field(raw: bytes) -> Callable[[dict[str, str]], HostileForm]:
    """The form with `raw` appended, unescaped, to the value of its first own field."""

    def build(form: dict[str, str]) -> HostileForm:
        others = [(name, value) for name, value in form.items() if name != "csrf_token"]
        name, value = others[0] if others else ("name", "")
        rest = _encoded([("csrf_token", form["csrf_token"]), *others[1:]])
        return HostileForm(rest + b"&" + name.encode() + b"=" + value.encode() + raw)

    return build


# Hostile versions of a form a page of the console would send; each applies to every form.
FORMS_ANY: dict[str, Callable[[dict[str, str]], HostileForm]] = {
    "every field twice": lambda form: HostileForm(_encoded([*form.items(), *form.items()])),
    "percent-encoded bytes that are not UTF-8": _raw_into_first_field(b"%FF%FE"),
    "raw bytes that are not UTF-8": _raw_into_first_field(b"\xff\xfe"),
    "an encoded surrogate": _raw_into_first_field(b"%ED%A0%80"),
    "over 64 KiB": lambda form: HostileForm(_encoded([*form.items(), ("pad", "x" * 70_000)])),
    "text/plain": lambda form: HostileForm(_encoded(list(form.items())), "text/plain"),
    "JSON": lambda form: HostileForm(_json(form), "application/json"),
    "multipart": lambda form: HostileForm(
        _multipart(form).content, _multipart(form).content_type or ""
    ),
}
# Hostile values of a form's own fields, for the forms that have some.
FORMS_WITH_OWN_FIELDS: dict[str, Callable[[dict[str, str]], HostileForm]] = {
    "every field 5,000 characters long": _with_values(lambda _, value: "5" * 5000),
    "a NUL in every field": _with_values(lambda _, value: value + "\x00"),
    "other control characters in every field": _with_values(lambda _, value: "\x07\x1b" + value),
    "no field but the token": lambda form: HostileForm(
        _encoded([("csrf_token", form["csrf_token"])])
    ),
}


@pytest.fixture
async def console(runtime: Runtime, client: httpx.AsyncClient) -> World:
    world = await build_world(runtime, client)
    await fail_deliveries(runtime, world)
    return world


async def _post_form(
    client: httpx.AsyncClient, world: World, template: str, hostile: HostileForm
) -> httpx.Response:
    token, _ = world.sessions[MatrixCaller.ADMIN_SESSION]
    headers = {"Cookie": f"{SESSION_COOKIE}={token}", "Content-Type": hostile.content_type}
    path = CONSOLE_FORMS[template].path.format(**world.ids)
    async with asyncio.timeout(ANSWER_WITHIN_SECONDS):
        return await client.post(path, content=hostile.content, headers=headers)


def _form_of(world: World, template: str) -> dict[str, str]:
    _, csrf = world.sessions[MatrixCaller.ADMIN_SESSION]
    return {"csrf_token": csrf, **(CONSOLE_FORMS[template].body or {})}


def _console_refusal_problem(response: httpx.Response) -> str | None:
    """None when the answer is a 4xx page that says what went wrong."""
    if not 400 <= response.status_code < 500:
        return f"status {response.status_code}"
    if response.status_code in (409, 422):
        shown = 'class="field-error"' in response.text or "banner-error" in response.text
        return None if shown else "the form came back without an error message"
    return None if 'id="error-heading"' in response.text else "no error page"


async def _refused_everywhere(
    client: httpx.AsyncClient,
    world: World,
    templates: set[str],
    build: Callable[[dict[str, str]], HostileForm],
) -> dict[str, str]:
    wrong = {}
    for template in sorted(templates):
        response = await _post_form(client, world, template, build(_form_of(world, template)))
        problem = _console_refusal_problem(response)
        if problem is not None:
            wrong[template] = problem
    return wrong


async def test_the_valid_form_of_each_console_form_is_accepted(
    runtime: Runtime, client: httpx.AsyncClient, console: World
) -> None:
    """The forms the refusals below start from are good ones (sign-out last: it ends the
    session the others use)."""
    for template in sorted(CONSOLE_FORMS, key=lambda each: each == "/logout"):
        form = _form_of(console, template)
        response = await _post_form(
            client, console, template, HostileForm(_encoded([*form.items()]))
        )

        assert response.status_code in (200, 303), f"{template}: {response.status_code}"


async def test_hostile_forms_are_refused_by_every_console_form_and_store_nothing(
    runtime: Runtime, client: httpx.AsyncClient, console: World
) -> None:
    before = await _snapshot(runtime)
    wrong: dict[str, str] = {}

    for kind, build in FORMS_ANY.items():
        refused = await _refused_everywhere(client, console, set(CONSOLE_FORMS), build)
        wrong.update({f"{kind} at {template}": problem for template, problem in refused.items()})

    assert wrong == {}
    assert await _snapshot(runtime) == before


async def test_hostile_field_values_get_the_form_again_and_store_nothing(
    runtime: Runtime, client: httpx.AsyncClient, console: World
) -> None:
    before = await _snapshot(runtime)
    wrong: dict[str, str] = {}

    for kind, build in FORMS_WITH_OWN_FIELDS.items():
        refused = await _refused_everywhere(client, console, FORMS_WITH_FIELDS, build)
        wrong.update({f"{kind} at {template}": problem for template, problem in refused.items()})

    assert wrong == {}
    assert await _snapshot(runtime) == before
