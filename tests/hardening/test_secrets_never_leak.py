"""No secret leaves by a door it should not: a whole session of a real `serve`, logged at DEBUG,
every answer it gave, and its database, searched for every credential the session handled.

The session makes integrations, reveals and rotates a secret key (in the API and the console),
makes and revokes API keys, subscribes webhooks, publishes events that a real worker delivers
to a real receiver (one of them failing and retried), signs in with a password, fails to sign
in, and presents wrong and misplaced credentials. Only the answers whose purpose is to show a
credential once may carry one, and the test checks that those, and only those, do.
"""

import asyncio
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from reflexblue.core.runtime import start_runtime
from reflexblue.core.settings import Settings
from tests.api.test_secrets import _every_row_as_text, _forms_of, _read_database_files
from tests.console.conftest import csrf_of
from tests.support.receiver import Receiver, running_receiver
from tests.support.server import RunningServer, base_environment, cli_command, running_server

ADMIN_PASSWORD = "the administrator's own passphrase 4821"
WRONG_PASSWORDS = ("a wrong password typed by mistake 1093", "another wrong guess 5520")
STRANGER_PASSWORD = "a password of nobody we know 7731"
WAIT_LIMIT_SECONDS = 60.0
POLL_INTERVAL_SECONDS = 0.1
MANAGEMENT = "/api/management"
EXTERNAL = "/api/external/v1"
CONSOLE = "/management/general/integrations"
ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}},
    "required": ["order_id"],
}

# What each kind of credential looks like; a match anywhere it should not be is a leak, even
# of a credential this test did not know about.
CREDENTIAL_FORMS = {
    "secret key": re.compile(r"whsec_[A-Za-z0-9+/]{40,}={0,2}"),
    "API key": re.compile(r"rbk_[A-Za-z0-9_-]{40,}"),
    "user token": re.compile(r"rbu_[A-Za-z0-9_-]{40,}"),
    "session token": re.compile(r"rbs_[A-Za-z0-9_-]{40,}"),
}


@dataclass(frozen=True)
class Exchange:
    """One answer the session received: what it was for, and all of its headers and body."""

    label: str
    shows_a_secret: bool
    status: int
    text: str


@dataclass
class Recorder:
    """Sends every request of the session and keeps every answer."""

    http: httpx.AsyncClient
    exchanges: list[Exchange] = field(default_factory=list)

    async def send(
        self, label: str, method: str, path: str, *, shows_a_secret: bool = False, **options: Any
    ) -> httpx.Response:
        response = await self.http.request(method, path, **options)
        headers = "\n".join(f"{name}: {value}" for name, value in response.headers.multi_items())
        text = f"{headers}\n\n{response.text}"
        self.exchanges.append(Exchange(label, shows_a_secret, response.status_code, text))
        return response


@dataclass
class Session:
    """What the scenario left behind for the assertions."""

    exchanges: list[Exchange]
    logs: str
    stored: bytes
    credentials: dict[str, set[str]]
    passwords: list[str]
    master_key: str

    def known_secrets(self) -> list[str]:
        """Every credential in every form a careless door might show it in."""
        found = [value for values in self.credentials.values() for value in values]
        bodies = [value.removeprefix("whsec_") for value in self.credentials["secret key"]]
        return [*found, *bodies, *self.passwords, self.master_key]


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_no_secret_appears_in_any_log_line_response_or_stored_row(
    log_format: str, backend: str, database_url: str, tmp_path: Path
) -> None:
    environment = {
        "REFLEXBLUE_DATA_DIR": str(tmp_path / "data"),
        "REFLEXBLUE_DATABASE_URL": database_url,
        "REFLEXBLUE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "REFLEXBLUE_ALLOW_PRIVATE_TARGETS": "true",
        "REFLEXBLUE_RETRY_SCHEDULE": "0,0",
        "REFLEXBLUE_DELIVERY_TIMEOUT": "2",
        "REFLEXBLUE_LOG_LEVEL": "DEBUG",
        "REFLEXBLUE_LOG_FORMAT": log_format,
    }

    session = asyncio.run(_play(environment, backend))

    _assert_the_whole_session_was_captured(session)
    assert _leaks_in_logs_and_answers(session) == []
    assert _answers_carrying_a_credential(session) == SHOW_ONCE_ANSWERS
    assert _plain_secrets_stored(session) == []


# The answers whose purpose is to hand over a credential, once.
SHOW_ONCE_ANSWERS = {
    "cli: create a user token",
    "management: reveal the secret key",
    "management: rotate the secret key",
    "management: create an API key",
    "console: sign in",
    "console: reveal the secret key",
    "console: create an API key",
}


def _assert_the_whole_session_was_captured(session: Session) -> None:
    """The searches mean something only if they read the whole session at DEBUG, and if the
    session really handed out every kind of credential."""
    answered = [exchange for exchange in session.exchanges if exchange.status]
    access_lines = [line for line in session.logs.splitlines() if "reflexblue.access" in line]
    counts = {kind: len(values) for kind, values in session.credentials.items()}

    assert len(access_lines) >= len(answered)
    assert re.search(r"\bdebug\b", session.logs, re.IGNORECASE)
    assert "delivery attempt failed" in session.logs
    assert "console sign-in refused" in session.logs
    # SHOP's first secret key, the one after the API's rotation and the one after the console's.
    assert counts == {"secret key": 3, "API key": 3, "user token": 1, "session token": 1}


def _leaks_in_logs_and_answers(session: Session) -> list[str]:
    doors = {"the logs": session.logs}
    for number, exchange in enumerate(session.exchanges):
        if not exchange.shows_a_secret:
            doors[f"answer {number} ({exchange.label})"] = exchange.text
    leaks = [
        f"{door}: {kind}"
        for door, text in doors.items()
        for kind, form in CREDENTIAL_FORMS.items()
        if form.search(text)
    ]
    return leaks + [
        f"{door}: a known secret"
        for door, text in doors.items()
        if any(secret in text for secret in session.known_secrets())
    ]


def _answers_carrying_a_credential(session: Session) -> set[str]:
    return {
        exchange.label
        for exchange in session.exchanges
        if any(form.search(exchange.text) for form in CREDENTIAL_FORMS.values())
    }


def _plain_secrets_stored(session: Session) -> list[bytes]:
    stored = session.stored.lower()
    assert b"webshop" in stored, "the rows were not read"
    forms = [form for secret in session.credentials["secret key"] for form in _forms_of(secret)]
    others = [value for values in session.credentials.values() for value in values]
    plain = [*forms, *(value.encode() for value in others + session.passwords)]
    return [form for form in plain if form.lower() in stored]


# --- the scenario ---------------------------------------------------------------------------


async def _play(environment: dict[str, str], backend: str) -> Session:
    async with running_receiver(_failing_on_one_path) as receiver:
        with running_server(environment) as server:
            token, cli_logs = await _create_user_token(environment)
            async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as http:
                recorder = Recorder(http)
                recorder.exchanges.append(
                    Exchange("cli: create a user token", True, 0, token),
                )
                await _run_scenario(recorder, token, receiver)
            stored = await _stop_and_read_database(server, environment, backend)
            logs = server.output + cli_logs
    return Session(
        exchanges=recorder.exchanges,
        logs=logs,
        stored=stored,
        credentials=_credentials_shown(recorder.exchanges),
        passwords=[ADMIN_PASSWORD, *WRONG_PASSWORDS, STRANGER_PASSWORD],
        master_key=(Path(environment["REFLEXBLUE_DATA_DIR"]) / "master.key").read_text().strip(),
    )


async def _failing_on_one_path(request: web.Request) -> web.StreamResponse:
    if request.path == "/failing":
        return web.Response(status=500, text="the receiver is down")
    return web.Response(text="ok")


async def _create_user_token(environment: dict[str, str]) -> tuple[str, str]:
    finished = await asyncio.to_thread(
        subprocess.run,
        cli_command("tokens", "create", "admin", "--name", "scenario"),
        env=base_environment(environment),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=True,
    )
    return finished.stdout.strip(), finished.stderr


@dataclass(frozen=True)
class _Managed:
    shop_id: str
    secret: str
    api_key: str
    revoked_key: str


async def _run_scenario(recorder: Recorder, token: str, receiver: Receiver) -> None:
    user = {"Authorization": f"Bearer {token}"}
    managed = await _manage(recorder, user)
    key = {"Authorization": f"Bearer {managed.api_key}"}
    failing_id = await _subscribe(recorder, key, receiver)
    await _publish(recorder, user)
    await _watch_deliveries(recorder, key, failing_id)
    await _present_wrong_credentials(recorder, token, managed)
    await _use_the_console(recorder, user, managed.shop_id)


async def _manage(recorder: Recorder, user: dict[str, str]) -> _Managed:
    """Integrations, the secret key and API keys through the Management API."""
    send = recorder.send
    shop = await send(
        "management: create an integration",
        "POST",
        f"{MANAGEMENT}/integrations",
        json={"name": "Webshop", "external_id": "shop-1", "export_id": "SHOP"},
        headers=user,
    )
    assert shop.status_code == 201, shop.text
    shop_id = shop.json()["id"]
    path = f"{MANAGEMENT}/integrations/{shop_id}"
    await send(
        "management: create another integration",
        "POST",
        f"{MANAGEMENT}/integrations",
        json={"name": "ERP", "external_id": "erp-1", "export_id": "ERP"},
        headers=user,
    )
    await send("management: list integrations", "GET", f"{MANAGEMENT}/integrations", headers=user)
    await send("management: read an integration", "GET", path, headers=user)
    await send(
        "management: change an integration",
        "PATCH",
        path,
        json={"description": "Sells the goods"},
        headers=user,
    )
    revealed = await send(
        "management: reveal the secret key",
        "GET",
        f"{path}/secret",
        headers=user,
        shows_a_secret=True,
    )
    assert revealed.status_code == 200, revealed.text
    rotated = await send(
        "management: rotate the secret key",
        "POST",
        f"{path}/secret/rotate",
        headers=user,
        shows_a_secret=True,
    )
    assert rotated.json()["previous_secret"] == revealed.json()["secret"]
    api_key = await _create_api_key(recorder, user, path, "external system")
    spare = await _create_api_key(recorder, user, path, "spare")
    revoked = await send(
        "management: revoke an API key",
        "DELETE",
        f"{path}/api-keys/{spare['id']}",
        headers=user,
    )
    assert revoked.status_code == 204, revoked.text
    await send("management: list API keys", "GET", f"{path}/api-keys", headers=user)
    await send(
        "management: create an event type",
        "POST",
        f"{MANAGEMENT}/event-types",
        json={"name": "order.created", "description": "An order", "schema": ORDER_SCHEMA},
        headers=user,
    )
    await send("management: list event types", "GET", f"{MANAGEMENT}/event-types", headers=user)
    return _Managed(shop_id, rotated.json()["secret"], api_key["key"], spare["key"])


async def _create_api_key(
    recorder: Recorder, user: dict[str, str], path: str, name: str
) -> dict[str, str]:
    created = await recorder.send(
        "management: create an API key",
        "POST",
        f"{path}/api-keys",
        json={"name": name},
        headers=user,
        shows_a_secret=True,
    )
    assert created.status_code == 201, created.text
    body: dict[str, str] = created.json()
    return body


async def _subscribe(recorder: Recorder, key: dict[str, str], receiver: Receiver) -> str:
    """Two webhooks through the External API: one that answers, one that keeps failing."""
    send = recorder.send
    await send("external: read the integration", "GET", f"{EXTERNAL}/integration", headers=key)
    working = await send(
        "external: create a webhook",
        "POST",
        f"{EXTERNAL}/webhooks",
        json={"url": f"{receiver.url}/hooks", "event_types": ["*"]},
        headers={**key, "Idempotency-Key": "create-the-working-webhook"},
    )
    assert working.status_code == 201, working.text
    failing = await send(
        "external: create a webhook",
        "POST",
        f"{EXTERNAL}/webhooks",
        json={"url": f"{receiver.url}/failing", "event_types": ["order.created"]},
        headers=key,
    )
    assert failing.status_code == 201, failing.text
    tested = await send(
        "external: send a test event",
        "POST",
        f"{EXTERNAL}/webhooks/{working.json()['id']}/test",
        headers=key,
    )
    assert tested.status_code == 202, tested.text
    await send("external: list webhooks", "GET", f"{EXTERNAL}/webhooks", headers=key)
    failing_id: str = failing.json()["id"]
    return failing_id


async def _publish(recorder: Recorder, user: dict[str, str]) -> None:
    one = {"type": "order.created", "data": {"order_id": "A-1"}, "integration": "SHOP"}
    published = await recorder.send(
        "management: publish an event", "POST", f"{MANAGEMENT}/events", json=one, headers=user
    )
    assert published.json()["deliveries"] == 2, published.text
    two = [{"type": "order.created", "data": {"order_id": f"B-{n}"}} for n in range(2)]
    batch = await recorder.send(
        "management: publish events",
        "POST",
        f"{MANAGEMENT}/events/batch",
        json={"events": two},
        headers=user,
    )
    assert batch.status_code == 202, batch.text


async def _watch_deliveries(recorder: Recorder, key: dict[str, str], failing_id: str) -> None:
    """Wait until the failing webhook's three deliveries gave up, retry one, and wait again."""
    path = f"{EXTERNAL}/webhooks/{failing_id}/deliveries"

    async def failed_deliveries() -> list[dict[str, Any]]:
        page = await recorder.send(
            "external: list deliveries", "GET", path, params={"status": "failed"}, headers=key
        )
        items: list[dict[str, Any]] = page.json()["items"]
        return items

    deadline = asyncio.get_running_loop().time() + WAIT_LIMIT_SECONDS
    while len(failed := await failed_deliveries()) < 3:
        assert asyncio.get_running_loop().time() < deadline, "the deliveries never gave up"
        await asyncio.sleep(POLL_INTERVAL_SECONDS)
    delivery = f"{EXTERNAL}/deliveries/{failed[0]['id']}"
    retried = await recorder.send(
        "external: retry a delivery", "POST", f"{delivery}/retry", headers=key
    )
    assert retried.status_code == 202, retried.text
    while True:
        detail = await recorder.send("external: read a delivery", "GET", delivery, headers=key)
        body = detail.json()
        if body["status"] == "failed" and len(body["attempts"]) > 3:
            return
        assert asyncio.get_running_loop().time() < deadline, "the retry never finished"
        await asyncio.sleep(POLL_INTERVAL_SECONDS)


async def _present_wrong_credentials(recorder: Recorder, token: str, managed: _Managed) -> None:
    """Unknown, revoked and misplaced credentials at both APIs: refused, and never echoed."""
    for presented in (managed.revoked_key, "rbk_" + "A" * 43, managed.secret, token):
        refused = await recorder.send(
            "external: a wrong credential",
            "GET",
            f"{EXTERNAL}/integration",
            headers={"Authorization": f"Bearer {presented}"},
        )
        assert refused.status_code == 401, refused.text
    for presented in (managed.api_key, "rbu_" + "B" * 43, managed.secret, ADMIN_PASSWORD):
        refused = await recorder.send(
            "management: a wrong credential",
            "GET",
            f"{MANAGEMENT}/integrations",
            headers={"Authorization": f"Bearer {presented}"},
        )
        assert refused.status_code == 401, refused.text


async def _use_the_console(recorder: Recorder, user: dict[str, str], shop_id: str) -> None:
    send = recorder.send
    await _sign_in(recorder)
    detail = await send("console: the detail screen", "GET", f"{CONSOLE}/{shop_id}")
    csrf = csrf_of(detail.text)
    form = {"csrf_token": csrf}
    revealed = await send(
        "console: reveal the secret key",
        "POST",
        f"{CONSOLE}/{shop_id}/secret/reveal",
        data=form,
        shows_a_secret=True,
    )
    assert revealed.status_code == 200, revealed.text
    created = await send(
        "console: create an API key",
        "POST",
        f"{CONSOLE}/{shop_id}/api-keys",
        data={**form, "name": "console key", "expires_in_days": ""},
        shows_a_secret=True,
    )
    assert created.status_code == 200, created.text
    keys = await send(
        "management: list API keys",
        "GET",
        f"{MANAGEMENT}/integrations/{shop_id}/api-keys",
        headers=user,
    )
    [console_key] = [item for item in keys.json()["items"] if item["name"] == "console key"]
    for label, action in (
        ("console: revoke an API key", f"api-keys/{console_key['id']}/revoke"),
        ("console: rotate the secret key", "secret/rotate"),
    ):
        done = await send(label, "POST", f"{CONSOLE}/{shop_id}/{action}", data=form)
        assert done.status_code == 303, done.text
    again = await send(
        "console: reveal the secret key",
        "POST",
        f"{CONSOLE}/{shop_id}/secret/reveal",
        data=form,
        shows_a_secret=True,
    )
    assert again.status_code == 200, again.text
    await send("console: the detail screen", "GET", f"{CONSOLE}/{shop_id}")
    await send("console: the overview", "GET", CONSOLE)
    await send("management: read the audit log", "GET", f"{MANAGEMENT}/audit-log", headers=user)
    signed_out = await send("console: sign out", "POST", "/logout", data=form)
    assert signed_out.status_code == 303, signed_out.text


async def _sign_in(recorder: Recorder) -> None:
    page = await recorder.send("console: the login page", "GET", "/login")
    csrf = csrf_of(page.text)
    tries = [("admin", password) for password in WRONG_PASSWORDS]
    tries.append(("stranger", STRANGER_PASSWORD))
    for username, password in tries:
        refused = await recorder.send(
            "console: a failed sign-in",
            "POST",
            "/login",
            data={"csrf_token": csrf, "username": username, "password": password},
        )
        assert refused.status_code == 401, refused.text
    signed_in = await recorder.send(
        "console: sign in",
        "POST",
        "/login",
        data={"csrf_token": csrf, "username": "admin", "password": ADMIN_PASSWORD},
        shows_a_secret=True,
    )
    assert signed_in.status_code == 303, signed_in.text


def _credentials_shown(exchanges: list[Exchange]) -> dict[str, set[str]]:
    """Every credential the show-once answers carried, by kind."""
    found: dict[str, set[str]] = {kind: set() for kind in CREDENTIAL_FORMS}
    for exchange in exchanges:
        if exchange.shows_a_secret:
            for kind, form in CREDENTIAL_FORMS.items():
                found[kind].update(form.findall(exchange.text))
    return found


async def _stop_and_read_database(
    server: RunningServer, environment: dict[str, str], backend: str
) -> bytes:
    """Everything the database holds: on SQLite its files, while the WAL holds the latest
    pages and again once the server has folded it in; on PostgreSQL every row of every table."""
    url = environment["REFLEXBLUE_DATABASE_URL"]
    if backend == "sqlite":
        database = Path(url.removeprefix("sqlite:///"))
        stored = _read_database_files(database)
        _stop(server)
        return stored + _read_database_files(database)
    _stop(server)
    settings = Settings(
        _env_file=None,
        data_dir=Path(environment["REFLEXBLUE_DATA_DIR"]),
        database_url=url,
    )
    runtime = await start_runtime(settings, migrate=False)
    try:
        return (await _every_row_as_text(runtime)).encode()
    finally:
        await runtime.close()


def _stop(server: RunningServer) -> None:
    server.process.terminate()
    server.process.wait(timeout=30)
