"""SQLite under two faults: `serve` killed with SIGKILL in the middle of its writes, and a disk
that fills up.

After each kill the database file opens and passes SQLite's integrity check, and every event
whose publication was acknowledged is in it and is delivered once `serve` runs again. A full
disk refuses the write with a clear 507 problem, changes nothing, keeps everything committed
before readable, and lets the worker resume once there is room again.

SQLite fills its disk here through `PRAGMA max_page_count`, which makes it fail with
SQLITE_FULL ("database or disk is full") exactly as a full file system does, without a mount.
"""

import asyncio
import logging
import os
import random
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from sqlalchemy import event, func, select

from reflexblue.accounts.models import Role
from reflexblue.app import create_app
from reflexblue.core.database import transaction, utcnow
from reflexblue.core.runtime import Runtime, start_runtime
from reflexblue.core.settings import Settings
from reflexblue.webhooks.models import Delivery, DeliveryStatus, Event
from reflexblue.webhooks.sender import RESPONSE_BODY_LIMIT_BYTES
from tests.conftest import ApiUser, make_user
from tests.delivery.conftest import eventually, running_worker, subscribe, worker_environment
from tests.faults.conftest import (
    count_deliveries,
    secret_of,
    verified_deliveries,
    wait_for_arrivals,
)
from tests.support.databases import SqliteTemplate
from tests.support.postgres import free_port
from tests.support.receiver import running_receiver
from tests.support.server import running_server
from tests.support.settings import loopback_delivery_settings

KILLS = 5
PUBLISHERS = 4
# Acknowledged publications to wait for after each start, so that writes are flowing when the
# kill comes at a random moment after them.
ACKNOWLEDGED_BEFORE_KILL = 20
REQUEST_TIMEOUT_SECONDS = 10.0
SEED_VARIABLE = "REFLEXBLUE_TEST_FAULT_SEED"
EVENTS_PATH = "/api/management/events"
RECEIVER_PATH = "/orders"
PROBLEM_TYPE = "application/problem+json"
WORKER_WRITE_RETRY_LINE = "recording delivery outcomes failed; retrying"
# How long after its claim ran out a due delivery is surely claimed again by a running worker.
RECLAIM_GRACE_SECONDS = 1.0
# Publications tried, at most, before the capped database must have run out of room.
FILLING_ATTEMPTS = 2_000


def _seed() -> int:
    seed = int(os.environ.get(SEED_VARIABLE) or time.time_ns() % 1_000_000_007)
    print(f"fault seed: {SEED_VARIABLE}={seed}")
    return seed


@pytest.fixture
def sqlite_settings(sqlite_template: SqliteTemplate, tmp_path: Path) -> Settings:
    return loopback_delivery_settings(sqlite_template.copy_to(tmp_path), tmp_path)


@pytest.fixture
async def sqlite_runtime(sqlite_settings: Settings) -> AsyncIterator[Runtime]:
    started = await start_runtime(sqlite_settings)
    yield started
    await started.close()


def _database_file(settings: Settings) -> Path:
    assert settings.database_url is not None
    return Path(settings.database_url.removeprefix("sqlite:///"))


def _integrity(database: Path) -> list[str]:
    """SQLite's own check of the file, by a connection of its own, as a new process makes."""
    connection = sqlite3.connect(database)
    try:
        return [row[0] for row in connection.execute("PRAGMA integrity_check")]
    finally:
        connection.close()


def _stored_event_ids(database: Path) -> set[str]:
    connection = sqlite3.connect(database)
    try:
        return {row[0] for row in connection.execute("SELECT id FROM events")}
    finally:
        connection.close()


# --- killed mid-write -------------------------------------------------------------------


@dataclass
class Publishers:
    """Several clients publishing at once through `serve`; what it acknowledged is kept."""

    url: str
    headers: dict[str, str]
    acknowledged: set[str] = field(default_factory=set)
    cut_off: int = 0  # requests the kill left without an answer
    other_answers: list[int] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(
            base_url=self.url, headers=self.headers, timeout=REQUEST_TIMEOUT_SECONDS
        ) as client:
            await asyncio.gather(*(self._publish_until(stop, client) for _ in range(PUBLISHERS)))

    async def _publish_until(self, stop: asyncio.Event, client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                answer = await client.post(EVENTS_PATH, json={"type": "webhook.test", "data": {}})
            except httpx.TransportError:
                self.cut_off += 1
                return
            if answer.status_code == 202:
                self.acknowledged.add(answer.json()["id"])
            else:
                self.other_answers.append(answer.status_code)


async def _publish_and_kill(
    settings: Settings, port: int, admin: ApiUser, rng: random.Random
) -> Publishers:
    """Start `serve`, publish through it until writes are flowing, then SIGKILL it while the
    publishers and its worker are still writing."""
    with running_server(worker_environment(settings), port=port) as server:
        publishers = Publishers(server.url, admin.headers)
        stop = asyncio.Event()
        publishing = asyncio.create_task(publishers.run(stop))

        async def writes_flowing() -> bool:
            return len(publishers.acknowledged) >= ACKNOWLEDGED_BEFORE_KILL

        try:
            await eventually(writes_flowing, "serve acknowledged publications")
            await asyncio.sleep(rng.uniform(0.0, 0.5))  # a random moment amid the writes
            server.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(server.process.wait)
        finally:
            stop.set()
            await publishing
    return publishers


def _nothing_pending(runtime: Runtime) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await count_deliveries(runtime, DeliveryStatus.PENDING.value) == 0

    return check


async def test_sigkill_mid_write_leaves_a_sound_database_with_every_acknowledged_event(
    sqlite_runtime: Runtime, sqlite_settings: Settings
) -> None:
    rng = random.Random(_seed())
    database = _database_file(sqlite_settings)
    admin = await make_user(sqlite_runtime, "alice", Role.ADMIN)
    port = free_port()
    acknowledged: set[str] = set()
    cut_off = 0
    async with running_receiver() as receiver:
        subscriber = await subscribe(sqlite_runtime, f"{receiver.url}{RECEIVER_PATH}")
        secret = await secret_of(sqlite_runtime, subscriber.integration_id)
        for kill in range(KILLS):
            publishers = await _publish_and_kill(sqlite_settings, port, admin, rng)
            assert publishers.other_answers == []
            acknowledged |= publishers.acknowledged
            cut_off += publishers.cut_off

            assert _integrity(database) == ["ok"], f"after kill {kill + 1}"
            missing = acknowledged - _stored_event_ids(database)
            assert missing == set(), f"acknowledged, then lost by kill {kill + 1}"

        with running_server(worker_environment(sqlite_settings), port=port):
            # What a killed serve had claimed comes back when its lease runs out.
            await eventually(_nothing_pending(sqlite_runtime), "no delivery is pending any more")

    received = verified_deliveries(receiver, {RECEIVER_PATH: secret})
    assert {(RECEIVER_PATH, event_id) for event_id in acknowledged} <= received
    assert await count_deliveries(sqlite_runtime) == await count_deliveries(
        sqlite_runtime, DeliveryStatus.SUCCEEDED.value
    )
    assert _integrity(database) == ["ok"]
    # The kills cut requests off mid-way, so they struck while serve was writing.
    assert cut_off >= KILLS


# --- full disk --------------------------------------------------------------------------


class Disk:
    """The room SQLite has: unlimited, or none beyond the pages the file already has.

    Applied to each pooled connection as it is taken, since `max_page_count` holds per
    connection. A limit below the file's size is raised to that size, so 1 means "full now".
    """

    def __init__(self, runtime: Runtime) -> None:
        probe = sqlite3.connect(":memory:")
        self._roomy: int = probe.execute("PRAGMA max_page_count").fetchone()[0]
        probe.close()
        self.full = False
        event.listen(runtime.engine.sync_engine, "checkout", self._apply)

    def _apply(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA max_page_count={1 if self.full else self._roomy}")
        cursor.close()


@contextmanager
def _client_of(runtime: Runtime, headers: dict[str, str]) -> Iterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime.settings, runtime))
    yield httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers)


async def _publish(client: httpx.AsyncClient, number: int) -> httpx.Response:
    return await client.post(EVENTS_PATH, json={"type": "webhook.test", "data": {"n": number}})


async def _fill_up(client: httpx.AsyncClient, first: int) -> tuple[set[str], httpx.Response, int]:
    """Publish until the disk refuses one; what was acknowledged, the refusal, its number."""
    acknowledged: set[str] = set()
    for number in range(first, first + FILLING_ATTEMPTS):
        answer = await _publish(client, number)
        if answer.status_code != 202:
            return acknowledged, answer, number
        acknowledged.add(answer.json()["id"])
    raise AssertionError(f"{FILLING_ATTEMPTS} events fitted on a full disk")


async def _events_by_number(runtime: Runtime) -> dict[int, str]:
    async with transaction(runtime.sessions) as session:
        rows = await session.execute(select(Event.id, Event.data))
        return {data["n"]: event_id for event_id, data in rows}


async def _statuses(runtime: Runtime) -> dict[str, str]:
    async with transaction(runtime.sessions) as session:
        rows = await session.execute(select(Delivery.event_id, Delivery.status))
        return {event_id: status for event_id, status in rows}


def _all_succeeded(runtime: Runtime) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return set((await _statuses(runtime)).values()) == {DeliveryStatus.SUCCEEDED.value}

    return check


async def _answer_with_receipt(_: web.Request) -> web.StreamResponse:
    # The worker keeps this much of each answer, so every attempt it records needs new pages.
    return web.Response(text="r" * RESPONSE_BODY_LIMIT_BYTES)


def _worker_retried_writes(caplog: pytest.LogCaptureFixture) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return any(r.getMessage() == WORKER_WRITE_RETRY_LINE for r in caplog.records)

    return check


def _leases_ran_out(runtime: Runtime) -> Callable[[], Awaitable[bool]]:
    """True once every claim on a pending delivery ended a moment ago, long enough for a
    worker that claims again to have done so."""

    async def check() -> bool:
        async with transaction(runtime.sessions) as session:
            latest = await session.scalar(
                select(func.max(Delivery.locked_until)).where(
                    Delivery.status == DeliveryStatus.PENDING.value
                )
            )
        return latest is None or latest < utcnow() - timedelta(seconds=RECLAIM_GRACE_SECONDS)

    return check


async def test_a_full_disk_refuses_with_507_and_loses_nothing_committed(
    sqlite_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = sqlite_runtime
    disk = Disk(runtime)
    admin = await make_user(runtime, "alice", Role.ADMIN)
    async with running_receiver(_answer_with_receipt) as receiver:
        subscriber = await subscribe(runtime, f"{receiver.url}{RECEIVER_PATH}")
        secret = await secret_of(runtime, subscriber.integration_id)
        with _client_of(runtime, admin.headers) as client:
            async with client, running_worker(runtime):
                before = {(await _publish(client, n)).json()["id"] for n in range(10)}
                await eventually(_all_succeeded(runtime), "the first events are delivered")

                disk.full = True
                caplog.clear()
                filled, refused, refused_number = await _fill_up(client, first=10)
                await eventually(_worker_retried_writes(caplog), "the worker met the full disk")
                await eventually(_leases_ran_out(runtime), "the worker's claims ran out")
                arrivals_while_full = Counter(r.headers["webhook-id"] for r in receiver.received)
                stored_while_full = await _events_by_number(runtime)
                statuses_while_full = await _statuses(runtime)

                disk.full = False
                after = await _publish(client, refused_number)
                everything = before | filled | {after.json()["id"]}
                await wait_for_arrivals(receiver, RECEIVER_PATH, secret, everything)
                await eventually(_all_succeeded(runtime), "every delivery is recorded")
                errors = [r for r in caplog.records if r.levelno >= logging.ERROR]

    problem = refused.json()
    assert (refused.status_code, refused.headers["content-type"]) == (507, PROBLEM_TYPE)
    assert problem["title"] == "Insufficient storage"
    assert "disk is full" in problem["detail"]
    assert "nothing of this request was stored" in problem["detail"]
    # The refused publication left nothing behind; everything acknowledged before it is there,
    # and the deliveries the worker could not record stayed pending rather than failing.
    assert refused_number not in stored_while_full
    assert set(stored_while_full.values()) == before | filled
    assert {statuses_while_full[event_id] for event_id in before} == {"succeeded"}
    assert set(statuses_while_full) == before | filled
    assert DeliveryStatus.FAILED.value not in statuses_while_full.values()
    # One line for the refusal, without a traceback; the worker's retries are warnings.
    assert [(r.name, r.getMessage(), r.exc_info) for r in errors] == [
        ("reflexblue.api.problems", "database disk full; request refused", None)
    ]
    # The worker waited for room rather than sending what it could not record again and again.
    assert set(arrivals_while_full.values()) == {1}
    assert after.status_code == 202
    assert _integrity(_database_file(runtime.settings)) == ["ok"]
