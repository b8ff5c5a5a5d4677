"""Starting, watching and stopping the processes a benchmark measures."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from bench.load import LoadResult, LoadSpec
from bench.open_loop import OpenLoopResult, OpenLoopSpec

READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
POLL_INTERVAL_SECONDS = 0.05
# Where the child processes keep compiled bytecode, so none recompiles on every start.
BYTECODE_FOLDER = Path(tempfile.gettempdir()) / "reflexblue-bench-bytecode"
REPOSITORY = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    """A benchmark could not be run as set up (a process died, a server never answered)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def environment(extra: dict[str, str]) -> dict[str, str]:
    """This environment without REFLEXBLUE_ settings, plus the given ones."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("REFLEXBLUE_")}
    return {**kept, "PYTHONPYCACHEPREFIX": str(BYTECODE_FOLDER), **extra}


@contextmanager
def running(
    arguments: list[str], env: dict[str, str], *, ready_url: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A Python module run as its own process (`python -m ...`), its output kept in a file for
    the error message should it die; stopped with SIGTERM (then SIGKILL) on exit."""
    with tempfile.NamedTemporaryFile(prefix="reflexblue-bench-", suffix=".log") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", *arguments],
            env=environment(env),
            cwd=REPOSITORY,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            if ready_url is not None:
                _wait_until_answering(process, " ".join(arguments), ready_url, Path(log.name))
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def require_alive(process: subprocess.Popen[bytes], what: str) -> None:
    if process.poll() is not None:
        raise BenchError(f"{what} exited early with code {process.returncode}")


def _wait_until_answering(process: subprocess.Popen[bytes], what: str, url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text(errors="replace")[-4000:]
            raise BenchError(f"{what} exited early:\n{output}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(POLL_INTERVAL_SECONDS)
    raise BenchError(f"nothing answered at {url} within {READY_TIMEOUT_SECONDS:.0f} s")


def measure_load(spec: LoadSpec) -> LoadResult:
    """Run the load generator in a process of its own and return what it measured."""
    return LoadResult(**_run_generator("bench.load", asdict(spec)))


def measure_open_loop(spec: OpenLoopSpec) -> OpenLoopResult:
    """Run the open-loop generator in a process of its own and return what it measured."""
    return OpenLoopResult(**_run_generator("bench.open_loop", asdict(spec)))


def _run_generator(module: str, spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", module],
        input=json.dumps(spec).encode(),
        env=environment({}),
        cwd=REPOSITORY,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"the load generator failed:\n{done.stderr.decode(errors='replace')}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def resident_bytes(pid: int) -> int:
    """The process's resident memory now (VmRSS)."""
    return _status_field(pid, "VmRSS:")


def peak_rss_bytes(pid: int) -> int:
    """The process's high-water mark of resident memory (VmHWM), while it still runs."""
    return _status_field(pid, "VmHWM:")


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) the process has used so far, while it still runs."""
    # The fields after the command name, which may itself hold spaces and parentheses.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    user_ticks, system_ticks = int(fields[11]), int(fields[12])
    return (user_ticks + system_ticks) / os.sysconf("SC_CLK_TCK")


def _status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name):
            return int(line.split()[1]) * 1024
    raise BenchError(f"/proc/{pid}/status has no {name} line")
