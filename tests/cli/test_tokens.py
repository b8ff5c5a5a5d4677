"""`reflexblue tokens`: a token is printed once, works on the Management API, and revokes."""

import pytest
from sqlalchemy import select

from reflexblue.accounts.models import UserToken
from reflexblue.core.database import transaction
from tests.cli.conftest import Cli, assert_untouched, management_api, runtime_of

OWNER = "token-owner"


@pytest.fixture(scope="module")
def owner(cli: Cli) -> None:
    cli.ok("users", "create", OWNER, "--password-stdin", stdin="the owner's long password\n")


def new_token(cli: Cli, name: str) -> str:
    return cli.ok("tokens", "create", OWNER, "--name", name).stdout.strip()


async def status_with(cli: Cli, token: str) -> int:
    async with management_api(cli, token) as api:
        return (await api.get("/integrations")).status_code


async def stored_tokens(cli: Cli) -> list[tuple[str, str, bool]]:
    async with runtime_of(cli) as runtime, transaction(runtime.sessions) as session:
        rows = await session.scalars(select(UserToken).order_by(UserToken.id))
        return [(row.id, row.name, row.revoked_at is None) for row in rows]


@pytest.mark.usefixtures("owner")
def test_create_prints_only_the_token_on_stdout(cli: Cli) -> None:
    result = cli.ok("tokens", "create", OWNER, "--name", "printed")

    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("rbu_")
    assert lines[0] not in result.stderr


@pytest.mark.usefixtures("owner")
async def test_created_token_works_on_the_management_api(cli: Cli) -> None:
    token = new_token(cli, "automation")

    assert await status_with(cli, token) == 200


@pytest.mark.usefixtures("owner")
def test_list_never_prints_the_token(cli: Cli) -> None:
    token = new_token(cli, "listed")

    human = cli.ok("tokens", "list", OWNER)
    as_json = cli.ok("tokens", "list", OWNER, "--json")

    for output in (human.stdout, human.stderr, as_json.stdout, as_json.stderr):
        assert token not in output
    listed = [row for row in as_json.json() if row["name"] == "listed"]
    assert [row["last_four"] for row in listed] == [token[-4:]]
    assert "listed" in human.stdout


@pytest.mark.usefixtures("owner")
async def test_revoked_token_gets_401(cli: Cli) -> None:
    token = new_token(cli, "to-revoke")
    listed = cli.ok("tokens", "list", OWNER, "--json").json()
    [row] = [row for row in listed if row["name"] == "to-revoke"]

    cli.ok("tokens", "revoke", row["id"])

    assert await status_with(cli, token) == 401
    assert (row["id"], "to-revoke", False) in await stored_tokens(cli)


@pytest.mark.parametrize(
    "arguments",
    [["create", OWNER, "--name", "  "], ["create", OWNER], ["create", OWNER, "--name", "x" * 101]],
    ids=["blank-name", "missing-name", "long-name"],
)
def test_bad_token_name_is_one_line_error_and_touches_no_database(
    cli_without_database: Cli, arguments: list[str]
) -> None:
    result = cli_without_database.run("tokens", *arguments)

    assert result.returncode != 0
    assert "--name" in result.error_line
    assert_untouched(cli_without_database)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["create", "nobody", "--name", "x"], "nobody"),
        (["revoke", "tok_unknown"], "tok_unknown"),
        (["list", "nobody"], "nobody"),
    ],
    ids=["unknown-user", "unknown-token", "list-unknown-user"],
)
@pytest.mark.usefixtures("owner")
async def test_unknown_user_or_token_is_one_line_error_and_changes_no_token(
    cli: Cli, arguments: list[str], named: str
) -> None:
    before = await stored_tokens(cli)

    result = cli.run("tokens", *arguments)

    assert result.returncode != 0
    assert named in result.error_line
    assert await stored_tokens(cli) == before
