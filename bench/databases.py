"""A fresh, migrated database for every run: SQLite files in a temporary folder, or databases
on a throwaway PostgreSQL 15 server."""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from tests.support.databases import PostgresDatabases, SqliteTemplate
from tests.support.postgres import running_postgres


class DatabaseFactory(Protocol):
    backend: str

    def create(self) -> str:
        """The URL of a new, migrated, empty database."""
        ...


class _SqliteFactory:
    backend = "sqlite"

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._template = SqliteTemplate(folder / "template")
        self._runs = 0

    def create(self) -> str:
        self._runs += 1
        run_folder = self._folder / f"run-{self._runs}"
        run_folder.mkdir()
        return self._template.copy_to(run_folder)


class _PostgresFactory:
    backend = "postgresql"

    def __init__(self, server_url: str) -> None:
        self._databases = PostgresDatabases(server_url, "bench")

    def create(self) -> str:
        return self._databases.create()


@contextmanager
def bench_databases(folder: Path, *, postgresql: bool) -> Iterator[DatabaseFactory]:
    """Databases for one benchmark command; everything is removed when it ends."""
    if not postgresql:
        (folder / "template").mkdir()
        yield _SqliteFactory(folder)
        return
    with running_postgres() as server:
        yield _PostgresFactory(server.url)


def scratch_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="reflexblue-bench-"))
