"""/healthz, /readyz and /metrics when the database is behind on migrations or gone."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import Connection

from reflexblue.app import create_app
from reflexblue.core.migrations import alembic_config
from reflexblue.core.runtime import Runtime, start_runtime
from reflexblue.core.settings import Settings
from tests.monitoring.conftest import parse_scrape
from tests.support.postgres import PostgresServer, running_postgres


def _one_revision_back(connection: Connection) -> None:
    command.downgrade(alembic_config(connection), "-1")


@pytest.fixture
async def stopped_database(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The application on a PostgreSQL server that was stopped after it started."""
    with running_postgres() as server:
        runtime = await _runtime_on(server, tmp_path)
        transport = httpx.ASGITransport(app=create_app(runtime.settings, runtime))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                server.stop()
                yield http
        finally:
            await runtime.close()


async def _runtime_on(server: PostgresServer, tmp_path: Path) -> Runtime:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", database_url=server.url)
    return await start_runtime(settings)


async def test_ready_on_a_current_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")

    assert (response.status_code, response.json()) == (200, {"status": "ready"})


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_probes_answer_head_as_they_answer_get(client: httpx.AsyncClient, path: str) -> None:
    response = await client.head(path)

    assert response.status_code == 200
    assert response.content == b""


async def test_not_ready_on_a_database_behind_on_migrations(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    async with runtime.engine.begin() as connection:
        await connection.run_sync(_one_revision_back)

    response = await client.get("/readyz")

    assert (response.status_code, response.json()) == (503, {"status": "migrations pending"})


@pytest.mark.postgresql_only
async def test_not_ready_when_the_database_server_is_stopped(
    backend: str, stopped_database: httpx.AsyncClient
) -> None:
    response = await stopped_database.get("/readyz")

    assert (response.status_code, response.json()) == (503, {"status": "database unreachable"})


@pytest.mark.postgresql_only
async def test_alive_while_the_database_server_is_stopped(
    backend: str, stopped_database: httpx.AsyncClient
) -> None:
    response = await stopped_database.get("/healthz")

    assert response.status_code == 200


@pytest.mark.postgresql_only
async def test_metrics_report_the_database_down_and_leave_out_its_figures(
    backend: str, stopped_database: httpx.AsyncClient
) -> None:
    response = await stopped_database.get("/metrics")

    scraped = parse_scrape(response.text)
    assert response.status_code == 200
    assert scraped.value("reflexblue_database_up") == 0
    assert not {"reflexblue_queue_depth", "reflexblue_webhooks"} & scraped.family_names
    assert "reflexblue_deliveries" in scraped.family_names
