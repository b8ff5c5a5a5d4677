"""`--help` works for the program and for each of its commands, without a database."""

import pytest
from typer.main import get_command

from reflexblue.cli import app
from tests.cli.conftest import Cli, assert_untouched


def command_paths() -> list[list[str]]:
    """Every group and command of the program, as the words that call it."""
    found: list[list[str]] = [[]]
    pending: list[tuple[list[str], object]] = [([], get_command(app))]
    while pending:
        path, command = pending.pop()
        for name, child in sorted(getattr(command, "commands", {}).items()):
            found.append([*path, name])
            pending.append(([*path, name], child))
    return found


@pytest.mark.parametrize("path", command_paths(), ids=lambda path: " ".join(path) or "reflexblue")
def test_help_describes_the_command(cli_without_database: Cli, path: list[str]) -> None:
    result = cli_without_database.run(*path, "--help")

    assert result.returncode == 0, result.stderr
    assert "Usage: reflexblue" in result.stdout
    assert_untouched(cli_without_database)


def test_without_a_command_the_help_is_shown(cli_without_database: Cli) -> None:
    result = cli_without_database.run("integrations")

    assert result.returncode != 0
    assert "Commands" in result.stdout + result.stderr
    assert "error:" not in result.stderr


def test_unknown_command_is_one_line(cli_without_database: Cli) -> None:
    result = cli_without_database.run("integrations", "explode")

    assert result.returncode != 0
    assert "explode" in result.error_line
