"""Backing up and restoring the embedded SQLite database.

Both work on copies made with SQLite's online backup API, so they read a consistent snapshot
even while `reflexblue serve` writes, and both put a file in place only by renaming a finished
and checked copy over it. PostgreSQL has its own tools (`pg_dump`, `pg_restore`).
"""

import logging
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import make_url

from reflexblue.core.crypto import SecretBox, decode_master_key, read_master_key_file
from reflexblue.core.errors import ConfigurationError, MasterKeyError
from reflexblue.core.keyring import KEY_CHECK_NAME
from reflexblue.core.migrations import alembic_config
from reflexblue.core.settings import Settings

logger = logging.getLogger(__name__)

BEFORE_RESTORE_SUFFIX = ".before-restore"
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class BackupError(Exception):
    """A backup or restore refused; the message says why and what to do instead."""


@dataclass(frozen=True)
class BackupReport:
    path: Path
    size_bytes: int
    schema_revision: str


@dataclass(frozen=True)
class RestoreReport:
    database: Path
    previous: Path | None
    schema_revision: str


def back_up(settings: Settings, target: Path, *, force: bool) -> BackupReport:
    """Copy the live database to `target`, checked, and renamed into place only when whole."""
    database = _sqlite_database(settings, "backup", "pg_dump")
    if not database.is_file():
        raise BackupError(f"there is no database at {database} to back up")
    target = target.absolute()
    _check_backup_target(database, target, force=force)

    with _temporary_copy_in(target.parent, target.name) as copy:
        _copy_database(database, copy)
        revision = _check_copy(copy, database)
        _replace(copy, target)
    logger.info("database backed up", extra={"path": str(target), "revision": revision})
    return BackupReport(path=target, size_bytes=target.stat().st_size, schema_revision=revision)


def restore(settings: Settings, backup: Path) -> RestoreReport:
    """Put `backup` in place of the database, after proving it is whole, of a schema this
    version knows, and sealed with the current master key. The replaced database is kept."""
    database = _sqlite_database(settings, "restore", "pg_restore")
    backup = backup.absolute()
    if not backup.is_file():
        raise BackupError(f"there is no backup file at {backup}")
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    previous = database.with_name(database.name + BEFORE_RESTORE_SUFFIX)
    if database.exists() and previous.exists():
        raise BackupError(f"{previous} is there from an earlier restore; move it elsewhere first")

    with _temporary_copy_in(database.parent, database.name) as copy:
        _copy_database(backup, copy)
        revision = _check_copy(copy, backup)
        _check_known_revision(revision, backup)
        _check_master_key(copy, settings, backup)
        kept = _set_aside(database, previous)
        _replace(copy, database)
    logger.info("database restored", extra={"path": str(backup), "revision": revision})
    return RestoreReport(database=database, previous=kept, schema_revision=revision)


def _sqlite_database(settings: Settings, command: str, postgres_tool: str) -> Path:
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() != "sqlite":
        raise BackupError(
            f"`reflexblue {command}` works on SQLite only; on PostgreSQL use {postgres_tool} "
            "(see docs/operations.md, Backups)"
        )
    if not url.database or url.database == ":memory:":
        raise ConfigurationError("the SQLite database must be a file to back up or restore")
    return Path(url.database).absolute()


def _check_backup_target(database: Path, target: Path, *, force: bool) -> None:
    own_files = {database, *(Path(f"{database}{side}") for side in _SQLITE_SIDE_FILES)}
    if target.resolve() in {path.resolve() for path in own_files}:
        raise BackupError(f"{target} is the live database itself; choose another path")
    if not target.parent.is_dir():
        raise BackupError(f"the folder {target.parent} does not exist")
    if target.is_dir():
        raise BackupError(f"{target} is a folder; give a file name")
    if target.exists() and not force:
        raise BackupError(f"{target} already exists; add --force to replace it")


@contextmanager
def _temporary_copy_in(folder: Path, name: str) -> Iterator[Path]:
    """A private file beside the final one, so the last step is a rename on one file system;
    gone afterwards unless it was renamed into place."""
    descriptor, path = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".partial")
    os.close(descriptor)
    copy = Path(path)
    try:
        yield copy
    finally:
        for leftover in (copy, *(Path(f"{copy}{side}") for side in _SQLITE_SIDE_FILES)):
            leftover.unlink(missing_ok=True)


def _copy_database(source: Path, copy: Path) -> None:
    # Read-only and never created: a mistyped path must not leave an empty database behind.
    try:
        with (
            closing(sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True)) as reading,
            closing(sqlite3.connect(copy)) as writing,
        ):
            reading.execute("PRAGMA busy_timeout = 10000")
            reading.backup(writing)
            # One self-contained file, with no write-ahead log beside it.
            writing.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{source} is not a readable SQLite database ({error})") from None


def _check_copy(copy: Path, source: Path) -> str:
    """The copy's schema revision, once SQLite finds it whole."""
    try:
        with closing(sqlite3.connect(copy)) as connection:
            verdict = [row[0] for row in connection.execute("PRAGMA integrity_check")]
            revisions = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{source} is not a ReflexBlue database ({error})") from None
    if verdict != ["ok"]:
        raise BackupError(f"{source} fails SQLite's integrity check: {verdict[0]}")
    if len(revisions) != 1:
        raise BackupError(f"{source} has no single schema revision; it is not usable")
    return str(revisions[0][0])


def _check_known_revision(revision: str, backup: Path) -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    try:
        known = scripts.get_revision(revision) is not None
    except CommandError:
        known = False
    if not known:
        raise BackupError(
            f"{backup} has schema revision {revision!r}, which this version of ReflexBlue does "
            "not know; restore it with the version that made it, or a newer one"
        )


def _check_master_key(copy: Path, settings: Settings, backup: Path) -> None:
    with closing(sqlite3.connect(copy)) as connection:
        row = connection.execute(
            "SELECT value FROM system_values WHERE name = ?", (KEY_CHECK_NAME,)
        ).fetchone()
    if row is None:
        return  # Never started, so nothing in it is sealed yet.
    try:
        SecretBox(_current_master_key(settings)).verify_key_check(bytes(row[0]))
    except MasterKeyError:
        raise BackupError(
            f"{backup} was sealed with another master key; set REFLEXBLUE_MASTER_KEY (or "
            f"{settings.master_key_file}) to the key that belongs to the backup"
        ) from None


def _current_master_key(settings: Settings) -> bytes:
    if settings.master_key is not None:
        return decode_master_key(settings.master_key.get_secret_value())
    if settings.master_key_file.exists():
        return read_master_key_file(settings.master_key_file)
    raise BackupError(
        f"the backup's secrets are sealed with a master key, but neither REFLEXBLUE_MASTER_KEY "
        f"nor {settings.master_key_file} is there; provide the key that belongs to the backup"
    )


def _set_aside(database: Path, previous: Path) -> Path | None:
    """Keep the replaced database, whole: SQLite refuses to leave write-ahead-log mode while
    another connection is open, so that change both proves no process uses the database and
    folds its log into the file."""
    if not database.exists():
        _remove_side_files(database)
        return None
    try:
        with closing(sqlite3.connect(database, timeout=0)) as connection:
            mode = connection.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
    except sqlite3.OperationalError:
        mode = "busy"
    if mode != "delete":
        raise BackupError(
            f"{database} is in use; stop every `reflexblue serve` and `reflexblue worker` "
            "that uses it, then restore"
        )
    _remove_side_files(database)
    os.replace(database, previous)
    return previous


def _remove_side_files(database: Path) -> None:
    for side in _SQLITE_SIDE_FILES:
        Path(f"{database}{side}").unlink(missing_ok=True)


def _replace(finished: Path, destination: Path) -> None:
    with open(finished, "rb") as file:
        os.fsync(file.fileno())
    os.replace(finished, destination)
    folder = os.open(destination.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
