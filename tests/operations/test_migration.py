"""Migration 0004 on a database in use: deliveries and attempts survive, webhooks may lack an
integration afterwards, and the new event type is in the catalogue."""

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from reflexblue.core.database import UTCDateTime, create_engine
from reflexblue.core.migrations import alembic_config
from reflexblue.core.settings import Settings

_ROWS = [
    "INSERT INTO integrations (id, name, description, external_id, export_id, export_id_key,"
    " secret_sealed, version, created_at, updated_at)"
    " VALUES ('int_1', 'Shop', '', 'x', 'SHOP', 'shop', :sealed, 1, :at, :at)",
    "INSERT INTO webhooks (id, integration_id, url, description, event_types, enabled,"
    " created_at, updated_at)"
    " VALUES ('wh_1', 'int_1', 'https://example.com/h', '', '[\"*\"]', true, :at, :at)",
    "INSERT INTO events (id, type, data, created_at) VALUES ('evt_1', 'webhook.test', '{}', :at)",
    "INSERT INTO deliveries (id, event_id, webhook_id, status, attempt_count, created_at,"
    " updated_at) VALUES ('dlv_1', 'evt_1', 'wh_1', 'failed', 1, :at, :at)",
    "INSERT INTO attempts (id, delivery_id, attempted_at, duration_ms, response_body)"
    " VALUES ('att_1', 'dlv_1', :at, 5, '')",
]


AT = datetime(2026, 12, 1, 8, tzinfo=UTC)


def _statement(sql: str) -> TextClause:
    return text(sql).bindparams(bindparam("at", type_=UTCDateTime()))


def _migrate_to(revision: str) -> Callable[[Connection], None]:
    def run(connection: Connection) -> None:
        config = alembic_config(connection)
        current = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if current is not None and current > revision:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)

    return run


def _version_table_exists(connection: Connection) -> None:
    connection.execute(text("CREATE TABLE IF NOT EXISTS alembic_version (version_num TEXT)"))


@pytest.fixture
async def engine(settings: Settings, tmp_path: Path, backend: str) -> AsyncIterator[AsyncEngine]:
    url = settings.sqlalchemy_url
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.sqlite3'}"
    created = create_engine(url)
    yield created
    await created.dispose()


async def test_upgrading_a_used_database_keeps_its_deliveries_and_attempts(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_version_table_exists)
        await connection.run_sync(_migrate_to("0003"))
    async with engine.begin() as connection:
        for statement in _ROWS:
            await connection.execute(_statement(statement), {"at": AT, "sealed": b"x"})

    async with engine.begin() as connection:
        await connection.run_sync(_migrate_to("0004"))

    async with engine.begin() as connection:
        kept = [
            await connection.scalar(text(f"SELECT count(*) FROM {table}"))
            for table in ("webhooks", "deliveries", "attempts")
        ]
        failures = await connection.scalar(text("SELECT failure_count FROM webhooks"))
        await connection.execute(
            _statement(
                "INSERT INTO webhooks (id, integration_id, url, description, event_types,"
                " enabled, failure_count, created_at, updated_at) VALUES ('wh_op', NULL,"
                " 'https://ops.example/h', '', '[]', true, 0, :at, :at)"
            ),
            {"at": AT},
        )
        catalogue = await connection.scalar(
            text("SELECT count(*) FROM event_types WHERE name = 'webhook.disabled'")
        )
    assert kept == [1, 1, 1]
    assert failures == 0
    assert catalogue == 1
