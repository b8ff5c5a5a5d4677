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


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Start a private server on a free loopback port; yield its URL; remove it afterwards.

    initdb refuses to run as root, so as root the server runs as the `postgres` user in a
    folder that user owns.
    """
    as_root = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="reflexblue-pg-"))
    data_dir = folder / "data"
    port = free_port()
    if as_root:
        shutil.chown(folder, user=_SYSTEM_USER)
    user = _SYSTEM_USER if as_root else os.environ.get("USER", "postgres")
    try:
        _run(
            as_root,
            "initdb",
            "-D",
            str(data_dir),
            "-U",
            user,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        _run(
            as_root,
            "pg_ctl",
            "-D",
            str(data_dir),
            "-w",
            "-l",
            str(folder / "server.log"),
            "-o",
            f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c full_page_writes=off "
            "-c max_connections=200",
            "start",
        )
        yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
    finally:
        if (data_dir / "postmaster.pid").exists():
            _run(as_root, "pg_ctl", "-D", str(data_dir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def _run(as_root: bool, program: str, *arguments: str) -> None:
    command = [str(POSTGRES_BIN_DIR / program), *arguments]
    if as_root:
        command = ["runuser", "-u", _SYSTEM_USER, "--", *command]
    subprocess.run(command, check=True, capture_output=True, cwd="/")
