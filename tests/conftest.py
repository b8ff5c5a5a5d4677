"""Fixtures shared by every test: a database on each backend, a runtime, API clients."""

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from reflexblue.accounts.models import Role
from reflexblue.accounts.schemas import UserCreate
from reflexblue.accounts.service import create_token, create_user
from reflexblue.app import create_app
from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime, start_runtime
from reflexblue.core.settings import Settings
from tests.support.databases import PostgresDatabases, SqliteTemplate
from tests.support.postgres import throwaway_postgres

BACKENDS = ("sqlite", "postgresql")
TEST_PASSWORD = "correct horse battery staple"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=(*BACKENDS, "all"),
        default="all",
        help="Run database tests on SQLite, on PostgreSQL, or on both (the default).",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--db")
        backends: tuple[str, ...] = BACKENDS if chosen == "all" else (chosen,)
        if metafunc.definition.get_closest_marker("postgresql_only"):
            backends = tuple(b for b in backends if b == "postgresql")
        metafunc.parametrize("backend", backends, scope="session")


@pytest.fixture(scope="session")
def postgres_databases(worker_id: str) -> Iterator[PostgresDatabases]:
    """A PostgreSQL server for this test process: the given one, or a throwaway one."""
    given = os.environ.get("REFLEXBLUE_TEST_DATABASE_URL")
    if given:
        databases = PostgresDatabases(given, worker_id)
        yield databases
        databases.drop_all()
        return
    with throwaway_postgres() as server_url:
        yield PostgresDatabases(server_url, worker_id)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplate:
    return SqliteTemplate(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        template: SqliteTemplate = request.getfixturevalue("sqlite_template")
        return template.copy_to(tmp_path)
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    return databases.create()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=database_url,
        allow_private_targets=False,
    )


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    started = await start_runtime(settings)
    yield started
    await started.close()


@dataclass(frozen=True)
class ApiUser:
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_user(runtime: Runtime, username: str, role: Role) -> ApiUser:
    async with transaction(runtime.sessions) as session:
        data = UserCreate(username=username, password=TEST_PASSWORD, role=role)
        await create_user(session, data, CLI_ACTOR)
        _, token = await create_token(session, username, "tests", CLI_ACTOR)
    return ApiUser(username, token)


@pytest.fixture
async def admin(runtime: Runtime) -> ApiUser:
    return await make_user(runtime, "alice", Role.ADMIN)


@pytest.fixture
async def viewer(runtime: Runtime) -> ApiUser:
    return await make_user(runtime, "victor", Role.VIEWER)


@pytest.fixture
async def client(runtime: Runtime, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the whole application in this process."""
    transport = httpx.ASGITransport(app=create_app(settings, runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def visitor(runtime: Runtime, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping client, as a browser would be, that does not follow redirects."""
    transport = httpx.ASGITransport(app=create_app(settings, runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def admin_client(client: httpx.AsyncClient, admin: ApiUser) -> httpx.AsyncClient:
    client.headers.update(admin.headers)
    return client


@pytest.fixture
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """The SQL statements the application sends from now on."""
    sent: list[str] = []

    def note(*arguments: Any) -> None:
        sent.append(arguments[2])

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", note)
    yield sent
    event.remove(runtime.engine.sync_engine, "before_cursor_execute", note)
