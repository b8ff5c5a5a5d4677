"""`reflexblue users create`: passwords from stdin or generated, roles, and refusals."""

import pytest
from sqlalchemy import func, select

from reflexblue.accounts.models import User
from reflexblue.accounts.service import authenticate_password, get_user
from reflexblue.core.database import transaction
from reflexblue.core.errors import Unauthenticated
from tests.cli.conftest import Cli, assert_untouched, runtime_of

EXISTING_USER = "existing"
EXISTING_PASSWORD = "the existing user's password"


@pytest.fixture(scope="module")
def existing_user(cli: Cli) -> None:
    cli.ok("users", "create", EXISTING_USER, "--password-stdin", stdin=EXISTING_PASSWORD + "\n")


async def password_works(cli: Cli, username: str, password: str) -> bool:
    async with runtime_of(cli) as runtime, transaction(runtime.sessions) as session:
        try:
            await authenticate_password(session, username, password)
        except Unauthenticated:
            return False
        return True


async def user_count(cli: Cli) -> int:
    async with runtime_of(cli) as runtime, transaction(runtime.sessions) as session:
        return await session.scalar(select(func.count()).select_from(User)) or 0


async def test_password_from_stdin_signs_the_new_user_in(cli: Cli) -> None:
    cli.ok("users", "create", "stdin-user", "--password-stdin", stdin="a long stdin password\n")

    assert await password_works(cli, "stdin-user", "a long stdin password")


async def test_without_terminal_a_password_is_generated_and_printed_once(cli: Cli) -> None:
    result = cli.ok("users", "create", "generated-user")

    password = result.stdout.split("Password (shown once): ")[1].strip()
    assert result.stdout.count(password) == 1
    assert password not in result.stderr
    assert await password_works(cli, "generated-user", password)


async def test_json_output_carries_the_generated_password(cli: Cli) -> None:
    created = cli.ok("users", "create", "json-user", "--json").json()

    assert set(created) == {"id", "username", "role", "password"}
    assert await password_works(cli, "json-user", created["password"])


async def test_viewer_role_is_stored(cli: Cli) -> None:
    created = cli.ok("users", "create", "viewing-user", "--role", "viewer", "--json").json()

    async with runtime_of(cli) as runtime, transaction(runtime.sessions) as session:
        stored = await get_user(session, "viewing-user")
    assert created["role"] == stored.role == "viewer"


@pytest.mark.parametrize(
    ("arguments", "stdin", "named"),
    [
        (["bad name"], None, "NAME"),
        (["bad/name"], None, "NAME"),
        (["   "], None, "NAME"),
        (["x" * 101], None, "NAME"),
        (["short-password", "--password-stdin"], "too short\n", "password"),
        (["empty-password", "--password-stdin"], "", "password"),
        (["bad-role", "--role", "root"], None, "--role"),
    ],
    ids=["space", "slash", "blank", "too-long", "short-password", "no-password", "bad-role"],
)
def test_bad_input_is_one_line_error_and_touches_no_database(
    cli_without_database: Cli, arguments: list[str], stdin: str | None, named: str
) -> None:
    result = cli_without_database.run("users", "create", *arguments, stdin=stdin)

    assert result.returncode != 0
    assert named in result.error_line
    assert_untouched(cli_without_database)


@pytest.mark.usefixtures("existing_user")
async def test_duplicate_name_is_refused_and_keeps_the_first_user(cli: Cli) -> None:
    before = await user_count(cli)

    result = cli.run("users", "create", EXISTING_USER, "--password-stdin", stdin="another pass\n")

    assert result.returncode != 0
    assert "already exists" in result.error_line
    assert await user_count(cli) == before
    assert await password_works(cli, EXISTING_USER, EXISTING_PASSWORD)
