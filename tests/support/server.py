"""A real `reflexblue serve` process on a free port, for tests that need one."""

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.postgres import free_port

STARTUP_TIMEOUT_SECONDS = 60.0
SHUTDOWN_TIMEOUT_SECONDS = 15.0


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]
    output_path: Path

    @property
    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.output_path.read_text(errors="replace")


def cli_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "reflexblue", *arguments]


def base_environment(env: dict[str, str]) -> dict[str, str]:
    """The current environment without any REFLEXBLUE_ setting, plus the given ones."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("REFLEXBLUE_")}
    return {**kept, "PYTHONUNBUFFERED": "1", **env}


@contextmanager
def running_server(env: dict[str, str], port: int | None = None) -> Iterator[RunningServer]:
    """Start `reflexblue serve`, wait until /healthz answers, stop it on exit."""
    port = port or free_port()
    with tempfile.NamedTemporaryFile(
        prefix="reflexblue-serve-", suffix=".log", delete=False
    ) as log:
        output_path = Path(log.name)
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            cli_command("serve", "--port", str(port)),
            env=base_environment(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = RunningServer(f"http://127.0.0.1:{port}", process, output_path)
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        _stop(process)
        output_path.unlink(missing_ok=True)


def _wait_until_healthy(server: RunningServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"reflexblue serve exited early:\n{server.output}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"reflexblue serve did not become healthy:\n{server.output}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=SHUTDOWN_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
