"""The api-keys and event-types commands, run as real processes."""

import json
import subprocess

import httpx
import pytest

from reflexblue.core.settings import Settings
from tests.external.conftest import API
from tests.support.server import base_environment, cli_command


@pytest.fixture
def environment(settings: Settings, database_url: str) -> dict[str, str]:
    return {"REFLEXBLUE_DATA_DIR": str(settings.data_dir), "REFLEXBLUE_DATABASE_URL": database_url}


def _run(environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(*arguments),
        env=base_environment(environment),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def integration(environment: dict[str, str], client: httpx.AsyncClient) -> str:
    created = _run(
        environment,
        "integrations",
        "create",
        "--name",
        "ERP",
        "--external-id",
        "e",
        "--export-id",
        "ERP",
    )
    assert created.returncode == 0, created.stderr
    return "ERP"


async def test_created_key_is_printed_once_and_works(
    environment: dict[str, str], integration: str, client: httpx.AsyncClient
) -> None:
    created = _run(environment, "api-keys", "create", integration, "--name", "ci")

    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("rbk_")
    response = await client.get(f"{API}/integration", headers={"Authorization": f"Bearer {key}"})
    assert response.json()["export_id"] == "ERP"
    listed = _run(environment, "api-keys", "list", integration)
    assert key not in listed.stdout
    assert key[-4:] in listed.stdout


async def test_revoked_key_stops_working(
    environment: dict[str, str], integration: str, client: httpx.AsyncClient
) -> None:
    created = json.loads(
        _run(environment, "api-keys", "create", integration, "--name", "ci", "--json").stdout
    )

    revoked = _run(environment, "api-keys", "revoke", created["id"])

    assert revoked.returncode == 0, revoked.stderr
    response = await client.get(
        f"{API}/integration", headers={"Authorization": f"Bearer {created['key']}"}
    )
    assert response.status_code == 401
    [listed] = json.loads(_run(environment, "api-keys", "list", integration, "--json").stdout)
    assert listed["revoked_at"] is not None
    assert "key" not in listed


def test_key_with_expiry_reports_it(environment: dict[str, str], integration: str) -> None:
    created = _run(
        environment,
        "api-keys",
        "create",
        integration,
        "--name",
        "ci",
        "--expires-in-days",
        "7",
        "--json",
    )

    assert json.loads(created.stdout)["expires_at"] is not None


@pytest.mark.parametrize(
    "arguments",
    [
        ("api-keys", "create", "ERP", "--name", "   "),
        ("api-keys", "create", "ERP", "--name", "ci", "--expires-in-days", "0"),
        ("api-keys", "create", "NOPE", "--name", "ci"),
        ("api-keys", "revoke", "key_missing"),
    ],
)
def test_bad_key_input_is_one_line_of_error_and_creates_nothing(
    environment: dict[str, str], integration: str, arguments: tuple[str, ...]
) -> None:
    failed = _run(environment, *arguments)

    assert failed.returncode != 0
    assert len(failed.stderr.strip().splitlines()) == 1
    assert failed.stderr.startswith("error: ")
    assert json.loads(_run(environment, "api-keys", "list", "ERP", "--json").stdout) == []


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (("Order.Created",), "NAME"),
        (("order.created", "--schema", "{not json"), "--schema"),
        (("order.created", "--schema", '{"type": "objec"}'), "--schema"),
        (("order.created", "--description", "x" * 501), "--description"),
    ],
)
def test_bad_event_type_is_one_line_of_error_naming_the_option(
    environment: dict[str, str], arguments: tuple[str, ...], named: str
) -> None:
    failed = _run(environment, "event-types", "create", *arguments)

    assert failed.returncode != 0
    assert failed.stderr.startswith(f"error: {named}")
    assert len(failed.stderr.strip().splitlines()) == 1


def test_event_type_is_created_and_listed(environment: dict[str, str]) -> None:
    schema = {"type": "object", "required": ["id"]}

    created = _run(
        environment,
        "event-types",
        "create",
        "order.created",
        "--description",
        "An order",
        "--schema",
        json.dumps(schema),
    )

    assert created.returncode == 0, created.stderr
    listed = json.loads(_run(environment, "event-types", "list", "--json").stdout)
    assert listed[0] == {"name": "order.created", "description": "An order", "schema": schema}
