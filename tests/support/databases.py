"""One fresh, migrated database per test, on SQLite or PostgreSQL.

Migrating costs more than many tests themselves, so each backend migrates one template per
test process and every test starts from a copy of it.
"""

import asyncio
import shutil
from itertools import count
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from reflexblue.core.database import create_engine
from reflexblue.core.migrations import apply_migrations

_numbers = count()
SQLITE_FILE_NAME = "reflexblue.sqlite3"


def sqlite_url(folder: str) -> str:
    return f"sqlite:///{folder}/{SQLITE_FILE_NAME}"


def _async_url(url: str) -> str:
    return url.replace("sqlite:///", "sqlite+aiosqlite:///").replace(
        "postgresql://", "postgresql+asyncpg://"
    )


async def _migrate(url: str) -> None:
    engine = create_engine(_async_url(url))
    try:
        await apply_migrations(engine)
    finally:
        await engine.dispose()


class SqliteTemplate:
    """A migrated database file that each test copies into its own folder."""

    def __init__(self, folder: Path) -> None:
        self._file = folder / SQLITE_FILE_NAME
        asyncio.run(_migrate(sqlite_url(str(folder))))

    def copy_to(self, folder: Path) -> str:
        shutil.copyfile(self._file, folder / SQLITE_FILE_NAME)
        return sqlite_url(str(folder))


class PostgresDatabases:
    """Creates a database per test on one server, from a migrated template; drops them all at
    the end."""

    def __init__(self, server_url: str, worker: str) -> None:
        self.server_url = server_url
        self.worker = worker
        self.created: list[str] = []
        self._template = f"template_{worker}"
        asyncio.run(self._execute(f'DROP DATABASE IF EXISTS "{self._template}" WITH (FORCE)'))
        asyncio.run(self._execute(f'CREATE DATABASE "{self._template}"'))
        self.created.append(self._template)
        asyncio.run(_migrate(self._url_of(self._template)))

    def create(self) -> str:
        name = f"test_{self.worker}_{next(_numbers)}"
        asyncio.run(self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"'))
        self.created.append(name)
        return self._url_of(name)

    def create_empty(self) -> str:
        """A database without any table, as a first deployment finds it."""
        name = f"empty_{self.worker}_{next(_numbers)}"
        asyncio.run(self._execute(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self._url_of(name)

    def drop_all(self) -> None:
        for name in self.created:
            asyncio.run(self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def _url_of(self, name: str) -> str:
        return str(make_url(self.server_url).set(database=name))

    async def _execute(self, statement: str) -> None:
        url = make_url(self.server_url)
        connection = await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, database=url.database or "postgres"
        )
        try:
            await connection.execute(statement)
        finally:
            await connection.close()
