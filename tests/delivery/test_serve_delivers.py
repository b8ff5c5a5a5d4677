"""End to end through real processes: publish through the Management API, receive signed."""

import asyncio
import subprocess
from pathlib import Path

import httpx
from standardwebhooks.webhooks import Webhook as Verifier

from reflexblue.core.runtime import Runtime
from reflexblue.core.settings import Settings
from tests.delivery.conftest import subscribe, worker_process
from tests.support.receiver import Receiver, running_receiver
from tests.support.server import base_environment, cli_command, running_server


def _environment(settings: Settings) -> dict[str, str]:
    return {
        "REFLEXBLUE_DATA_DIR": str(settings.data_dir),
        "REFLEXBLUE_DATABASE_URL": settings.database_url or "",
        "REFLEXBLUE_ALLOW_PRIVATE_TARGETS": "true",
    }


def _token(settings: Settings) -> str:
    created = subprocess.run(
        [*cli_command("users", "create", "ops", "--password-stdin")],
        input="a long enough password\n",
        env=base_environment(_environment(settings)),
        capture_output=True,
        text=True,
        check=True,
    )
    assert created.returncode == 0
    token = subprocess.run(
        cli_command("tokens", "create", "ops", "--name", "publisher"),
        env=base_environment(_environment(settings)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=True,
    )
    return token.stdout.strip()


async def _secret(runtime: Runtime, integration_id: str) -> str:
    from reflexblue.audit.service import CLI_ACTOR
    from reflexblue.core.database import transaction
    from reflexblue.integrations.service import reveal_secret

    async with transaction(runtime.sessions) as session:
        return (await reveal_secret(session, runtime.box, integration_id, CLI_ACTOR)).secret


async def _publish_and_receive(server_url: str, token: str, receiver: Receiver) -> str:
    async with httpx.AsyncClient(base_url=server_url) as client:
        answer = await client.post(
            "/api/management/events",
            json={"type": "webhook.test", "data": {"hello": "world"}, "integration": "SHOP"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 202, answer.text
    assert answer.json()["deliveries"] == 1
    await receiver.arrived.wait()
    return str(answer.json()["id"])


async def test_serve_delivers_a_published_event_signed(runtime: Runtime, tmp_path: Path) -> None:
    async with running_receiver() as receiver:
        subscriber = await subscribe(runtime, f"{receiver.url}/in", export_id="SHOP")
        secret = await _secret(runtime, subscriber.integration_id)
        token = _token(runtime.settings)
        with running_server(_environment(runtime.settings)) as server:
            event_id = await _publish_and_receive(server.url, token, receiver)

    request = receiver.received[0]
    assert request.headers["webhook-id"] == event_id
    assert Verifier(secret).verify(request.body, request.headers)["data"] == {"hello": "world"}


async def test_serve_without_worker_leaves_delivery_to_a_worker_process(runtime: Runtime) -> None:
    async with running_receiver() as receiver:
        await subscribe(runtime, receiver.url, export_id="SHOP")
        token = _token(runtime.settings)
        environment = _environment(runtime.settings)
        with running_server(environment, arguments=("--no-worker",)) as server:
            async with httpx.AsyncClient(base_url=server.url) as client:
                answer = await client.post(
                    "/api/management/events",
                    json={"type": "webhook.test", "data": {}},
                    headers={"Authorization": f"Bearer {token}"},
                )
            assert answer.status_code == 202
            await asyncio.sleep(1.0)  # time enough for a worker in the server, if it had one
            assert receiver.received == []
            with worker_process(runtime.settings):
                await receiver.arrived.wait()

    assert receiver.received[0].headers["webhook-id"] == answer.json()["id"]
