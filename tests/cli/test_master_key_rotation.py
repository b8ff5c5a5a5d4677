"""`reflexblue rotate-master-key` as a real process: every secret re-sealed with the new key in
one transaction, the old key refused afterwards, and bad input refused with nothing changed."""

import base64
import os
import secrets
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from reflexblue.audit.service import list_events
from reflexblue.core.database import transaction
from tests.cli.conftest import Cli, add_integrations, runtime_of
from tests.support.databases import PostgresDatabases, sqlite_url


def random_key(length: int = 32) -> str:
    return base64.b64encode(secrets.token_bytes(length)).decode()


def make_keyed_cli(folder: Path, database_url: str) -> Cli:
    """A database with two integrations, one of them with a previous secret still signing."""
    cli = Cli(folder / "data", database_url)
    add_integrations(cli, "FIRST", "SECOND", rotated=("SECOND",))
    return cli


@pytest.fixture
def keyed_cli(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Cli:
    if backend == "sqlite":
        return make_keyed_cli(tmp_path, sqlite_url(str(tmp_path)))
    databases: PostgresDatabases = request.getfixturevalue("postgres_databases")
    return make_keyed_cli(tmp_path, databases.create())


@pytest.fixture
def sqlite_keyed_cli(tmp_path: Path) -> Cli:
    return make_keyed_cli(tmp_path, sqlite_url(str(tmp_path)))


def revealed_secrets(cli: Cli, **env: str) -> dict[str, Any]:
    found = {}
    for export_id in ("FIRST", "SECOND"):
        result = cli.run("integrations", "secret", export_id, "--json", **env)
        found[export_id] = result.json()
    return found


def key_file_text(cli: Cli) -> str:
    return (cli.data_dir / "master.key").read_text().strip()


def test_every_secret_reveals_the_same_after_rotation(keyed_cli: Cli) -> None:
    before = revealed_secrets(keyed_cli)
    new_key = random_key()

    keyed_cli.ok("rotate-master-key", "--new-key-stdin", stdin=new_key + "\n")

    assert key_file_text(keyed_cli) == new_key
    assert revealed_secrets(keyed_cli) == before
    assert before["SECOND"]["previous_secret"] is not None


def test_new_key_file_is_readable_by_its_owner_only(keyed_cli: Cli) -> None:
    keyed_cli.ok("rotate-master-key", "--generate")

    assert (keyed_cli.data_dir / "master.key").stat().st_mode & 0o777 == 0o600
    assert not (keyed_cli.data_dir / "master.key.new").exists()


def test_old_key_is_refused_after_rotation(keyed_cli: Cli) -> None:
    old_key = key_file_text(keyed_cli)

    keyed_cli.ok("rotate-master-key", "--generate")
    result = keyed_cli.run("integrations", "list", REFLEXBLUE_MASTER_KEY=old_key)

    assert result.returncode == 1
    assert "master key does not match" in result.error_line


def test_generated_key_on_the_key_file_is_not_printed(keyed_cli: Cli) -> None:
    old_key = key_file_text(keyed_cli)

    result = keyed_cli.ok("rotate-master-key", "--generate")

    new_key = key_file_text(keyed_cli)
    assert new_key != old_key
    assert new_key not in result.stdout + result.stderr
    assert "Restart every running `reflexblue serve`" in result.stderr


def test_generated_key_from_configuration_is_printed_once_and_opens_the_secrets(
    tmp_path: Path,
) -> None:
    old_key = random_key()
    cli = Cli(tmp_path / "data", sqlite_url(str(tmp_path)))
    created = cli.run(
        "integrations", "create", "--name", "Env", "--external-id", "e", "--export-id", "ENV",
        REFLEXBLUE_MASTER_KEY=old_key,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    before = cli.run("integrations", "secret", "ENV", REFLEXBLUE_MASTER_KEY=old_key).stdout

    result = cli.run("rotate-master-key", "--generate", REFLEXBLUE_MASTER_KEY=old_key)

    assert result.returncode == 0, result.stderr
    new_key = result.stdout.strip()
    assert result.stdout == new_key + "\n"
    assert "Set REFLEXBLUE_MASTER_KEY to the new key" in result.stderr
    assert not (cli.data_dir / "master.key").exists()
    after = cli.run("integrations", "secret", "ENV", REFLEXBLUE_MASTER_KEY=new_key).stdout
    assert after == before


def test_wrong_current_key_changes_nothing(keyed_cli: Cli) -> None:
    before = revealed_secrets(keyed_cli)
    key_before = key_file_text(keyed_cli)

    result = keyed_cli.run("rotate-master-key", "--generate", REFLEXBLUE_MASTER_KEY=random_key())

    assert result.returncode == 1
    assert "master key does not match" in result.error_line
    assert result.stdout == ""
    assert key_file_text(keyed_cli) == key_before
    assert not (keyed_cli.data_dir / "master.key.new").exists()
    assert revealed_secrets(keyed_cli) == before


BAD_NEW_KEYS = {
    "not-base64": ("this is not base64!", "not valid base64"),
    "too-short": (random_key(16), "base64 of 32 bytes, not 16"),
    "too-long": (random_key(48), "base64 of 32 bytes, not 48"),
    "empty": ("", "standard input is empty"),
    "only-a-newline": ("\n", "standard input is empty"),
}


@pytest.mark.parametrize(("given", "complaint"), BAD_NEW_KEYS.values(), ids=BAD_NEW_KEYS.keys())
def test_bad_new_key_is_one_line_and_changes_nothing(
    sqlite_keyed_cli: Cli, given: str, complaint: str
) -> None:
    before = revealed_secrets(sqlite_keyed_cli)
    key_before = key_file_text(sqlite_keyed_cli)

    result = sqlite_keyed_cli.run("rotate-master-key", "--new-key-stdin", stdin=given)

    assert result.returncode == 1
    assert complaint in result.error_line
    if given.strip():
        assert given.strip() not in result.stderr
    assert key_file_text(sqlite_keyed_cli) == key_before
    assert revealed_secrets(sqlite_keyed_cli) == before


@pytest.mark.parametrize(
    "options", [(), ("--generate", "--new-key-stdin")], ids=["neither", "both"]
)
def test_exactly_one_source_of_the_new_key_is_required(
    cli_without_database: Cli, options: tuple[str, ...]
) -> None:
    result = cli_without_database.run("rotate-master-key", *options, stdin=random_key())

    assert result.returncode == 1
    assert result.error_line == "error: give exactly one of --new-key-stdin and --generate"
    assert not cli_without_database.data_dir.exists()


def test_the_current_key_as_the_new_one_is_refused(sqlite_keyed_cli: Cli) -> None:
    current = key_file_text(sqlite_keyed_cli)

    result = sqlite_keyed_cli.run("rotate-master-key", "--new-key-stdin", stdin=current)

    assert result.returncode == 1
    assert "the new master key is the current one" in result.error_line


def database_bytes(cli: Cli) -> bytes:
    database = Path(cli.database_url.removeprefix("sqlite:///"))
    files = [database, Path(f"{database}-wal")]
    return b"".join(path.read_bytes() for path in files if path.exists())


def sealed_values(cli: Cli) -> list[bytes]:
    database = cli.database_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(database)) as connection:
        rows = connection.execute(
            "SELECT secret_sealed, previous_secret_sealed FROM integrations"
        ).fetchall()
    return [value for row in rows for value in row if value is not None]


def test_database_file_holds_no_plaintext_and_no_old_ciphertext_after_rotation(
    sqlite_keyed_cli: Cli,
) -> None:
    revealed = revealed_secrets(sqlite_keyed_cli)
    plaintexts = [
        value
        for read in revealed.values()
        for value in (read["secret"], read["previous_secret"])
        if value is not None
    ]
    old_sealed = sealed_values(sqlite_keyed_cli)

    sqlite_keyed_cli.ok("rotate-master-key", "--generate")

    stored = database_bytes(sqlite_keyed_cli)
    assert len(plaintexts) == 3
    for plaintext in plaintexts:
        assert plaintext.encode() not in stored
        assert base64.b64decode(plaintext.removeprefix("whsec_")) not in stored
    assert len(old_sealed) == 3
    for sealed in old_sealed:
        assert sealed not in stored


def test_rotation_keeps_each_integration_version(keyed_cli: Cli) -> None:
    before = keyed_cli.ok("integrations", "show", "SECOND", "--json").json()["version"]

    keyed_cli.ok("rotate-master-key", "--generate")

    assert keyed_cli.ok("integrations", "show", "SECOND", "--json").json()["version"] == before


async def test_rotation_is_in_the_audit_log_without_key_material(keyed_cli: Cli) -> None:
    new_key = random_key()

    keyed_cli.ok("rotate-master-key", "--new-key-stdin", stdin=new_key)

    async with runtime_of(keyed_cli) as runtime, transaction(runtime.sessions) as session:
        events, _ = await list_events(session, limit=1)
    assert events[0].action == "master_key.rotated"
    assert events[0].actor == "cli:operator"
    assert events[0].changes == {"secrets_resealed": {"to": 3}}
    assert new_key not in repr(events[0].changes)


def test_start_after_an_interrupted_rotation_says_which_file_to_move(keyed_cli: Cli) -> None:
    key_file = keyed_cli.data_dir / "master.key"
    pending = keyed_cli.data_dir / "master.key.new"
    old_key = key_file.read_text()
    keyed_cli.ok("rotate-master-key", "--generate")
    # What a crash after the commit and before the rename leaves behind.
    os.replace(key_file, pending)
    key_file.write_text(old_key)

    result = keyed_cli.run("integrations", "list")

    assert result.returncode == 1
    assert result.error_line == (
        f"error: master key: a master key rotation stopped after re-sealing the database but "
        f"before replacing the key file: move {pending} over {key_file} and start again"
    )
    os.replace(pending, key_file)
    keyed_cli.ok("integrations", "list")


def test_stale_pending_key_of_an_uncommitted_rotation_is_replaced(keyed_cli: Cli) -> None:
    before = revealed_secrets(keyed_cli)
    pending = keyed_cli.data_dir / "master.key.new"
    pending.write_text(random_key() + "\n")

    keyed_cli.ok("rotate-master-key", "--generate")

    assert not pending.exists()
    assert revealed_secrets(keyed_cli) == before
