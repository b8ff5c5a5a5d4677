"""`reflexblue integrations`: the same integrations as the Management API, from a script."""

import asyncio
import itertools
from typing import Any

import pytest
from standardwebhooks import Webhook

from reflexblue.accounts.service import create_token, ensure_first_admin
from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from tests.cli.conftest import Cli, management_api, runtime_of

_numbers = itertools.count()


def create(cli: Cli, **fields: str) -> dict[str, Any]:
    """A new integration through the CLI, with a unique Export ID unless one is given."""
    number = next(_numbers)
    given = {"name": f"Shop {number}", "external_id": f"shop-{number}"} | fields
    given.setdefault("export_id", f"SHOP_{number}")
    options = [
        part for key, value in given.items() for part in (f"--{key.replace('_', '-')}", value)
    ]
    created: dict[str, Any] = cli.ok("integrations", "create", *options, "--json").json()
    return created


@pytest.fixture(scope="module")
def admin_token(cli: Cli) -> str:
    async def make_admin_token() -> str:
        async with runtime_of(cli) as runtime, transaction(runtime.sessions) as session:
            await ensure_first_admin(session, "an admin password for tests")
            _, token = await create_token(session, "admin", "cli tests", CLI_ACTOR)
            return token

    return asyncio.run(make_admin_token())


async def test_created_integration_reads_the_same_as_in_the_management_api(
    cli: Cli, admin_token: str
) -> None:
    created = create(cli, description="Orders and refunds")

    async with management_api(cli, admin_token) as api:
        response = await api.get(f"/integrations/{created['id']}")

    assert response.json() == created


def test_show_finds_an_integration_by_id(cli: Cli) -> None:
    created = create(cli)

    assert cli.ok("integrations", "show", created["id"], "--json").json() == created


def test_show_finds_an_integration_by_export_id_ignoring_case(cli: Cli) -> None:
    created = create(cli, export_id="Case_Blind")

    assert cli.ok("integrations", "show", "case_BLIND", "--json").json() == created


def test_export_id_that_looks_like_an_id_is_found(cli: Cli) -> None:
    created = create(cli, export_id="int_lookalike")

    assert cli.ok("integrations", "show", "int_lookalike", "--json").json() == created


def test_show_reads_as_labelled_lines(cli: Cli) -> None:
    created = create(cli, name="Readable")

    lines = cli.ok("integrations", "show", created["export_id"]).stdout.splitlines()

    labelled = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in lines}
    assert labelled["Name"] == "Readable"
    assert labelled["Export ID"] == created["export_id"]
    assert labelled["External integration ID"] == created["external_id"]
    assert labelled["Version"] == "1"


async def test_list_json_has_the_management_api_shape(cli: Cli, admin_token: str) -> None:
    create(cli, name="Listed alpha", export_id="LISTED_A")

    listed = cli.ok("integrations", "list", "-q", "LISTED_", "--json").json()

    async with management_api(cli, admin_token) as api:
        response = await api.get("/integrations", params={"q": "LISTED_"})
    assert listed == response.json()


def test_list_pages_with_the_next_cursor(cli: Cli) -> None:
    names = [create(cli, name=f"Paged {letter}")["name"] for letter in "abc"]

    first = cli.ok("integrations", "list", "-q", "Paged", "--limit", "2", "--json").json()
    cursor = first["next_cursor"]
    second = cli.ok(
        "integrations", "list", "-q", "Paged", "--limit", "2", "--cursor", cursor, "--json"
    ).json()

    assert [item["name"] for item in first["items"] + second["items"]] == names
    assert second["next_cursor"] is None


def test_list_sorts_by_the_given_field_and_order(cli: Cli) -> None:
    for name in ("Sorted b", "Sorted c", "Sorted a"):
        create(cli, name=name)

    listed = cli.ok(
        "integrations", "list", "-q", "Sorted", "--sort", "name", "--order", "desc", "--json"
    ).json()

    assert [item["name"] for item in listed["items"]] == ["Sorted c", "Sorted b", "Sorted a"]


def test_list_reads_as_a_table_with_a_header(cli: Cli) -> None:
    created = create(cli, name="Tabled")

    lines = cli.ok("integrations", "list", "-q", "Tabled").stdout.splitlines()

    assert lines[0].split() == ["ID", "Export", "ID", "Name", "Last", "modified"]
    assert lines[1].split()[:3] == [created["id"], created["export_id"], "Tabled"]


def test_update_changes_only_the_given_fields_and_the_version(cli: Cli) -> None:
    created = create(cli, description="before")

    updated = cli.ok("integrations", "update", created["id"], "--name", "Renamed", "--json").json()

    assert updated == created | {
        "name": "Renamed",
        "updated_at": updated["updated_at"],
        "version": created["version"] + 1,
    }
    assert cli.ok("integrations", "show", created["id"], "--json").json() == updated


def test_update_with_the_current_version_succeeds(cli: Cli) -> None:
    created = create(cli)

    updated = cli.ok(
        "integrations",
        "update",
        created["export_id"],
        "--description",
        "checked",
        "--if-version",
        str(created["version"]),
        "--json",
    ).json()

    assert updated["description"] == "checked"


def test_update_with_nothing_to_change_says_so_and_keeps_the_version(cli: Cli) -> None:
    created = create(cli)

    result = cli.ok("integrations", "update", created["id"], "--json")

    assert "Nothing to change" in result.stderr
    assert result.json() == created


def test_update_to_the_same_values_keeps_the_version(cli: Cli) -> None:
    created = create(cli)

    result = cli.ok("integrations", "update", created["id"], "--name", created["name"], "--json")

    assert result.json() == created


def test_delete_without_terminal_does_not_prompt(cli: Cli) -> None:
    created = create(cli)

    result = cli.ok("integrations", "delete", created["export_id"])

    assert created["name"] in result.stdout
    gone = cli.run("integrations", "show", created["id"])
    assert gone.returncode != 0
    assert created["id"] in gone.error_line


def test_secret_is_a_standard_webhooks_secret(cli: Cli) -> None:
    created = create(cli)

    secret = cli.ok("integrations", "secret", created["id"]).stdout.strip()

    assert secret.startswith("whsec_")
    Webhook(secret)  # any Standard Webhooks library accepts it as a signing key


def test_secret_json_matches_the_management_api_shape(cli: Cli) -> None:
    created = create(cli)

    revealed = cli.ok("integrations", "secret", created["export_id"], "--json").json()

    assert set(revealed) == {"secret", "previous_secret", "previous_secret_expires_at"}
    assert revealed["previous_secret"] is None


def test_rotate_secret_makes_a_new_one_and_keeps_the_previous_for_a_while(cli: Cli) -> None:
    created = create(cli)
    before = cli.ok("integrations", "secret", created["id"]).stdout.strip()

    rotated = cli.ok("integrations", "rotate-secret", created["id"], "--json").json()

    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != before
    assert rotated["previous_secret"] == before
    assert rotated["previous_secret_expires_at"] is not None
    assert cli.ok("integrations", "secret", created["id"]).stdout.strip() == rotated["secret"]
