"""PostgreSQL away: stopped for thirty seconds under load and started again while `serve` runs
on, and a server that accepts connections but never answers.

While the database is away every API answer is a prompt 503 problem with Retry-After and the
console shows an error page; nothing hangs, nothing answers 500 or shows a trace. Once the
database is back the same process answers again, and every event it acknowledged reaches the
receiver.
"""

import asyncio
import enum
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from reflexblue.accounts.models import Role
from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import (
    POSTGRES_CONNECT_TIMEOUT_SECONDS,
    DatabaseFault,
    create_engine,
    database_fault,
    transaction,
)
from reflexblue.core.runtime import Runtime, start_runtime
from reflexblue.integrations.api_keys import ApiKeyCreate, create_api_key
from tests.conftest import TEST_PASSWORD, make_user
from tests.delivery.conftest import eventually, subscribe, worker_environment
from tests.faults.conftest import secret_of, wait_for_arrivals
from tests.support.postgres import PostgresServer, running_postgres
from tests.support.receiver import running_receiver
from tests.support.server import RunningServer, running_server
from tests.support.settings import loopback_delivery_settings

OUTAGE_SECONDS = 30.0
# Far below the outage: a request that waited for the missing database would run into it.
ANSWER_LIMIT_SECONDS = 10.0
# Each client pauses this long between its requests, leaving the machine's cores to `serve`.
LOAD_PAUSE_SECONDS = 0.1
RECOVERY_LIMIT_SECONDS = 60.0
PROBLEM_TYPE = "application/problem+json"
OVERVIEW_PATH = "/management/general/integrations"
RECEIVER_PATH = "/orders"
CONSOLE_FAULT_TITLE = "The database is not reachable"
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')

Send = Callable[[], Awaitable[httpx.Response]]


class Phase(enum.Enum):
    UP = "up"
    STOPPING = "stopping"
    DOWN = "down"
    STARTING = "starting"
    BACK = "back"


@dataclass(frozen=True)
class Answer:
    request: str
    sent_in: Phase
    answered_in: Phase
    status: int | None  # None: no answer within the limit, or the connection failed
    content_type: str = ""
    retry_after: str | None = None
    body: str = ""

    @property
    def during_outage(self) -> bool:
        return self.sent_in is Phase.DOWN and self.answered_in is Phase.DOWN


@dataclass
class Load:
    """Clients that each send one request after another; every answer is kept with the phase
    of the outage it was sent and answered in."""

    phase: Phase = Phase.UP
    answers: list[Answer] = field(default_factory=list)
    acknowledged: set[str] = field(default_factory=set)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def keep_sending(self, request: str, send: Send) -> None:
        while not self.stop.is_set():
            sent_in = self.phase
            try:
                response = await send()
            except httpx.TransportError as error:
                self.answers.append(Answer(request, sent_in, self.phase, None, body=repr(error)))
            else:
                self.answers.append(_answer(request, sent_in, self.phase, response))
                if request == "publish" and response.status_code == 202:
                    self.acknowledged.add(response.json()["id"])
            await asyncio.sleep(LOAD_PAUSE_SECONDS)

    def answered(self, request: str, phase: Phase, statuses: tuple[int, ...]) -> bool:
        return any(
            a.request == request and a.sent_in is phase and a.status in statuses
            for a in self.answers
        )


def _answer(request: str, sent_in: Phase, answered_in: Phase, response: httpx.Response) -> Answer:
    return Answer(
        request,
        sent_in,
        answered_in,
        response.status_code,
        response.headers.get("content-type", ""),
        response.headers.get("retry-after"),
        response.text,
    )


@dataclass(frozen=True)
class Clients:
    management: httpx.AsyncClient
    external: httpx.AsyncClient
    console: httpx.AsyncClient

    def senders(self) -> dict[str, Send]:
        """A publication, and a read of each door: the Management API, the External API and
        a console page."""
        event = {"type": "webhook.test", "data": {"order": 1}}
        return {
            "publish": lambda: self.management.post("/api/management/events", json=event),
            "integrations": lambda: self.management.get("/api/management/integrations"),
            "webhooks": lambda: self.external.get("/api/external/v1/webhooks"),
            "console": lambda: self.console.get(OVERVIEW_PATH),
        }


def _clients(server: RunningServer, admin_headers: dict[str, str], api_key: str) -> Clients:
    def client(headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=server.url, headers=headers, timeout=ANSWER_LIMIT_SECONDS)

    return Clients(
        management=client(admin_headers),
        external=client({"Authorization": f"Bearer {api_key}"}),
        console=client(),
    )


async def _log_in(console: httpx.AsyncClient, username: str) -> None:
    form = await console.get("/login")
    found = _CSRF_FIELD.search(form.text)
    assert found, "the login page has no CSRF field"
    fields = {"csrf_token": found.group(1), "username": username, "password": TEST_PASSWORD}
    answer = await console.post("/login", data=fields)
    assert answer.status_code == 303, answer.text


async def _api_key(runtime: Runtime, integration_id: str) -> str:
    async with transaction(runtime.sessions) as session:
        data = ApiKeyCreate(name="reader")
        return (await create_api_key(session, integration_id, data, CLI_ACTOR)).key


async def _outage(database: PostgresServer, load: Load) -> None:
    load.phase = Phase.STOPPING
    await asyncio.to_thread(database.stop)
    load.phase = Phase.DOWN
    await asyncio.sleep(OUTAGE_SECONDS)  # the fault itself: the database stays away this long
    load.phase = Phase.STARTING
    await asyncio.to_thread(database.start)
    load.phase = Phase.BACK


async def _load_through_outage(database: PostgresServer, clients: Clients, load: Load) -> None:
    """Send every kind of request until each has succeeded before the outage and after it."""
    senders = clients.senders()
    tasks = [asyncio.create_task(load.keep_sending(name, send)) for name, send in senders.items()]

    def all_succeeded_in(phase: Phase) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return all(load.answered(name, phase, (200, 202)) for name in senders)

        return check

    try:
        await eventually(all_succeeded_in(Phase.UP), "every request succeeds before the outage")
        await _outage(database, load)
        await eventually(
            all_succeeded_in(Phase.BACK),
            "every request succeeds again",
            limit_seconds=RECOVERY_LIMIT_SECONDS,
        )
    finally:
        load.stop.set()
        await asyncio.gather(*tasks)


@pytest.mark.postgresql_only
async def test_a_thirty_second_postgresql_outage_answers_503_and_loses_no_event(
    backend: str, tmp_path: Path
) -> None:
    load = Load()
    with running_postgres() as database:
        settings = loopback_delivery_settings(database.url, tmp_path)
        runtime = await start_runtime(settings)
        try:
            async with running_receiver() as receiver:
                subscriber = await subscribe(runtime, f"{receiver.url}{RECEIVER_PATH}")
                secret = await secret_of(runtime, subscriber.integration_id)
                api_key = await _api_key(runtime, subscriber.integration_id)
                admin = await make_user(runtime, "alice", Role.ADMIN)
                with running_server(worker_environment(settings)) as server:
                    clients = _clients(server, admin.headers, api_key)
                    async with clients.management, clients.external, clients.console:
                        await _log_in(clients.console, admin.username)
                        await _load_through_outage(database, clients, load)
                    still_running = server.process.poll() is None
                    await wait_for_arrivals(receiver, RECEIVER_PATH, secret, load.acknowledged)
                    output = server.output
        finally:
            await runtime.close()

    during = [a for a in load.answers if a.during_outage]
    api_during = [a for a in during if a.request != "console"]
    console_during = [a for a in during if a.request == "console"]
    assert still_running, "serve had to be started again"
    # Every request got an answer in time, and never a 500: a success or, at worst, a 503.
    assert [a for a in load.answers if a.status not in (200, 202, 503)] == []
    assert [a for a in load.answers if "Traceback" in a.body] == []
    assert [a for a in load.answers if a.sent_in is Phase.UP and a.status == 503] == []
    # While the database was away, each door answered with what the client can act on.
    assert {a.request for a in api_during} == {"publish", "integrations", "webhooks"}
    assert {(a.status, a.content_type) for a in api_during} == {(503, PROBLEM_TYPE)}
    assert console_during
    assert {a.status for a in console_during} == {503}
    assert all(a.content_type.startswith("text/html") for a in console_during)
    assert all(CONSOLE_FAULT_TITLE in a.body for a in console_during)
    assert all(a.retry_after for a in load.answers if a.status == 503)
    assert load.acknowledged
    assert "Traceback" not in output


@contextmanager
def _silent_server() -> Iterator[int]:
    """A port whose connections are accepted by the kernel but never answered, as a frozen or
    overloaded database server's are."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.mark.postgresql_only
async def test_a_postgresql_that_never_answers_fails_the_connection_in_bounded_time(
    backend: str,
) -> None:
    with _silent_server() as port:
        engine = create_engine(f"postgresql+asyncpg://reflexblue@127.0.0.1:{port}/reflexblue")
        began = time.monotonic()
        try:
            with pytest.raises(DBAPIError) as raised:
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        finally:
            await engine.dispose()
        waited = time.monotonic() - began

    assert database_fault(raised.value) is DatabaseFault.UNAVAILABLE
    # Generous against a loaded machine, and far below asyncpg's own minute.
    assert waited < POSTGRES_CONNECT_TIMEOUT_SECONDS + ANSWER_LIMIT_SECONDS
