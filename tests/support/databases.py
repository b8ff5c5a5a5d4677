"""One fresh, migrated database per test, on SQLite or PostgreSQL."""

import asyncio
from itertools import count

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

_numbers = count()


def sqlite_url(folder: str) -> str:
    return f"sqlite:///{folder}/reflexblue.sqlite3"


class PostgresDatabases:
    """Creates an empty database per test on one server, and drops them all at the end."""

    def __init__(self, server_url: str, worker: str) -> None:
        self.server_url = server_url
        self.worker = worker
        self.created: list[str] = []

    def create(self) -> str:
        name = f"test_{self.worker}_{next(_numbers)}"
        asyncio.run(self._execute(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return str(make_url(self.server_url).set(database=name))

    def drop_all(self) -> None:
        for name in self.created:
            asyncio.run(self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def _execute(self, statement: str) -> None:
        url = make_url(self.server_url)
        connection = await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, database=url.database or "postgres"
        )
        try:
            await connection.execute(statement)
        finally:
            await connection.close()
