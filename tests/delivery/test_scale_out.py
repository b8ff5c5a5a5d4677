"""Scale-out: two API nodes and three workers on one PostgreSQL, started together on an empty
database, deliver 20,000 events exactly once and share the work."""

import asyncio
import base64
import json
import secrets
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime, start_runtime
from reflexblue.core.settings import Settings
from reflexblue.webhooks.models import Delivery
from tests.delivery.conftest import eventually, subscribe
from tests.support.databases import PostgresDatabases
from tests.support.receiver import running_receiver
from tests.support.server import RunningServer, base_environment, cli_command, running_server

EVENTS = 20_000
BATCH = 1_000
INTEGRATIONS = ("NODE_A", "NODE_B", "NODE_C", "NODE_D")
WORKERS = 3
API_NODES = 2
# Generous: the whole suite shares this machine's cores with these seven processes.
DELIVERY_LIMIT = 600.0
ATTEMPT_LINE = "delivery attempt succeeded"


@pytest.fixture
def cluster_environment(postgres_databases: PostgresDatabases, tmp_path: Path) -> dict[str, str]:
    """What every node of one deployment shares: an empty database and the master key."""
    return {
        "REFLEXBLUE_DATABASE_URL": postgres_databases.create_empty(),
        "REFLEXBLUE_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "REFLEXBLUE_ADMIN_PASSWORD": "scale-out admin password",
        "REFLEXBLUE_DATA_DIR": str(tmp_path / "data"),
        "REFLEXBLUE_ALLOW_PRIVATE_TARGETS": "true",
        "REFLEXBLUE_LOG_FORMAT": "json",
    }


@contextmanager
def _api_nodes(env: dict[str, str]) -> Iterator[list[RunningServer]]:
    """The API nodes, started at the same moment so that their migrations race."""
    with ExitStack() as stack, ThreadPoolExecutor(API_NODES) as pool:
        nodes = [running_server(env, arguments=("--no-worker",)) for _ in range(API_NODES)]
        yield list(pool.map(stack.enter_context, nodes))


@contextmanager
def _workers(env: dict[str, str], folder: Path) -> Iterator[list[Path]]:
    logs = [folder / f"worker-{number}.log" for number in range(WORKERS)]
    processes = []
    for log in logs:
        with log.open("wb") as output:
            processes.append(
                subprocess.Popen(
                    cli_command("worker"),
                    env=base_environment(env),
                    cwd=folder,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        yield logs
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _admin_token(env: dict[str, str]) -> str:
    created = subprocess.run(
        cli_command("tokens", "create", "admin", "--name", "load"),
        env=base_environment(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


async def _runtime(env: dict[str, str]) -> Runtime:
    return await start_runtime(
        Settings(
            _env_file=None,
            data_dir=Path(env["REFLEXBLUE_DATA_DIR"]),
            database_url=env["REFLEXBLUE_DATABASE_URL"],
            master_key=env["REFLEXBLUE_MASTER_KEY"],
            allow_private_targets=True,
        )
    )


async def _publish_through(nodes: list[RunningServer], token: str) -> list[str]:
    """Every event in batches, half through each API node, two batches at a time."""
    headers = {"Authorization": f"Bearer {token}"}

    async def batch(number: int) -> list[str]:
        node = nodes[number % len(nodes)]
        events = [
            {
                "type": "webhook.test",
                "data": {"n": number * BATCH + index},
                "integration": INTEGRATIONS[index % len(INTEGRATIONS)],
            }
            for index in range(BATCH)
        ]
        async with httpx.AsyncClient(base_url=node.url, timeout=120) as client:
            answer = await client.post(
                "/api/management/events/batch", json={"events": events}, headers=headers
            )
        assert answer.status_code == 202, answer.text
        return [event["id"] for event in answer.json()["events"]]

    published: list[str] = []
    for first in range(0, EVENTS // BATCH, API_NODES):
        for ids in await asyncio.gather(*(batch(first + n) for n in range(API_NODES))):
            published.extend(ids)
    return published


async def _succeeded(runtime: Runtime) -> int:
    async with transaction(runtime.sessions) as session:
        query = select(func.count()).select_from(Delivery).where(Delivery.status == "succeeded")
        return int(await session.scalar(query) or 0)


def _attempts_logged(log: Path) -> int:
    lines = log.read_text(errors="replace").splitlines()
    return sum(
        1 for line in lines if line.startswith("{") and json.loads(line)["message"] == ATTEMPT_LINE
    )


@pytest.mark.postgresql_only
@pytest.mark.timeout(DELIVERY_LIMIT + 120)
async def test_two_api_nodes_and_three_workers_deliver_each_event_once_and_share_the_work(
    backend: str, cluster_environment: dict[str, str], tmp_path: Path
) -> None:
    env = cluster_environment
    with _api_nodes(env) as nodes:
        runtime = await _runtime(env)
        try:
            async with running_receiver() as receiver:
                for export_id in INTEGRATIONS:
                    await subscribe(runtime, f"{receiver.url}/{export_id}", export_id=export_id)
                with _workers(env, tmp_path) as worker_logs:
                    published = await _publish_through(nodes, _admin_token(env))

                    async def all_succeeded() -> bool:
                        return await _succeeded(runtime) == EVENTS

                    await eventually(all_succeeded, "every delivery succeeded", DELIVERY_LIMIT)
                shares = [_attempts_logged(log) for log in worker_logs]
        finally:
            await runtime.close()

    arrivals = Counter(request.headers["webhook-id"] for request in receiver.received)
    assert len(published) == EVENTS
    assert arrivals == Counter({event_id: 1 for event_id in published})
    assert sum(shares) == EVENTS
    # Every worker took a real part, not a token one.
    assert min(shares) >= EVENTS // 20, shares
