"""Alembic's entry point: runs on the connection the product passes in, or on the configured URL."""

import asyncio

from alembic import context
from sqlalchemy import Connection

from reflexblue.core.database import create_engine
from reflexblue.core.settings import Settings
from reflexblue.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_configured_database() -> None:
    engine = create_engine(Settings().sqlalchemy_url)
    async with engine.begin() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


given = context.config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    asyncio.run(_run_on_configured_database())
