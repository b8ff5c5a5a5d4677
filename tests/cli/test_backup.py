"""`reflexblue backup` and `reflexblue restore` as real processes on the embedded SQLite
database: a consistent copy while `serve` writes, a round trip into a fresh data folder, and
every bad input refused with one line and nothing changed."""

import hashlib
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.cli.conftest import Cli, add_integrations
from tests.support.databases import SQLITE_FILE_NAME, sqlite_url
from tests.support.management import INTEGRATIONS_PATH, integration_body
from tests.support.server import running_server

ADMIN_PASSWORD = "correct horse battery staple"
EXPORT_IDS = ("ALPHA", "BRAVO", "CHARLIE")


def data_cli(folder: Path) -> Cli:
    """The embedded default: the database and the key file together in one data folder."""
    data_dir = folder / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    return Cli(data_dir, sqlite_url(str(data_dir)))


def database_file(cli: Cli) -> Path:
    return cli.data_dir / SQLITE_FILE_NAME


def secret_of(cli: Cli, export_id: str) -> Any:
    return cli.ok("integrations", "secret", export_id, "--json").json()


def export_ids_in(cli: Cli) -> set[str]:
    """Every integration's Export ID, page after page: a busy writer makes hundreds."""
    found: set[str] = set()
    cursor: list[str] = []
    while True:
        page = cli.ok("integrations", "list", "--limit", "200", *cursor, "--json").json()
        found |= {item["export_id"] for item in page["items"]}
        if page["next_cursor"] is None:
            return found
        cursor = ["--cursor", page["next_cursor"]]


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fresh_data_dir_with_key_of(cli: Cli, folder: Path) -> Cli:
    restored = data_cli(folder)
    shutil.copy2(cli.data_dir / "master.key", restored.data_dir / "master.key")
    return restored


@contextmanager
def integrations_written_through(server_url: str, token: str) -> Iterator[list[str]]:
    """Integrations created one after another through the Management API of a running `serve`
    until the block ends; the list holds the Export IDs it created."""
    created: list[str] = []
    stop = threading.Event()
    first = threading.Event()

    def write() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server_url, headers=headers, timeout=30) as http:
            while not stop.is_set():
                export_id = f"LIVE{len(created)}"
                body = integration_body(export_id=export_id, external_id=export_id.lower())
                response = http.post(INTEGRATIONS_PATH, json=body)
                assert response.status_code == 201, response.text
                created.append(export_id)
                first.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert first.wait(timeout=60), "the writer never got an integration in"
        yield created
    finally:
        stop.set()
        writer.join(timeout=60)


def test_backup_while_serve_writes_restores_into_a_fresh_data_dir(tmp_path: Path) -> None:
    live = data_cli(tmp_path / "live")
    add_integrations(live, *EXPORT_IDS)
    secrets_before = {export_id: secret_of(live, export_id) for export_id in EXPORT_IDS}
    backup = tmp_path / "backups" / "reflexblue.sqlite3"
    backup.parent.mkdir()
    env = {**live.env, "REFLEXBLUE_ADMIN_PASSWORD": ADMIN_PASSWORD}

    with running_server(env) as server:
        token = live.ok("tokens", "create", "admin", "--name", "writer").stdout.strip()
        with integrations_written_through(server.url, token) as written:
            taken = live.run("backup", str(backup))
            written_meanwhile = len(written)
        assert taken.returncode == 0, taken.stderr
    restored = fresh_data_dir_with_key_of(live, tmp_path / "restored")
    restored.ok("restore", str(backup))

    found = export_ids_in(restored)
    assert set(EXPORT_IDS) <= found
    assert found - set(EXPORT_IDS) <= {f"LIVE{n}" for n in range(written_meanwhile)}
    assert {export_id: secret_of(restored, export_id) for export_id in EXPORT_IDS} == (
        secrets_before
    )


def test_backup_file_is_private_and_says_to_keep_the_master_key(tmp_path: Path) -> None:
    live = data_cli(tmp_path)
    add_integrations(live, "ALPHA")
    backup = tmp_path / "copy.sqlite3"

    result = live.ok("backup", str(backup))

    assert backup.stat().st_mode & 0o777 == 0o600
    assert f"Backed up the database to {backup}" in result.stdout
    assert f"Keep the master key ({live.data_dir / 'master.key'})" in result.stderr
    assert [path.name for path in tmp_path.iterdir() if path.name.endswith(".partial")] == []


def test_backup_json_names_the_file_and_its_schema_revision(tmp_path: Path) -> None:
    live = data_cli(tmp_path)
    live.ok("migrate")
    backup = tmp_path / "copy.sqlite3"

    reported = live.ok("backup", str(backup), "--json").json()

    assert reported == {
        "path": str(backup),
        "size_bytes": backup.stat().st_size,
        "schema_revision": revision_of(backup),
    }


def revision_of(database: Path) -> str:
    with closing(sqlite3.connect(database)) as connection:
        return str(connection.execute("SELECT version_num FROM alembic_version").fetchone()[0])


def test_restore_brings_back_the_backup_and_keeps_the_replaced_database(tmp_path: Path) -> None:
    live = data_cli(tmp_path)
    add_integrations(live, "ALPHA")
    backup = tmp_path / "copy.sqlite3"
    live.ok("backup", str(backup))
    add_integrations(live, "LATER")

    live.ok("restore", str(backup))

    assert export_ids_in(live) == {"ALPHA"}
    kept = live.data_dir / f"{SQLITE_FILE_NAME}.before-restore"
    with closing(sqlite3.connect(kept)) as connection:
        rows = connection.execute("SELECT export_id FROM integrations ORDER BY 1").fetchall()
    assert rows == [("ALPHA",), ("LATER",)]


def test_restore_refuses_while_serve_uses_the_database(tmp_path: Path) -> None:
    live = data_cli(tmp_path)
    add_integrations(live, "ALPHA")
    backup = tmp_path / "copy.sqlite3"
    live.ok("backup", str(backup))

    with running_server({**live.env, "REFLEXBLUE_ADMIN_PASSWORD": ADMIN_PASSWORD}) as server:
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        result = live.run("restore", str(backup))
        database_left = database_file(live).exists()

    assert result.returncode == 1
    assert result.error_line == (
        f"error: {database_file(live)} is in use; stop every `reflexblue serve` and "
        "`reflexblue worker` that uses it, then restore"
    )
    assert database_left
    assert not (live.data_dir / f"{SQLITE_FILE_NAME}.before-restore").exists()


# --- refused input ------------------------------------------------------------------------


def test_backup_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    live = data_cli(tmp_path)
    live.ok("migrate")
    target = tmp_path / "existing.sqlite3"
    target.write_text("keep me")

    result = live.run("backup", str(target))

    assert result.returncode == 1
    assert result.error_line == f"error: {target} already exists; add --force to replace it"
    assert target.read_text() == "keep me"


def test_backup_with_force_replaces_the_file(tmp_path: Path) -> None:
    live = data_cli(tmp_path)
    add_integrations(live, "ALPHA")
    target = tmp_path / "existing.sqlite3"
    target.write_text("old")

    live.ok("backup", str(target), "--force")

    assert revision_of(target)


def test_backup_refuses_the_live_database_as_its_target(tmp_path: Path) -> None:
    live = data_cli(tmp_path)
    add_integrations(live, "ALPHA")
    before = fingerprint(database_file(live))

    result = live.run("backup", str(database_file(live)), "--force")

    assert result.returncode == 1
    assert "is the live database itself" in result.error_line
    assert fingerprint(database_file(live)) == before


def test_backup_into_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    live = data_cli(tmp_path)
    live.ok("migrate")

    result = live.run("backup", str(tmp_path / "nowhere" / "copy.sqlite3"))

    assert result.error_line == f"error: the folder {tmp_path / 'nowhere'} does not exist"


def test_backup_without_a_database_creates_none(tmp_path: Path) -> None:
    live = data_cli(tmp_path)

    result = live.run("backup", str(tmp_path / "copy.sqlite3"))

    assert result.error_line == f"error: there is no database at {database_file(live)} to back up"
    assert not database_file(live).exists()
    assert not (tmp_path / "copy.sqlite3").exists()


def test_backup_on_postgresql_points_to_pg_dump(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data", "postgresql://reflexblue@127.0.0.1:1/reflexblue")

    result = cli.run("backup", str(tmp_path / "copy.sql"))

    assert result.returncode == 1
    assert "works on SQLite only; on PostgreSQL use pg_dump" in result.error_line


def test_restore_on_postgresql_points_to_pg_restore(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data", "postgresql://reflexblue@127.0.0.1:1/reflexblue")
    backup = tmp_path / "copy.sqlite3"
    backup.write_bytes(b"")

    result = cli.run("restore", str(backup))

    assert "works on SQLite only; on PostgreSQL use pg_restore" in result.error_line


def assert_restore_refused(live: Cli, backup: Path, complaint: str) -> None:
    """Refused with one line naming the problem, and the live database left as it was."""
    before = fingerprint(database_file(live))

    result = live.run("restore", str(backup))

    assert result.returncode == 1
    assert complaint in result.error_line
    assert fingerprint(database_file(live)) == before
    assert not (live.data_dir / f"{SQLITE_FILE_NAME}.before-restore").exists()
    assert [path.name for path in live.data_dir.iterdir() if path.name.startswith(".")] == []


def test_restore_of_a_missing_file_is_refused(tmp_path: Path) -> None:
    live = data_cli(tmp_path)
    add_integrations(live, "ALPHA")
    missing = tmp_path / "missing.sqlite3"

    assert_restore_refused(live, missing, f"there is no backup file at {missing}")


def test_restore_of_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    live = data_cli(tmp_path)
    add_integrations(live, "ALPHA")
    backup = tmp_path / "notes.sqlite3"
    backup.write_text("these are notes, not a database\n" * 100)

    assert_restore_refused(live, backup, "is not a readable SQLite database")


def test_restore_of_another_sqlite_database_is_refused(tmp_path: Path) -> None:
    live = data_cli(tmp_path)
    add_integrations(live, "ALPHA")
    backup = tmp_path / "other.sqlite3"
    with closing(sqlite3.connect(backup)) as connection:
        connection.execute("CREATE TABLE recipes (name TEXT)")
        connection.commit()

    assert_restore_refused(live, backup, "is not a ReflexBlue database")


def test_restore_of_a_backup_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    live = data_cli(tmp_path)
    add_integrations(live, "ALPHA")
    backup = tmp_path / "newer.sqlite3"
    live.ok("backup", str(backup))
    with closing(sqlite3.connect(backup)) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
        connection.commit()

    assert_restore_refused(live, backup, "has schema revision '9999', which this version")


def test_restore_of_a_backup_sealed_with_another_master_key_is_refused(tmp_path: Path) -> None:
    other = data_cli(tmp_path / "other")
    add_integrations(other, "OTHER")
    backup = tmp_path / "other.sqlite3"
    other.ok("backup", str(backup))
    live = data_cli(tmp_path / "live")
    add_integrations(live, "ALPHA")

    assert_restore_refused(live, backup, "was sealed with another master key")


def test_restore_into_a_data_dir_without_the_key_is_refused(tmp_path: Path) -> None:
    live = data_cli(tmp_path / "live")
    add_integrations(live, "ALPHA")
    backup = tmp_path / "copy.sqlite3"
    live.ok("backup", str(backup))
    empty = data_cli(tmp_path / "empty")

    result = empty.run("restore", str(backup))

    assert result.returncode == 1
    assert "provide the key that belongs to the backup" in result.error_line
    assert not database_file(empty).exists()
    assert not (empty.data_dir / "master.key").exists()
