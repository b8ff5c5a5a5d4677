"""The example receiver in examples/ runs, and accepts what ReflexBlue sends."""

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import select

from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.integrations.service import reveal_secret
from reflexblue.webhooks.models import Attempt
from reflexblue.webhooks.publishing import publish_event
from tests.delivery.conftest import eventually, running_worker, subscribe
from tests.support.postgres import free_port
from tests.support.server import base_environment

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "receiver.py"


@contextmanager
def example_receiver(secret: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", str(port)],
        env=base_environment({"REFLEXBLUE_WEBHOOK_SECRET": secret}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _listening(url: str) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            await client.get(url)
    except httpx.TransportError:
        return False
    return True


async def _statuses(runtime: Runtime) -> list[int | None]:
    async with transaction(runtime.sessions) as session:
        query = select(Attempt.response_status).order_by(Attempt.attempted_at)
        return list(await session.scalars(query))


async def test_the_example_receiver_accepts_a_delivery_and_refuses_a_forged_request(
    runtime: Runtime,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/reflexblue"
    subscriber = await subscribe(runtime, url)
    async with transaction(runtime.sessions) as session:
        secret = (
            await reveal_secret(session, runtime.box, subscriber.integration_id, CLI_ACTOR)
        ).secret

    with example_receiver(secret, port):
        await eventually(lambda: _listening(url), "the example receiver listens")
        async with running_worker(runtime):
            async with transaction(runtime.sessions) as session:
                await publish_event(session, "webhook.test", {"n": 1})

            async def answered() -> bool:
                return bool(await _statuses(runtime))

            await eventually(answered, "the receiver answered")

        async with httpx.AsyncClient() as client:
            forged = await client.post(
                url,
                content=b'{"type":"webhook.test"}',
                headers={
                    "webhook-id": "evt_forged",
                    "webhook-timestamp": "1796313600",
                    "webhook-signature": "v1,bm90IGEgc2lnbmF0dXJl",
                },
            )

    assert await _statuses(runtime) == [204]
    assert forged.status_code == 400
