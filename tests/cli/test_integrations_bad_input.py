"""Every refusal of `reflexblue integrations`: one line on stderr naming the field, a non-zero
exit code, and nothing changed in the database."""

from typing import Any

import pytest

from reflexblue.core.database import transaction
from reflexblue.integrations.schemas import IntegrationRead
from reflexblue.integrations.service import list_integrations
from tests.cli.conftest import Cli, assert_untouched, runtime_of

REFERENCE = "REFERENCE"
OTHER = "OTHER_ONE"
TOO_LONG_NAME = "n" * 201
TOO_LONG_ID = "i" * 101
TOO_LONG_DESCRIPTION = "d" * 2001


@pytest.fixture(scope="module")
def references(cli: Cli) -> None:
    for export_id in (REFERENCE, OTHER):
        cli.ok(
            "integrations",
            "create",
            *("--name", f"The {export_id}", "--external-id", export_id.lower()),
            *("--export-id", export_id),
        )


async def stored(cli: Cli) -> list[dict[str, Any]]:
    """Every integration as the database holds it, secrets aside."""
    async with runtime_of(cli) as runtime, transaction(runtime.sessions) as session:
        page = await list_integrations(session, sort="created_at", limit=200)
        return [IntegrationRead.model_validate(row).model_dump(mode="json") for row in page.items]


def create_with(**fields: str) -> list[str]:
    given = {"name": "Fine", "external-id": "fine", "export-id": "FINE"} | fields
    return ["create", *(part for key, value in given.items() for part in (f"--{key}", value))]


# Refused before the database is opened.
INPUT_REFUSALS = {
    "create-blank-name": (create_with(name="   "), "--name"),
    "create-long-name": (create_with(name=TOO_LONG_NAME), "--name"),
    "create-control-character-name": (create_with(name="tab\x01bed"), "--name"),
    "create-long-description": (create_with(description=TOO_LONG_DESCRIPTION), "--description"),
    "create-blank-external-id": (create_with(**{"external-id": " "}), "--external-id"),
    "create-long-external-id": (create_with(**{"external-id": TOO_LONG_ID}), "--external-id"),
    "create-blank-export-id": (create_with(**{"export-id": ""}), "--export-id"),
    "create-long-export-id": (create_with(**{"export-id": TOO_LONG_ID}), "--export-id"),
    "create-hyphen-export-id": (create_with(**{"export-id": "A-B"}), "--export-id"),
    "create-unicode-export-id": (create_with(**{"export-id": "ÄPFEL"}), "--export-id"),
    "create-missing-export-id": (["create", "--name", "x", "--external-id", "x"], "--export-id"),
    "update-blank-name": (["update", REFERENCE, "--name", " "], "--name"),
    "update-hyphen-export-id": (["update", REFERENCE, "--export-id", "RE-F"], "--export-id"),
    "list-bad-sort": (["list", "--sort", "secret"], "--sort"),
    "list-bad-limit": (["list", "--limit", "0"], "--limit"),
}
# Refused for what the database holds.
STATE_REFUSALS = {
    "create-duplicate-export-id": (create_with(**{"export-id": "reference"}), "--export-id"),
    "update-duplicate-export-id": (["update", REFERENCE, "--export-id", OTHER], "--export-id"),
    "update-stale-version": (
        ["update", REFERENCE, "--name", "x", "--if-version", "9"],
        "--if-version",
    ),
    "update-unknown": (["update", "NO_SUCH", "--name", "x"], "NO_SUCH"),
    "show-unknown": (["show", "NO_SUCH"], "NO_SUCH"),
    "delete-unknown": (["delete", "NO_SUCH"], "NO_SUCH"),
    "delete-stale-version": (["delete", REFERENCE, "--if-version", "9"], "--if-version"),
    "secret-unknown": (["secret", "NO_SUCH"], "NO_SUCH"),
    "rotate-secret-unknown": (["rotate-secret", "NO_SUCH"], "NO_SUCH"),
    "list-bad-cursor": (["list", "--cursor", "not-a-cursor"], "--cursor"),
}


@pytest.mark.parametrize(("arguments", "named"), INPUT_REFUSALS.values(), ids=INPUT_REFUSALS.keys())
def test_bad_input_is_one_line_naming_the_field_and_touches_no_database(
    cli_without_database: Cli, arguments: list[str], named: str
) -> None:
    result = cli_without_database.run("integrations", *arguments)

    assert result.returncode != 0
    assert named in result.error_line
    assert_untouched(cli_without_database)


@pytest.mark.parametrize(("arguments", "named"), STATE_REFUSALS.values(), ids=STATE_REFUSALS.keys())
@pytest.mark.usefixtures("references")
async def test_refusal_is_one_line_naming_the_field_and_changes_nothing(
    cli: Cli, arguments: list[str], named: str
) -> None:
    before = await stored(cli)

    result = cli.run("integrations", *arguments)

    assert result.returncode != 0
    assert named in result.error_line
    assert await stored(cli) == before


@pytest.mark.usefixtures("references")
def test_stale_version_leaves_the_integration_as_it_was(cli: Cli) -> None:
    before = cli.ok("integrations", "show", REFERENCE, "--json").json()

    result = cli.run(
        "integrations", "update", REFERENCE, "--name", "Overwritten", "--if-version", "0"
    )

    assert result.returncode != 0
    assert cli.ok("integrations", "show", REFERENCE, "--json").json() == before
