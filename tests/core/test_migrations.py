from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from reflexblue.core.migrations import pending_migrations
from reflexblue.core.runtime import Runtime
from reflexblue.models import Base


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrations_create_exactly_the_schema_the_models_describe(runtime: Runtime) -> None:
    async with runtime.engine.connect() as connection:
        differences = await connection.run_sync(_differences)

    assert differences == []


async def test_a_migrated_database_has_no_pending_migrations(runtime: Runtime) -> None:
    assert await pending_migrations(runtime.engine) is False
