"""`reflexblue worker --metrics-port`: a real worker process scraped over HTTP, and the port's
bad values refused."""

import asyncio
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.core.settings import Settings
from reflexblue.webhooks.publishing import publish_event
from tests.delivery.conftest import subscribe, worker_environment
from tests.monitoring.conftest import PROMETHEUS_TEXT, Scrape, parse_scrape
from tests.support.postgres import free_port
from tests.support.receiver import running_receiver
from tests.support.server import base_environment, cli_command, stop

STARTUP_LIMIT_SECONDS = 60.0
POLL_INTERVAL_SECONDS = 0.05
COMMAND_LIMIT_SECONDS = 120


@contextmanager
def worker_with_metrics(
    settings: Settings, arguments: tuple[str, ...] = (), **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        cli_command("worker", *arguments),
        env={**worker_environment(settings), **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        stop(process)


async def _wait_until_answering(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = asyncio.get_running_loop().time() + STARTUP_LIMIT_SECONDS
    async with httpx.AsyncClient() as http:
        while asyncio.get_running_loop().time() < deadline:
            assert process.poll() is None, "the worker exited"
            try:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(POLL_INTERVAL_SECONDS)
    raise AssertionError(f"{url} never answered")


async def _scrape_until_delivered(url: str) -> tuple[Scrape, str]:
    """The worker counts an attempt once its outcome is written, just after the receiver saw
    it: scrape until the count shows."""
    deadline = asyncio.get_running_loop().time() + STARTUP_LIMIT_SECONDS
    async with httpx.AsyncClient() as http:
        while asyncio.get_running_loop().time() < deadline:
            response = await http.get(f"{url}/metrics")
            scraped = parse_scrape(response.text)
            if scraped.value("reflexblue_deliveries_total", outcome="succeeded") >= 1:
                return scraped, response.headers["content-type"]
            await asyncio.sleep(POLL_INTERVAL_SECONDS)
    raise AssertionError("the worker's metrics never showed the delivery")


async def test_worker_serves_its_delivery_counts_on_the_metrics_port(runtime: Runtime) -> None:
    port = free_port()
    async with running_receiver() as receiver:
        await subscribe(runtime, receiver.url)
        async with transaction(runtime.sessions) as session:
            await publish_event(session, "webhook.test", {"to": "the worker"})
        with worker_with_metrics(runtime.settings, ("--metrics-port", str(port))) as worker:
            await _wait_until_answering(f"http://127.0.0.1:{port}", worker)
            await receiver.arrived.wait()
            scraped, content_type = await _scrape_until_delivered(f"http://127.0.0.1:{port}")

    assert content_type == PROMETHEUS_TEXT
    assert scraped.value("reflexblue_deliveries_total", outcome="succeeded") == 1
    assert scraped.value("reflexblue_delivery_attempts_total", result="2xx") == 1
    assert scraped.value("reflexblue_database_up") == 1
    assert scraped.value("reflexblue_queue_depth") == 0
    assert scraped.value("reflexblue_webhooks", state="healthy") == 1


async def test_worker_takes_its_metrics_port_from_the_environment(runtime: Runtime) -> None:
    port = free_port()
    with worker_with_metrics(runtime.settings, REFLEXBLUE_WORKER_METRICS_PORT=str(port)) as worker:
        await _wait_until_answering(f"http://127.0.0.1:{port}", worker)
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/metrics")

    assert response.status_code == 200
    assert parse_scrape(response.text).value("reflexblue_database_up") == 1


def _run_worker(tmp_path: Path, *arguments: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command("worker", *arguments),
        env=base_environment({"REFLEXBLUE_DATA_DIR": str(tmp_path / "data"), **env}),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_LIMIT_SECONDS,
        check=False,
    )


@pytest.mark.parametrize("port", ["0", "70000", "-1", "ninety"])
def test_a_bad_metrics_port_option_is_refused_in_one_line(tmp_path: Path, port: str) -> None:
    done = _run_worker(tmp_path, "--metrics-port", port)

    assert done.returncode == 2
    assert done.stderr.startswith("error: ")
    assert "--metrics-port" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("port", ["0", "70000", "ninety", "80.5"])
def test_a_bad_metrics_port_setting_is_refused_in_one_line(tmp_path: Path, port: str) -> None:
    done = _run_worker(tmp_path, REFLEXBLUE_WORKER_METRICS_PORT=port)

    assert done.returncode == 1
    assert done.stderr.startswith("error: configuration: REFLEXBLUE_WORKER_METRICS_PORT: ")
    assert len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "data").exists()


def test_a_metrics_port_in_use_is_refused_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = _run_worker(tmp_path, "--metrics-port", port)

    # The database is opened first, so its start-up lines come before the error.
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"error: configuration: cannot serve metrics on 127.0.0.1:{port}: Address already in use"
    )


def test_a_metrics_host_that_does_not_resolve_is_refused_in_one_line(tmp_path: Path) -> None:
    done = _run_worker(tmp_path, "--metrics-port", "9", "--metrics-host", "no-such-host.invalid")

    assert done.returncode == 1
    last_line = done.stderr.splitlines()[-1]
    assert last_line.startswith(
        "error: configuration: cannot serve metrics on no-such-host.invalid"
    )
    assert "Unknown error" not in last_line
