"""Fixtures for the delivery engine: a runtime that may reach loopback receivers, and helpers
to set up an integration with a webhook and to run a worker in the background."""

import asyncio
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.core.settings import Settings
from reflexblue.integrations.schemas import IntegrationCreate
from reflexblue.integrations.service import create_integration
from reflexblue.webhooks.schemas import WebhookCreate
from reflexblue.webhooks.service import create_webhook
from reflexblue.webhooks.worker import DeliveryWorker, WorkerConfig
from tests.support.server import STARTUP_TIMEOUT_SECONDS, base_environment, cli_command
from tests.support.settings import loopback_delivery_settings

WAIT_LIMIT_SECONDS = 60.0
# What a worker process logs once its signal handlers are in place and it starts delivering.
WORKER_STARTED_LINE = "delivery worker started"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return loopback_delivery_settings(database_url, tmp_path)


@dataclass(frozen=True)
class Subscriber:
    integration_id: str
    webhook_id: str


async def subscribe(
    runtime: Runtime, url: str, event_types: list[str] | None = None, export_id: str = "SHOP"
) -> Subscriber:
    async with transaction(runtime.sessions) as session:
        integration = await create_integration(
            session,
            runtime.box,
            IntegrationCreate(name=export_id, external_id="x", export_id=export_id),
            CLI_ACTOR,
        )
        webhook = await create_webhook(
            session,
            integration.id,
            WebhookCreate(url=url, event_types=event_types or ["*"]),
            CLI_ACTOR,
            max_per_integration=50,
        )
        return Subscriber(integration.id, webhook.id)


@asynccontextmanager
async def running_worker(
    runtime: Runtime, config: WorkerConfig | None = None
) -> AsyncIterator[DeliveryWorker]:
    worker = DeliveryWorker(runtime, config or WorkerConfig(poll_interval_seconds=0.2))
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=WAIT_LIMIT_SECONDS)


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, limit_seconds: float = WAIT_LIMIT_SECONDS
) -> None:
    """Wait until a condition on the database holds; fail with `what` if it never does."""
    deadline = asyncio.get_running_loop().time() + limit_seconds
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.02)


def worker_environment(settings: Settings) -> dict[str, str]:
    return base_environment(
        {
            "REFLEXBLUE_DATA_DIR": str(settings.data_dir),
            "REFLEXBLUE_DATABASE_URL": settings.database_url or "",
            "REFLEXBLUE_ALLOW_PRIVATE_TARGETS": "true",
            "REFLEXBLUE_RETRY_SCHEDULE": settings.retry_schedule,
            "REFLEXBLUE_DELIVERY_TIMEOUT": str(settings.delivery_timeout),
        }
    )


@contextmanager
def worker_process(
    settings: Settings, *, wait_until_started: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """`reflexblue worker` as a process of its own; with `wait_until_started`, yielded once it
    has started delivering (and so answers SIGTERM by winding down rather than dying)."""
    with tempfile.NamedTemporaryFile(prefix="reflexblue-worker-", suffix=".log") as log:
        process = subprocess.Popen(
            cli_command("worker"),
            env=worker_environment(settings),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            if wait_until_started:
                _wait_for_line(process, Path(log.name), WORKER_STARTED_LINE)
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()


def _wait_for_line(process: subprocess.Popen[bytes], log: Path, line: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while line not in log.read_text(errors="replace"):
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited early:\n{log.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
