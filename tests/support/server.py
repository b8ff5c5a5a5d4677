"""Real `reflexblue` processes for tests: the command line, and a `serve` on a free port."""

import os
import shutil
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
HEALTH_POLL_INTERVAL_SECONDS = 0.05
# Child processes keep their compiled bytecode here rather than beside the sources; with
# PYTHONDONTWRITEBYTECODE set they would otherwise compile every module on every start.
BYTECODE_FOLDER = Path(tempfile.gettempdir()) / "reflexblue-test-bytecode"


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
    kept = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("REFLEXBLUE_") and key != "PYTHONDONTWRITEBYTECODE"
    }
    return {
        **kept,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPYCACHEPREFIX": str(BYTECODE_FOLDER),
        **env,
    }


@contextmanager
def running_server(
    env: dict[str, str], port: int | None = None, arguments: tuple[str, ...] = ()
) -> Iterator[RunningServer]:
    """Start `reflexblue serve`, wait until /healthz answers, stop it and wait for it on exit.

    The process runs in a temporary working folder of its own, so that neither a `.env` file
    nor a default `./data` folder of the checkout takes part. Set REFLEXBLUE_DATA_DIR in `env`
    to keep its data somewhere known.
    """
    port = port or free_port()
    folder = Path(tempfile.mkdtemp(prefix="reflexblue-serve-"))
    output_path = folder / "output.log"
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            cli_command("serve", "--port", str(port), *arguments),
            env=base_environment(env),
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    server = RunningServer(f"http://127.0.0.1:{port}", process, output_path)
    try:
        _wait_until_healthy(server)
        yield server
    finally:
        stop(process)
        shutil.rmtree(folder, ignore_errors=True)


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then the exit code; a process that does not stop in time is killed."""
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout=SHUTDOWN_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def _wait_until_healthy(server: RunningServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    # One client for every probe: making a client builds a TLS context, some 35 ms of CPU,
    # which twenty probes a second would take from the very process they wait for.
    with httpx.Client(timeout=1.0) as probe:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"reflexblue serve exited early:\n{server.output}")
            try:
                if probe.get(f"{server.url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(HEALTH_POLL_INTERVAL_SECONDS)
    raise RuntimeError(f"reflexblue serve did not become healthy:\n{server.output}")
