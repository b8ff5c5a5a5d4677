"""Floods of bad API keys and bad sign-ins at a real `serve`: refused cheaply, per client
address, while legitimate callers carry on.

The server keeps small limits so that a flood of a dozen requests shows them. Each test calls
from loopback addresses of its own (the whole of 127.0.0.0/8 reaches the server), so that the
limits one test runs into are not another test's. How much work a refusal spared is read from
the server's own counters on /metrics: the database lookups of API keys and the password
checks."""

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reflexblue.accounts.models import Role
from reflexblue.core.runtime import start_runtime
from reflexblue.core.settings import Settings
from tests.conftest import TEST_PASSWORD, make_user
from tests.external.conftest import make_caller
from tests.support.databases import SqliteTemplate
from tests.support.server import RunningServer, base_environment, cli_command, running_server

API = "/api/external/v1"
FAILED_KEYS_ALLOWED = 5
LOGIN_FAILURES_ALLOWED = 3
KEY_LOOKUPS = "reflexblue_api_key_lookups_total"
REQUESTS = "reflexblue_http_requests_total"
# The routes the flood gate counts its refusals under: it answers before any route matches.
GATE_API_ROUTE = API + "/{path}"
GATE_LOGIN_ROUTE = "/login"
PASSWORD_CHECKS = "reflexblue_password_checks_total"
LOCKED_OUT = "Too many failed sign-ins."
BUSY = "The server is busy checking other sign-ins."
KNOWN_USER = "alice"
WRONG_PASSWORD = "not the password"
START_UP_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Flooded:
    """A running server and what it holds: API keys of three integrations, one user."""

    server: RunningServer
    keys: tuple[str, str, str]

    def client(self, address: str) -> httpx.AsyncClient:
        """A client whose connections come from `address`, a loopback address."""
        transport = httpx.AsyncHTTPTransport(local_address=address)
        return httpx.AsyncClient(base_url=self.server.url, transport=transport)


@pytest.fixture(scope="module")
def flooded(
    sqlite_template: SqliteTemplate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flooded]:
    folder = tmp_path_factory.mktemp("flooded")
    settings = Settings(
        _env_file=None, data_dir=folder / "data", database_url=sqlite_template.copy_to(folder)
    )
    keys = asyncio.run(_prepare(settings))
    environment = {
        "REFLEXBLUE_DATA_DIR": str(settings.data_dir),
        "REFLEXBLUE_DATABASE_URL": settings.database_url or "",
        # Refilling so slowly that no bucket refills while the module runs.
        "REFLEXBLUE_EXTERNAL_FAILED_KEY_RATE": "0.001",
        "REFLEXBLUE_EXTERNAL_FAILED_KEY_BURST": str(FAILED_KEYS_ALLOWED),
        "REFLEXBLUE_LOGIN_FAILURES_ALLOWED": str(LOGIN_FAILURES_ALLOWED),
        "REFLEXBLUE_PASSWORD_CHECKS_AT_ONCE": "1",
    }
    with running_server(environment, arguments=("--no-worker",)) as server:
        yield Flooded(server, keys)


async def _prepare(settings: Settings) -> tuple[str, str, str]:
    runtime = await start_runtime(settings)
    try:
        await make_user(runtime, KNOWN_USER, Role.ADMIN)
        callers = [await make_caller(runtime, name) for name in ("ERP", "CRM", "SHOP")]
    finally:
        await runtime.close()
    return callers[0].key, callers[1].key, callers[2].key


@pytest.fixture
async def metrics(flooded: Flooded) -> AsyncIterator[httpx.AsyncClient]:
    async with flooded.client("127.0.0.1") as client:
        yield client


async def _counter(metrics: httpx.AsyncClient, sample: str, **labels: str) -> float:
    text = (await metrics.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == sample and found.labels == labels:
                return float(found.value)
    raise AssertionError(f"no sample {sample}{labels} on /metrics")


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _guess(number: int) -> str:
    """A well-formed API key that belongs to no one."""
    return "rbk_" + f"{number:043d}"


async def _guesses(client: httpx.AsyncClient, count: int) -> list[httpx.Response]:
    return [
        await client.get(f"{API}/integration", headers=_bearer(_guess(number)))
        for number in range(count)
    ]


async def test_a_flood_of_unknown_keys_gets_429_once_past_the_limit_without_lookups(
    flooded: Flooded, metrics: httpx.AsyncClient
) -> None:
    looked_up = await _counter(metrics, KEY_LOOKUPS, result="refused")

    async with flooded.client("127.0.1.1") as client:
        answers = await _guesses(client, 12)

    statuses = [answer.status_code for answer in answers]
    assert statuses == [401] * FAILED_KEYS_ALLOWED + [429] * (12 - FAILED_KEYS_ALLOWED)
    refused = answers[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert await _counter(metrics, KEY_LOOKUPS, result="refused") == looked_up + 5


async def test_a_key_in_use_keeps_working_from_the_flooding_address(flooded: Flooded) -> None:
    key = flooded.keys[0]
    async with flooded.client("127.0.1.2") as client:
        before = await client.get(f"{API}/integration", headers=_bearer(key))
        flood = await _guesses(client, 10)
        during = await client.get(f"{API}/integration", headers=_bearer(key))

    assert flood[-1].status_code == 429
    assert (before.status_code, during.status_code) == (200, 200)


async def test_a_key_from_another_address_is_untouched_by_the_flood(flooded: Flooded) -> None:
    async with flooded.client("127.0.1.3") as attacker:
        flood = await _guesses(attacker, 10)
    async with flooded.client("127.0.1.4") as other:
        answer = await other.get(f"{API}/integration", headers=_bearer(flooded.keys[1]))

    assert flood[-1].status_code == 429
    assert answer.status_code == 200


async def test_a_key_not_yet_used_waits_like_a_guess_at_a_refused_address(
    flooded: Flooded,
) -> None:
    async with flooded.client("127.0.1.5") as client:
        flood = await _guesses(client, 10)
        first_use = await client.get(f"{API}/integration", headers=_bearer(flooded.keys[2]))

    assert flood[-1].status_code == 429
    assert first_use.status_code == 429


async def test_malformed_keys_are_refused_without_a_lookup(
    flooded: Flooded, metrics: httpx.AsyncClient
) -> None:
    looked_up = await _counter(metrics, KEY_LOOKUPS, result="refused")
    malformed = ["rbk_short", "rbk_" + "!" * 43, "rbu_" + "a" * 43, "rbk_" + "a" * 44]

    async with flooded.client("127.0.1.6") as client:
        answers = [
            await client.get(f"{API}/integration", headers=_bearer(key)) for key in malformed
        ]

    assert [answer.status_code for answer in answers] == [401] * len(malformed)
    assert await _counter(metrics, KEY_LOOKUPS, result="refused") == looked_up


async def test_forwarded_for_headers_do_not_move_a_flood_to_other_addresses(
    flooded: Flooded,
) -> None:
    async with flooded.client("127.0.1.7") as client:
        answers = [
            await client.get(
                f"{API}/integration",
                headers=_bearer(_guess(number)) | {"X-Forwarded-For": f"198.51.100.{number}"},
            )
            for number in range(10)
        ]

    assert [answer.status_code for answer in answers][FAILED_KEYS_ALLOWED:] == [429] * 5


async def test_a_refused_address_is_answered_before_routing_whatever_it_asks(
    flooded: Flooded, metrics: httpx.AsyncClient
) -> None:
    counted = await _counter(metrics, REQUESTS, route=GATE_API_ROUTE, method="GET", status="429")

    async with flooded.client("127.0.1.8") as client:
        await _guesses(client, FAILED_KEYS_ALLOWED)
        # Routing would answer 404 here, and the API 401 to a request without a key.
        no_such_route = await client.get(f"{API}/no/such/route", headers=_bearer(_guess(99)))
        without_key = await client.get(f"{API}/integration")

    assert (no_such_route.status_code, without_key.status_code) == (429, 429)
    assert no_such_route.headers["content-type"] == "application/problem+json"
    assert no_such_route.json()["detail"].startswith("This client address sent too many API keys")
    assert no_such_route.headers["x-request-id"]
    after = await _counter(metrics, REQUESTS, route=GATE_API_ROUTE, method="GET", status="429")
    assert after == counted + 2


async def test_another_address_still_reaches_routing(flooded: Flooded) -> None:
    async with flooded.client("127.0.1.9") as attacker:
        await _guesses(attacker, FAILED_KEYS_ALLOWED + 1)
    async with flooded.client("127.0.1.10") as other:
        answer = await other.get(f"{API}/no/such/route", headers=_bearer(_guess(1)))

    assert answer.status_code == 404


async def _sign_in(
    client: httpx.AsyncClient, username: str, password: str = WRONG_PASSWORD
) -> httpx.Response:
    """A sign-in with the login form's CSRF pair, as a browser (or a script) sends it."""
    client.cookies.set("reflexblue_login_csrf", "a-login-form-token")
    return await client.post(
        "/login",
        data={"csrf_token": "a-login-form-token", "username": username, "password": password},
    )


async def test_bad_sign_ins_past_the_limit_get_429_without_a_password_check(
    flooded: Flooded, metrics: httpx.AsyncClient
) -> None:
    checked = await _counter(metrics, PASSWORD_CHECKS)

    async with flooded.client("127.0.2.1") as client:
        answers = [await _sign_in(client, f"guess{number}") for number in range(10)]

    statuses = [answer.status_code for answer in answers]
    assert statuses == [401] * LOGIN_FAILURES_ALLOWED + [429] * (10 - LOGIN_FAILURES_ALLOWED)
    refused = answers[-1]
    assert LOCKED_OUT in refused.text
    assert refused.headers["retry-after"] == "30"
    assert 'name="password"' in refused.text  # the login form, to try again later
    assert await _counter(metrics, PASSWORD_CHECKS) == checked + LOGIN_FAILURES_ALLOWED


async def test_a_locked_address_gets_the_login_form_again_without_its_form_read(
    flooded: Flooded, metrics: httpx.AsyncClient
) -> None:
    counted = await _counter(metrics, REQUESTS, route=GATE_LOGIN_ROUTE, method="POST", status="429")

    async with flooded.client("127.0.2.3") as client:
        for number in range(LOGIN_FAILURES_ALLOWED):
            await _sign_in(client, f"lock{number}")
        # Not even a form: the application would answer 403 for its missing CSRF token.
        refused = await client.post("/login", content=b"\xff not a form")

    assert refused.status_code == 429
    assert LOCKED_OUT in refused.text
    assert 'name="password"' in refused.text
    # The form can be sent again: its token is the login cookie's.
    assert 'name="csrf_token" value="a-login-form-token"' in refused.text
    assert refused.headers["retry-after"] == "30"
    assert "default-src 'self'" in refused.headers["content-security-policy"]
    assert refused.headers["cache-control"] == "no-store"
    assert "reflexblue_login_csrf=" in refused.headers["set-cookie"]
    after = await _counter(metrics, REQUESTS, route=GATE_LOGIN_ROUTE, method="POST", status="429")
    assert after == counted + 1


async def test_the_refusal_page_escapes_the_login_cookie_it_shows(flooded: Flooded) -> None:
    async with flooded.client("127.0.2.4") as client:
        for number in range(LOGIN_FAILURES_ALLOWED):
            await _sign_in(client, f"lock{number}")
        client.cookies.set("reflexblue_login_csrf", '"><script>alert(1)</script>')
        refused = await client.post("/login", data={"username": "x", "password": "y"})

    assert refused.status_code == 429
    assert "<script>alert" not in refused.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in refused.text


async def test_bad_sign_ins_sent_at_once_get_no_more_checks_than_allowed(
    flooded: Flooded, metrics: httpx.AsyncClient
) -> None:
    checked = await _counter(metrics, PASSWORD_CHECKS)

    async with flooded.client("127.0.2.2") as client:
        answers = await asyncio.gather(*(_sign_in(client, f"burst{n}") for n in range(20)))
    statuses = [answer.status_code for answer in answers]
    made = await _counter(metrics, PASSWORD_CHECKS) - checked

    assert set(statuses) <= {401, 429}
    assert statuses.count(401) == made <= LOGIN_FAILURES_ALLOWED


async def test_sign_ins_beyond_the_ceiling_of_checks_are_refused_not_queued(
    flooded: Flooded, metrics: httpx.AsyncClient
) -> None:
    checked = await _counter(metrics, PASSWORD_CHECKS)
    clients = [flooded.client(f"127.0.3.{number}") for number in range(1, 9)]

    answers = await asyncio.gather(
        *(_sign_in(client, f"crowd{n}") for n, client in enumerate(clients))
    )
    for client in clients:
        await client.aclose()
    made = await _counter(metrics, PASSWORD_CHECKS) - checked

    busy = [answer for answer in answers if answer.status_code == 429]
    assert busy, [answer.status_code for answer in answers]
    assert all(BUSY in answer.text and answer.headers["retry-after"] == "1" for answer in busy)
    assert made == len(answers) - len(busy)


async def test_while_every_check_is_busy_a_sign_in_is_refused_unread(
    flooded: Flooded, metrics: httpx.AsyncClient
) -> None:
    checked = await _counter(metrics, PASSWORD_CHECKS)
    async with flooded.client("127.0.3.20") as first, flooded.client("127.0.3.21") as second:
        checking = asyncio.create_task(_sign_in(first, "slow"))
        # The one check allowed at once has begun once the counter moves; it lasts a good
        # fraction of a second, argon2id's cost.
        for _ in range(2000):
            if await _counter(metrics, PASSWORD_CHECKS) > checked:
                break
            await asyncio.sleep(0.005)
        # Not even a form: read, it would be refused 403 for its missing CSRF token.
        refused = await second.post("/login", content=b"not a form")
        await checking

    assert refused.status_code == 429
    assert BUSY in refused.text
    assert refused.headers["retry-after"] == "1"


async def test_unknown_and_known_user_names_get_the_same_answer_by_the_same_check(
    flooded: Flooded, metrics: httpx.AsyncClient
) -> None:
    answers, checks = [], []
    for username, address in ((KNOWN_USER, "127.0.4.1"), ("nobody", "127.0.4.2")):
        before = await _counter(metrics, PASSWORD_CHECKS)
        async with flooded.client(address) as client:
            answers.append(await _sign_in(client, username))
        checks.append(await _counter(metrics, PASSWORD_CHECKS) - before)

    known, unknown = answers
    assert known.status_code == unknown.status_code == 401
    # The pages differ by the name typed into the form, and by nothing else.
    assert known.text.replace(f'value="{KNOWN_USER}"', 'value="nobody"') == unknown.text
    assert checks == [1, 1]


async def test_the_right_password_still_signs_in_after_a_flood_elsewhere(
    flooded: Flooded,
) -> None:
    async with flooded.client("127.0.5.1") as attacker:
        flood = [await _sign_in(attacker, f"spray{number}") for number in range(6)]
    async with flooded.client("127.0.5.2") as owner:
        signed_in = await _sign_in(owner, KNOWN_USER, TEST_PASSWORD)

    assert flood[-1].status_code == 429
    assert signed_in.status_code == 303
    assert "reflexblue_session" in signed_in.cookies


BAD_SETTINGS = {
    "failed-key-rate-zero": ("REFLEXBLUE_EXTERNAL_FAILED_KEY_RATE", "0"),
    "failed-key-burst-words": ("REFLEXBLUE_EXTERNAL_FAILED_KEY_BURST", "plenty"),
    "login-failures-zero": ("REFLEXBLUE_LOGIN_FAILURES_ALLOWED", "0"),
    "lockout-negative": ("REFLEXBLUE_LOGIN_LOCKOUT_SECONDS", "-5"),
    "longest-lockout-shorter-than-the-first": ("REFLEXBLUE_LOGIN_LOCKOUT_MAX_SECONDS", "10"),
    "password-checks-zero": ("REFLEXBLUE_PASSWORD_CHECKS_AT_ONCE", "0"),
}


@pytest.mark.parametrize(("variable", "value"), BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_a_bad_limit_stops_serve_at_start_up_naming_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    environment = {"REFLEXBLUE_DATA_DIR": str(tmp_path / "data"), variable: value}

    finished = subprocess.run(
        cli_command("serve", "--port", "1"),
        env=base_environment(environment),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=START_UP_TIMEOUT_SECONDS,
        check=False,
    )

    assert finished.returncode != 0
    last_line = finished.stderr.strip().splitlines()[-1]
    assert variable in last_line
    assert "Traceback" not in finished.stderr
    assert not (tmp_path / "data").exists()
