"""The `reflexblue` command run as a real process, on a database shared by a test module.

Every run has no terminal on standard input (it is empty or a pipe), so a command that tried
to prompt would fail its test instead of hanging it.
"""

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from reflexblue.app import create_app
from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime, start_runtime
from reflexblue.core.settings import Settings
from reflexblue.integrations.schemas import IntegrationCreate
from reflexblue.integrations.service import (
    create_integration,
    get_integration_by_export_id,
    rotate_secret,
)
from tests.support.databases import PostgresDatabases, sqlite_url
from tests.support.server import base_environment, cli_command

COMMAND_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.returncode == 0, self.stderr
        return json.loads(self.stdout)

    @property
    def error_line(self) -> str:
        """The one line a failed command wrote on stderr (the test fails if there are more)."""
        lines = self.stderr.splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got: {self.stderr!r}"
        assert lines[0].startswith("error: "), lines[0]
        return lines[0]


@dataclass(frozen=True)
class Cli:
    """`reflexblue` against one data folder and database."""

    data_dir: Path
    database_url: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "REFLEXBLUE_DATA_DIR": str(self.data_dir),
            "REFLEXBLUE_DATABASE_URL": self.database_url,
        }

    def run(self, *arguments: str, stdin: str | None = None, **env: str) -> CliResult:
        """Run one command; `env` adds or overrides REFLEXBLUE_* variables for this run."""
        done = subprocess.run(
            cli_command(*arguments),
            env=base_environment({**self.env, **env}),
            # The data folder's parent, so that no `.env` file of the checkout takes part.
            cwd=self.data_dir.parent,
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    def ok(self, *arguments: str, stdin: str | None = None) -> CliResult:
        result = self.run(*arguments, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result

    def settings(self) -> Settings:
        """The same configuration, for looking into the database from the test itself."""
        return Settings(_env_file=None, data_dir=self.data_dir, database_url=self.database_url)


@asynccontextmanager
async def runtime_of(cli: Cli) -> AsyncIterator[Runtime]:
    runtime = await start_runtime(cli.settings())
    try:
        yield runtime
    finally:
        await runtime.close()


def add_integrations(cli: Cli, *export_ids: str, rotated: tuple[str, ...] = ()) -> None:
    """Integrations named after their Export IDs, made with the service functions the commands
    call, in this process: data a test starts from, without a process per row. Those in
    `rotated` get a new secret, with the first one still signing for the grace period."""

    async def add() -> None:
        async with runtime_of(cli) as runtime, transaction(runtime.sessions) as session:
            for export_id in export_ids:
                data = IntegrationCreate(
                    name=export_id.title(), external_id=export_id.lower(), export_id=export_id
                )
                await create_integration(session, runtime.box, data, CLI_ACTOR)
            for export_id in rotated:
                integration = await get_integration_by_export_id(session, export_id)
                await rotate_secret(
                    session,
                    runtime.box,
                    integration.id,
                    CLI_ACTOR,
                    grace_period_seconds=runtime.settings.secret_grace_period,
                )

    asyncio.run(add())


@asynccontextmanager
async def management_api(cli: Cli, token: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """The Management API over the CLI's database, in this process."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with runtime_of(cli) as runtime:
        transport = httpx.ASGITransport(app=create_app(runtime.settings, runtime))
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://testserver/api/management",
            headers=headers,
        ) as client:
            yield client


@pytest.fixture
def cli_without_database(tmp_path: Path) -> Cli:
    """The CLI pointed at a database that does not exist yet, for input refused before it is
    needed: that the database is still not there afterwards proves nothing was changed."""
    return Cli(tmp_path / "data", sqlite_url(str(tmp_path)))


def assert_untouched(cli: Cli) -> None:
    assert not cli.data_dir.exists()
    assert not list(cli.data_dir.parent.glob("*.sqlite3"))


@pytest.fixture(scope="module")
def module_database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> str:
    """One database for a whole test module, on the backend of this run."""
    if backend == "sqlite":
        return sqlite_url(str(tmp_path_factory.mktemp("cli-database")))
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    return databases.create()


@pytest.fixture(scope="module")
def cli(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The command line on the module's database, migrated once."""
    data_dir = tmp_path_factory.mktemp("cli") / "data"
    shared = Cli(data_dir, module_database_url)
    shared.ok("migrate")
    return shared
