"""A throwaway PostgreSQL server for the tests, started with initdb and pg_ctl."""

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POSTGRES_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
_SYSTEM_USER = "postgres"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresServer:
    """A private server on a loopback port, which a test may stop and start again.

    initdb refuses to run as root, so as root the server runs as the `postgres` user in a
    folder that user owns.
    """

    def __init__(self) -> None:
        self._as_root = os.geteuid() == 0
        self.folder = Path(tempfile.mkdtemp(prefix="reflexblue-pg-"))
        self._data_dir = self.folder / "data"
        self.port = free_port()
        if self._as_root:
            shutil.chown(self.folder, user=_SYSTEM_USER)
        self.user = _SYSTEM_USER if self._as_root else os.environ.get("USER", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self._data_dir),
            "-U",
            self.user,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self._data_dir),
            "-w",
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options,
            "start",
        )

    def stop(self) -> None:
        if (self._data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self._data_dir), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, program: str, *arguments: str) -> None:
        command = [str(POSTGRES_BIN_DIR / program), *arguments]
        if self._as_root:
            command = ["runuser", "-u", _SYSTEM_USER, "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd="/")


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Start a private server; yield its URL; remove it afterwards."""
    with running_postgres() as server:
        yield server.url


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()
