"""The log of a real `reflexblue serve` in JSON: one line per request with its request id, the
same id on the worker's attempt lines for the events the request caused, and no secret."""

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from reflexblue.accounts.models import Role
from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.runtime import start_runtime
from reflexblue.core.settings import Settings
from reflexblue.integrations.api_keys import ApiKeyCreate, create_api_key
from reflexblue.integrations.service import reveal_secret
from tests.conftest import make_user
from tests.delivery.conftest import subscribe
from tests.support.databases import PostgresDatabases, SqliteTemplate
from tests.support.receiver import Receiver, running_receiver
from tests.support.server import RunningServer, running_server

ADMIN_PASSWORD = "an administrator password that must never be logged"
FORM_PASSWORD = "a typed password that must never be logged"
WAIT_LIMIT_SECONDS = 60.0
POLL_INTERVAL_SECONDS = 0.05


@dataclass(frozen=True)
class LoggedRun:
    """What a served session wrote, and what it was sent."""

    output: str
    records: list[dict[str, Any]]
    published_event_id: str
    test_event_id: str
    secrets: list[str]

    def access_records(self, request_id: str) -> list[dict[str, Any]]:
        return [
            record
            for record in self.records
            if record["logger"] == "reflexblue.access" and record.get("request_id") == request_id
        ]

    def attempt_record(self, event_id: str) -> dict[str, Any]:
        found = [
            record
            for record in self.records
            if record["message"].startswith("delivery attempt")
            and record.get("event_id") == event_id
        ]
        assert len(found) == 1, f"attempt lines for {event_id}: {found}"
        return found[0]


@dataclass(frozen=True)
class _Prepared:
    settings: Settings
    token: str
    api_key: str
    webhook_id: str
    signing_secret: str


@pytest.fixture(scope="module")
def logged_run(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> LoggedRun:
    folder = tmp_path_factory.mktemp("logged-run")
    if backend == "sqlite":
        template: SqliteTemplate = request.getfixturevalue("sqlite_template")
        database_url = template.copy_to(folder)
    else:
        databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
        database_url = databases.create()
    settings = Settings(
        _env_file=None,
        data_dir=folder / "data",
        database_url=database_url,
        allow_private_targets=True,
    )
    return asyncio.run(_serve_and_record(settings))


async def _serve_and_record(settings: Settings) -> LoggedRun:
    async with running_receiver() as receiver:
        prepared = await _prepare(settings, receiver.url)
        with running_server(_environment(settings)) as server:
            published, tested = await _send_requests(server, prepared, receiver)
            await _wait_for_attempt_lines(server, [published, tested])
            output = server.output
    master_key = (settings.data_dir / "master.key").read_text().strip()
    secrets = [prepared.token, prepared.api_key, prepared.signing_secret, master_key]
    return LoggedRun(
        output=output,
        records=[json.loads(line) for line in output.splitlines() if line.startswith("{")],
        published_event_id=published,
        test_event_id=tested,
        secrets=[*secrets, ADMIN_PASSWORD, FORM_PASSWORD],
    )


def _environment(settings: Settings) -> dict[str, str]:
    return {
        "REFLEXBLUE_DATA_DIR": str(settings.data_dir),
        "REFLEXBLUE_DATABASE_URL": settings.database_url or "",
        "REFLEXBLUE_ALLOW_PRIVATE_TARGETS": "true",
        "REFLEXBLUE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "REFLEXBLUE_LOG_FORMAT": "json",
    }


async def _prepare(settings: Settings, receiver_url: str) -> _Prepared:
    runtime = await start_runtime(settings)
    try:
        admin = await make_user(runtime, "alice", Role.ADMIN)
        subscriber = await subscribe(runtime, receiver_url, export_id="SHOP")
        async with transaction(runtime.sessions) as session:
            created = await create_api_key(
                session, subscriber.integration_id, ApiKeyCreate(name="logs"), CLI_ACTOR
            )
            revealed = await reveal_secret(
                session, runtime.box, subscriber.integration_id, CLI_ACTOR
            )
    finally:
        await runtime.close()
    return _Prepared(settings, admin.token, created.key, subscriber.webhook_id, revealed.secret)


async def _send_requests(
    server: RunningServer, prepared: _Prepared, receiver: Receiver
) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=server.url) as http:
        receiver.arrived.clear()
        published = await http.post(
            "/api/management/events",
            json={"type": "webhook.test", "data": {"n": 1}, "integration": "SHOP"},
            headers={"Authorization": f"Bearer {prepared.token}", "X-Request-ID": "req-publish"},
        )
        assert published.status_code == 202, published.text
        await asyncio.wait_for(receiver.arrived.wait(), WAIT_LIMIT_SECONDS)

        receiver.arrived.clear()
        tested = await http.post(
            f"/api/external/v1/webhooks/{prepared.webhook_id}/test",
            headers={"Authorization": f"Bearer {prepared.api_key}", "X-Request-ID": "req-test"},
        )
        assert tested.status_code == 202, tested.text
        await asyncio.wait_for(receiver.arrived.wait(), WAIT_LIMIT_SECONDS)

        refused = await http.post(
            "/login",
            data={"username": "alice", "password": FORM_PASSWORD},
            headers={"X-Request-ID": "req-refused"},
        )
        assert refused.status_code == 403
    return str(published.json()["id"]), str(tested.json()["event_id"])


async def _wait_for_attempt_lines(server: RunningServer, event_ids: list[str]) -> None:
    """An attempt is logged once its outcome is written, a moment after the receiver saw it."""
    deadline = asyncio.get_running_loop().time() + WAIT_LIMIT_SECONDS
    while not all(f'"event_id": "{event_id}"' in server.output for event_id in event_ids):
        assert asyncio.get_running_loop().time() < deadline, server.output
        await asyncio.sleep(POLL_INTERVAL_SECONDS)


def test_every_log_line_is_one_json_object(logged_run: LoggedRun) -> None:
    # The one line meant for a person at the terminal is printed, not logged.
    others = [
        line
        for line in logged_run.output.splitlines()
        if line and not line.startswith("{") and not line.startswith("ReflexBlue is at ")
    ]

    assert others == []
    assert len(logged_run.records) > 5


def test_a_request_is_logged_once_with_route_status_duration_and_request_id(
    logged_run: LoggedRun,
) -> None:
    [record] = logged_run.access_records("req-publish")

    assert record["method"] == "POST"
    assert record["route"] == "/api/management/events"
    assert record["status"] == 202
    assert record["duration_ms"] >= 0


def test_the_server_writes_no_access_line_of_its_own(logged_run: LoggedRun) -> None:
    assert not [record for record in logged_run.records if record["logger"] == "uvicorn.access"]


def test_lines_written_while_handling_a_request_carry_its_id(logged_run: LoggedRun) -> None:
    refusals = [r for r in logged_run.records if r["message"] == "console request refused"]

    assert [record.get("request_id") for record in refusals] == ["req-refused"]


def test_the_attempt_of_a_published_event_carries_the_publish_request_id(
    logged_run: LoggedRun,
) -> None:
    record = logged_run.attempt_record(logged_run.published_event_id)

    assert record["request_id"] == "req-publish"
    assert record["status"] == 200
    assert {"delivery_id", "webhook_id", "duration_ms"} <= record.keys()


def test_the_attempt_of_a_test_event_carries_the_test_request_id(logged_run: LoggedRun) -> None:
    record = logged_run.attempt_record(logged_run.test_event_id)

    assert record["request_id"] == "req-test"


def test_no_secret_is_in_any_log_line(logged_run: LoggedRun) -> None:
    leaked = [secret for secret in logged_run.secrets if secret in logged_run.output]

    assert leaked == []
