"""What a running process holds: settings, the database, and the box that opens secrets."""

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from reflexblue.core.crypto import SecretBox
from reflexblue.core.database import create_engine, create_sessionmaker
from reflexblue.core.errors import ConfigurationError
from reflexblue.core.keyring import open_secret_box
from reflexblue.core.migrations import apply_migrations
from reflexblue.core.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    box: SecretBox
    # Set when deliveries became due in this process, so its worker looks at once instead of
    # at its next poll. Other processes learn of them by PostgreSQL NOTIFY or by polling.
    delivery_doorbell: asyncio.Event = field(default_factory=asyncio.Event)

    async def close(self) -> None:
        await self.engine.dispose()


async def start_runtime(settings: Settings, *, migrate: bool = True) -> Runtime:
    """Open the database, bring its schema up to date and prove the master key fits it."""
    if settings.database_url is None:
        # The database holds sealed secrets and password hashes: keep it from other users.
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_sqlite_folder(settings.sqlalchemy_url)
    engine = create_engine(settings.sqlalchemy_url)
    try:
        if migrate:
            await apply_migrations(engine)
        sessions = create_sessionmaker(engine)
        box = await open_secret_box(settings, sessions)
    except BaseException:
        await engine.dispose()
        raise
    logger.info("database ready", extra={"backend": engine.dialect.name})
    return Runtime(settings=settings, engine=engine, sessions=sessions, box=box)


def _check_sqlite_folder(url: str) -> None:
    """A clear word before connecting: SQLite's own is only "unable to open database file"."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return
    folder = Path(parsed.database).parent
    if not folder.is_dir():
        raise ConfigurationError(
            f"the SQLite database's folder {folder} does not exist; create it or point "
            "REFLEXBLUE_DATABASE_URL elsewhere"
        )
