"""`reflexblue serve` as a real process: migrations, the first administrator, readiness, and a
clean stop on SIGTERM."""

import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reflexblue.accounts.service import authenticate_password
from reflexblue.core.database import transaction
from reflexblue.core.errors import Unauthenticated
from tests.cli.conftest import Cli, runtime_of
from tests.support.server import SHUTDOWN_TIMEOUT_SECONDS, RunningServer, running_server

GENERATED_PASSWORD = re.compile(r"^  password:  (\S+)$", re.MULTILINE)
# A line of the console log format: date, time, level.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


@pytest.fixture(scope="module")
def first_start(cli_without_users: Cli) -> Iterator[RunningServer]:
    """The first start on an empty database, kept running for the module."""
    with running_server(cli_without_users.env) as server:
        yield server


@pytest.fixture(scope="module")
def cli_without_users(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The module's database, left untouched so that `serve` finds it empty."""
    return Cli(tmp_path_factory.mktemp("serve") / "data", module_database_url)


@pytest.fixture(scope="module")
def generated_password(first_start: RunningServer) -> str:
    found = GENERATED_PASSWORD.findall(first_start.output)
    assert len(found) == 1, first_start.output
    return str(found[0])


async def password_works(cli: Cli, password: str) -> bool:
    async with runtime_of(cli) as runtime, transaction(runtime.sessions) as session:
        try:
            await authenticate_password(session, "admin", password)
        except Unauthenticated:
            return False
        return True


def test_first_start_prints_the_generated_password_once(
    first_start: RunningServer, generated_password: str
) -> None:
    assert first_start.output.count(generated_password) == 1


async def test_generated_password_signs_the_admin_in(
    cli_without_users: Cli, generated_password: str
) -> None:
    assert await password_works(cli_without_users, generated_password)


def test_generated_password_is_in_no_log_line(
    first_start: RunningServer, generated_password: str
) -> None:
    log_lines = [line for line in first_start.output.splitlines() if LOG_LINE.match(line)]

    assert log_lines, first_start.output
    assert not [line for line in log_lines if generated_password in line]


def test_started_server_is_ready_on_a_migrated_database(first_start: RunningServer) -> None:
    response = httpx.get(f"{first_start.url}/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_second_start_prints_no_password_and_keeps_the_first(
    first_start: RunningServer, cli_without_users: Cli, generated_password: str
) -> None:
    with running_server(cli_without_users.env) as second:
        output = second.output

    assert not GENERATED_PASSWORD.search(output)
    assert "first administrator" not in output
    assert await password_works(cli_without_users, generated_password)


async def test_admin_password_from_the_environment_is_used_and_not_printed(
    database_url: str, tmp_path: Path
) -> None:
    chosen = "a chosen admin password"
    cli = Cli(tmp_path / "data", database_url)

    with running_server({**cli.env, "REFLEXBLUE_ADMIN_PASSWORD": chosen}) as server:
        output = server.output

    assert chosen not in output
    assert not GENERATED_PASSWORD.search(output)
    assert await password_works(cli, chosen)


def test_sigterm_stops_the_server_cleanly(
    first_start: RunningServer, cli_without_users: Cli
) -> None:
    with running_server(cli_without_users.env) as server:
        server.process.send_signal(signal.SIGTERM)
        try:
            exit_code = server.process.wait(timeout=SHUTDOWN_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve did not stop on SIGTERM:\n{server.output}")
        output = server.output

    assert exit_code == 0, output
    assert "Traceback" not in output
