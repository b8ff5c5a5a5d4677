"""`serve` and `worker` killed with SIGKILL at random moments while events are published and
delivered, twenty times over, on PostgreSQL: no acknowledged event is lost, every one reaches
its receivers at least once, and nothing is left pending once the killed processes' leases ran
out.

The moments are drawn from a seeded generator; the seed is printed, and setting
REFLEXBLUE_TEST_FAULT_SEED to it plays the same sequence of kills again.
"""

import asyncio
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from reflexblue.accounts.models import Role
from reflexblue.core.database import transaction, utcnow
from reflexblue.core.runtime import Runtime
from reflexblue.core.settings import Settings
from reflexblue.webhooks.models import Delivery, DeliveryStatus
from tests.conftest import make_user
from tests.delivery.conftest import eventually, subscribe, worker_environment
from tests.faults.conftest import count_deliveries, secret_of, verified_deliveries
from tests.support.postgres import free_port
from tests.support.receiver import running_receiver
from tests.support.server import (
    STARTUP_TIMEOUT_SECONDS,
    cli_command,
    running_server,
    stop,
)

# Twenty SIGKILLs in all: ten of `serve` and ten of `worker`, each on a timeline of its own.
KILLS_OF_EACH = 10
# Short attempts make short leases (twice the timeout and 5 s): what a killed process held is
# due again 7 s after it claimed it.
DELIVERY_TIMEOUT_SECONDS = 1.0
SEED_VARIABLE = "REFLEXBLUE_TEST_FAULT_SEED"
RECEIVER_PATHS = ("/ALPHA", "/BRAVO")
REQUEST_TIMEOUT_SECONDS = 10.0
WORKER_STARTED_LINE = "delivery worker started"
EVENTS_PATH = "/api/management/events"
PROCESSES = ("serve", "worker")


def _seed() -> int:
    seed = int(os.environ.get(SEED_VARIABLE) or time.time_ns() % 1_000_000_007)
    print(f"fault seed: {SEED_VARIABLE}={seed}")
    return seed


@contextmanager
def _worker(settings: Settings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`reflexblue worker`, returned once it logged that it started delivering."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            cli_command("worker"),
            env=worker_environment(settings),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_line(process, log, WORKER_STARTED_LINE)
        yield process
    finally:
        stop(process)


def _wait_for_line(process: subprocess.Popen[bytes], log: Path, line: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while line not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


class Fleet:
    """One `serve` with its own worker and one `worker`, each killed and started again."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self._settings = settings
        self._folder = folder
        self._port = free_port()
        self._serve = ExitStack()
        self._worker = ExitStack()
        self._serve_process: subprocess.Popen[bytes] | None = None
        self._worker_process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self, which: str) -> None:
        """Start `serve` or `worker`; return once it is ready for work."""
        if which == "serve":
            env = worker_environment(self._settings)
            server = self._serve.enter_context(running_server(env, port=self._port))
            self._serve_process = server.process
            return
        self.starts += 1
        log = self._folder / f"worker-{self.starts}.log"
        self._worker_process = self._worker.enter_context(_worker(self._settings, log))

    def kill(self, which: str) -> None:
        process, stack = (
            (self._serve_process, self._serve)
            if which == "serve"
            else (self._worker_process, self._worker)
        )
        assert process is not None
        assert process.poll() is None, f"{which} died by itself"
        process.send_signal(signal.SIGKILL)
        stack.close()

    def close(self) -> None:
        self._serve.close()
        self._worker.close()


@dataclass
class Publisher:
    """Publishes one event after another through `serve`; keeps what was acknowledged."""

    url: str
    headers: dict[str, str]
    serve_up: asyncio.Event = field(default_factory=asyncio.Event)
    acknowledged: dict[str, int] = field(default_factory=dict)  # event id → its deliveries
    unanswered: int = 0
    other_answers: list[int] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        # A new connection for each request: a kept-alive one may lead to a process now dead.
        async with httpx.AsyncClient(
            base_url=self.url,
            headers=self.headers,
            timeout=REQUEST_TIMEOUT_SECONDS,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as client:
            number = 0
            while not stop.is_set():
                await self.serve_up.wait()
                number += 1
                await self._publish(client, number)

    async def _publish(self, client: httpx.AsyncClient, number: int) -> None:
        try:
            answer = await client.post(
                EVENTS_PATH, json={"type": "webhook.test", "data": {"n": number}}
            )
        except httpx.TransportError:
            self.unanswered += 1
            return
        if answer.status_code == 202:
            self.acknowledged[answer.json()["id"]] = answer.json()["deliveries"]
        else:
            self.other_answers.append(answer.status_code)


async def _claimed_now(runtime: Runtime) -> int:
    """Deliveries some process holds a live lease on."""
    async with transaction(runtime.sessions) as session:
        query = (
            select(func.count())
            .select_from(Delivery)
            .where(
                Delivery.status == DeliveryStatus.PENDING.value, Delivery.locked_until > utcnow()
            )
        )
        return int(await session.scalar(query) or 0)


async def _deliveries_by_event(runtime: Runtime) -> dict[str, int]:
    async with transaction(runtime.sessions) as session:
        rows = await session.execute(
            select(Delivery.event_id, func.count()).group_by(Delivery.event_id)
        )
        return {event_id: int(count) for event_id, count in rows}


async def _keep_killing(
    which: str, runtime: Runtime, fleet: Fleet, publisher: Publisher, rng: random.Random
) -> list[int]:
    """Kill one of the processes at a random moment of its work and start it again, over and
    over; for each kill, how many deliveries were under a live lease just before it."""
    claimed = []
    for _ in range(KILLS_OF_EACH):
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        claimed.append(await _claimed_now(runtime))
        if which == "serve":
            publisher.serve_up.clear()
        fleet.kill(which)
        await asyncio.to_thread(fleet.start, which)
        if which == "serve":
            publisher.serve_up.set()
    return claimed


@pytest.mark.postgresql_only
async def test_events_survive_twenty_sigkills_of_serve_and_worker(
    runtime: Runtime, tmp_path: Path
) -> None:
    seed = _seed()
    settings = runtime.settings.model_copy(update={"delivery_timeout": DELIVERY_TIMEOUT_SECONDS})
    admin = await make_user(runtime, "alice", Role.ADMIN)
    fleet = Fleet(settings, tmp_path)
    publisher = Publisher(fleet.url, admin.headers)
    stop_publishing = asyncio.Event()
    async with running_receiver() as receiver:
        secrets = {}
        for path in RECEIVER_PATHS:
            subscriber = await subscribe(runtime, f"{receiver.url}{path}", export_id=path[1:])
            secrets[path] = await secret_of(runtime, subscriber.integration_id)
        publishing = asyncio.create_task(publisher.run(stop_publishing))
        try:
            await asyncio.gather(*(asyncio.to_thread(fleet.start, which) for which in PROCESSES))
            publisher.serve_up.set()
            # Sometimes both are down at once.
            claimed_at_kills = await asyncio.gather(
                *(
                    _keep_killing(which, runtime, fleet, publisher, random.Random(f"{seed}{which}"))
                    for which in PROCESSES
                )
            )
            stop_publishing.set()
            await publishing

            async def nothing_pending() -> bool:
                return await count_deliveries(runtime, DeliveryStatus.PENDING.value) == 0

            await eventually(nothing_pending, "no delivery is pending any more")
        finally:
            stop_publishing.set()
            publisher.serve_up.set()
            await asyncio.gather(publishing, return_exceptions=True)
            await asyncio.to_thread(fleet.close)
        deliveries = await _deliveries_by_event(runtime)
        total = await count_deliveries(runtime)
        succeeded = await count_deliveries(runtime, DeliveryStatus.SUCCEEDED.value)

    acknowledged = publisher.acknowledged
    received = verified_deliveries(receiver, secrets)
    assert publisher.other_answers == []
    assert len(acknowledged) > KILLS_OF_EACH
    assert all(count == len(RECEIVER_PATHS) for count in acknowledged.values())
    assert {event_id: deliveries.get(event_id) for event_id in acknowledged} == acknowledged
    assert succeeded == total
    expected = {(path, event_id) for event_id in acknowledged for path in RECEIVER_PATHS}
    assert expected <= received
    # Kills of both struck while deliveries were claimed, so leases had to bring them back.
    assert all(any(claimed) for claimed in claimed_at_kills), claimed_at_kills
