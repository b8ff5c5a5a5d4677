"""Configuration the operator got wrong: one clear line and a non-zero exit, never a traceback,
and nothing of the database or its key touched."""

import base64
import secrets
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, assert_untouched
from tests.support.postgres import free_port


def random_master_key(length: int = 32) -> str:
    return base64.b64encode(secrets.token_bytes(length)).decode()


BAD_SETTINGS = {
    "retry-schedule-words": ("REFLEXBLUE_RETRY_SCHEDULE", "soon,later"),
    "retry-schedule-negative": ("REFLEXBLUE_RETRY_SCHEDULE", "5,-1"),
    "retry-schedule-empty": ("REFLEXBLUE_RETRY_SCHEDULE", ","),
    "delivery-timeout-words": ("REFLEXBLUE_DELIVERY_TIMEOUT", "fifteen"),
    "delivery-timeout-zero": ("REFLEXBLUE_DELIVERY_TIMEOUT", "0"),
    "database-url-scheme": ("REFLEXBLUE_DATABASE_URL", "mysql://db.example/reflexblue"),
    "database-url-port": ("REFLEXBLUE_DATABASE_URL", "postgresql://u:hunter2@db:port/x"),
    "log-format": ("REFLEXBLUE_LOG_FORMAT", "xml"),
    "operator-webhook-url-scheme": ("REFLEXBLUE_OPERATOR_WEBHOOK_URL", "ftp://ops.example/h"),
    "operator-webhook-url-without-secret": (
        "REFLEXBLUE_OPERATOR_WEBHOOK_URL",
        "https://ops.example/hook",
    ),
    "operator-webhook-secret-prefix": ("REFLEXBLUE_OPERATOR_WEBHOOK_SECRET", "c2VjcmV0"),
}


@pytest.mark.parametrize(("variable", "value"), BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_bad_setting_is_one_line_naming_the_variable(
    cli_without_database: Cli, variable: str, value: str
) -> None:
    result = cli_without_database.run("integrations", "list", **{variable: value})

    assert result.returncode != 0
    assert variable in result.error_line
    assert "Traceback" not in result.stderr
    assert_untouched(cli_without_database)


def test_database_url_password_is_not_repeated_in_the_error(cli_without_database: Cli) -> None:
    result = cli_without_database.run(
        "integrations", "list", REFLEXBLUE_DATABASE_URL="postgresql://u:hunter2@db:port/x"
    )

    assert "hunter2" not in result.stderr


def test_unreachable_postgresql_is_one_line(cli_without_database: Cli) -> None:
    url = f"postgresql://reflexblue:hunter2@127.0.0.1:{free_port()}/reflexblue"

    result = cli_without_database.run("integrations", "list", REFLEXBLUE_DATABASE_URL=url)

    assert result.returncode != 0
    assert "cannot be reached" in result.error_line
    assert "hunter2" not in result.stderr


def test_sqlite_file_in_a_missing_folder_is_one_line(
    cli_without_database: Cli, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/missing/folder/reflexblue.sqlite3"

    result = cli_without_database.run("integrations", "list", REFLEXBLUE_DATABASE_URL=url)

    assert result.returncode != 0
    assert result.error_line == (
        f"error: configuration: the SQLite database's folder {tmp_path}/missing/folder does "
        "not exist; create it or point REFLEXBLUE_DATABASE_URL elsewhere"
    )


@pytest.mark.parametrize(
    "master_key",
    ["not base64!", random_master_key(16)],
    ids=["not-base64", "too-short"],
)
def test_malformed_master_key_is_one_line(cli_without_database: Cli, master_key: str) -> None:
    result = cli_without_database.run("integrations", "list", REFLEXBLUE_MASTER_KEY=master_key)

    assert result.returncode != 0
    assert "REFLEXBLUE_MASTER_KEY" in result.error_line
    assert master_key not in result.stderr


def test_wrong_master_key_for_an_existing_database_is_refused(cli: Cli) -> None:
    cli.ok(
        "integrations", "create", "--name", "Keyed", "--external-id", "k", "--export-id", "KEYED"
    )
    secret = cli.ok("integrations", "secret", "KEYED").stdout

    result = cli.run("integrations", "secret", "KEYED", REFLEXBLUE_MASTER_KEY=random_master_key())

    assert result.returncode != 0
    assert "master key does not match" in result.error_line
    assert result.stdout == ""
    assert cli.ok("integrations", "secret", "KEYED").stdout == secret


def test_missing_key_file_for_an_existing_database_is_refused(cli: Cli, tmp_path: Path) -> None:
    elsewhere = Cli(tmp_path / "empty-data", cli.database_url)

    result = elsewhere.run("integrations", "list")

    assert result.returncode != 0
    assert "provide the original key" in result.error_line
    assert not (elsewhere.data_dir / "master.key").exists()
