"""Ingest: `POST /api/management/events` through a real `reflexblue serve --no-worker` against
a bare Starlette endpoint under the same uvicorn settings, and the batch form in events/s."""

import asyncio
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from bench.drain import DrainCase, DrainSetting, subscribe_receiver
from bench.load import LoadResult, LoadSpec
from bench.payload import EVENT_TYPE, event_data
from bench.processes import free_port, measure_load, running
from reflexblue.accounts.models import Role
from reflexblue.accounts.schemas import UserCreate
from reflexblue.accounts.service import create_token, create_user
from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.runtime import start_runtime

EVENTS_PATH = "/api/management/events"
BATCH_PATH = "/api/management/events/batch"
WARMUP_REQUESTS = 50
BATCH_CONCURRENCY = 1
ADMIN_NAME = "bench"
# The administrator of a throwaway database that lives as long as one command.
ADMIN_PASSWORD = "bench password, long enough"
# One integration with one webhook: each published event is stored with one delivery.
_SUBSCRIBERS = DrainCase("ingest", "Ingest", webhooks=1, fan_out=1)


@dataclass(frozen=True)
class IngestTargets:
    product_url: str
    bare_url: str
    token: str


@dataclass(frozen=True)
class IngestRound:
    product: LoadResult
    bare: LoadResult
    batch: LoadResult
    batch_events: int

    @property
    def batch_events_per_second(self) -> float:
        return self.batch.per_second * self.batch_events


@contextmanager
def ingest_servers(setting: DrainSetting) -> Iterator[IngestTargets]:
    """The product's server (on its own fresh database) and the bare endpoint, both running."""
    token = asyncio.run(prepare_publisher(setting))
    product_port, bare_port = free_port(), free_port()
    product_url = f"http://127.0.0.1:{product_port}"
    bare_url = f"http://127.0.0.1:{bare_port}"
    serve = ["reflexblue", "serve", "--no-worker", "--port", str(product_port)]
    environment = {**setting.worker_environment(), "REFLEXBLUE_LOG_LEVEL": "WARNING"}
    with ExitStack() as stack:
        stack.enter_context(running(serve, environment, ready_url=f"{product_url}/healthz"))
        bare = ["bench.bare_endpoint", str(bare_port)]
        stack.enter_context(running(bare, {}, ready_url=f"{bare_url}/healthz"))
        yield IngestTargets(product_url, bare_url, token)


def run_ingest_round(
    targets: IngestTargets, *, requests: int, concurrency: int, batches: int, batch_events: int
) -> IngestRound:
    """The bare endpoint, then the product, with the same client, body and concurrency."""
    body = json.dumps({"type": EVENT_TYPE, "data": event_data(0)})
    headers = {"content-type": "application/json", "authorization": f"Bearer {targets.token}"}

    def single(url: str) -> LoadResult:
        spec = LoadSpec(
            url=url + EVENTS_PATH,
            requests=requests,
            concurrency=concurrency,
            expected_status=202,
            warmup=WARMUP_REQUESTS,
            headers=headers,
            body=body,
        )
        return measure_load(spec)

    bare = single(targets.bare_url)
    product = single(targets.product_url)
    batch_body = json.dumps(
        {"events": [{"type": EVENT_TYPE, "data": event_data(i)} for i in range(batch_events)]}
    )
    batch = measure_load(
        LoadSpec(
            url=targets.product_url + BATCH_PATH,
            requests=batches,
            concurrency=BATCH_CONCURRENCY,
            expected_status=202,
            warmup=1,
            headers=headers,
            body=batch_body,
        )
    )
    return IngestRound(product, bare, batch, batch_events)


async def prepare_publisher(setting: DrainSetting) -> str:
    """The product's database: the event type, one subscriber, and an administrator's token."""
    runtime = await start_runtime(setting.settings())
    try:
        await subscribe_receiver(runtime, _SUBSCRIBERS, setting.receiver_url)
        async with transaction(runtime.sessions) as session:
            user = UserCreate(username=ADMIN_NAME, password=ADMIN_PASSWORD, role=Role.ADMIN)
            await create_user(session, user, CLI_ACTOR)
            _, token = await create_token(session, ADMIN_NAME, "bench", CLI_ACTOR)
        return token
    finally:
        await runtime.close()
