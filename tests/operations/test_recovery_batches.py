"""Recoveries carried out by workers: in batches, each delivery once, with its own webhook-id."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, text
from standardwebhooks.webhooks import Webhook as Verifier

from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.integrations.service import reveal_secret
from reflexblue.webhooks.models import Attempt, Delivery, Recovery
from reflexblue.webhooks.recovery import request_recovery, step_recovery
from reflexblue.webhooks.schemas import RecoveryCreate
from tests.delivery.conftest import eventually, subscribe, worker_process
from tests.operations.conftest import API, api_key_of, make_deliveries
from tests.support.receiver import running_receiver

HOUR = timedelta(hours=1)


async def _recovery(runtime: Runtime, recovery_id: str) -> Recovery:
    async with transaction(runtime.sessions) as session:
        found = await session.get(Recovery, recovery_id)
    assert found is not None
    return found


async def _start(runtime: Runtime, integration_id: str, webhook_id: str) -> str:
    async with transaction(runtime.sessions) as session:
        started = await request_recovery(
            session,
            integration_id,
            webhook_id,
            RecoveryCreate(since=datetime.now(UTC) - 2 * HOUR),
            CLI_ACTOR,
        )
    return started.id


async def _count(runtime: Runtime, status: str) -> int:
    async with transaction(runtime.sessions) as session:
        query = select(func.count()).select_from(Delivery).where(Delivery.status == status)
        return int(await session.scalar(query) or 0)


async def test_a_recovery_requeues_one_batch_per_step_and_is_done_after_a_short_one(
    runtime: Runtime,
) -> None:
    shop = await subscribe(runtime, "http://127.0.0.1:9/hook")
    await make_deliveries(runtime, shop.webhook_id, 1_200, datetime.now(UTC) - HOUR)
    recovery_id = await _start(runtime, shop.integration_id, shop.webhook_id)

    progress = []
    for _ in range(3):
        assert await step_recovery(runtime, batch_size=500)
        recovery = await _recovery(runtime, recovery_id)
        progress.append((recovery.requeued, recovery.status, await _count(runtime, "pending")))

    assert progress == [(500, "running", 500), (1_000, "running", 1_000), (1_200, "done", 1_200)]
    assert (await _recovery(runtime, recovery_id)).finished_at is not None
    assert await step_recovery(runtime, batch_size=500) is False


async def test_a_delivery_retried_by_hand_meanwhile_is_not_requeued_again(
    runtime: Runtime,
) -> None:
    shop = await subscribe(runtime, "http://127.0.0.1:9/hook")
    made = await make_deliveries(runtime, shop.webhook_id, 3, datetime.now(UTC) - HOUR)
    recovery_id = await _start(runtime, shop.integration_id, shop.webhook_id)
    async with transaction(runtime.sessions) as session:
        retried = await session.get(Delivery, made[1].delivery_id)
        assert retried is not None
        retried.status = "succeeded"

    await step_recovery(runtime, batch_size=500)

    recovery = await _recovery(runtime, recovery_id)
    assert (recovery.total, recovery.requeued, recovery.status) == (3, 2, "done")


@pytest.mark.postgresql_only
async def test_a_recovery_another_worker_is_stepping_is_skipped(runtime: Runtime) -> None:
    shop = await subscribe(runtime, "http://127.0.0.1:9/hook")
    await make_deliveries(runtime, shop.webhook_id, 10, datetime.now(UTC) - HOUR)
    recovery_id = await _start(runtime, shop.integration_id, shop.webhook_id)

    async with transaction(runtime.sessions) as other_worker:
        # Another worker's step holds the recovery's row for the length of its transaction.
        await other_worker.execute(
            text("SELECT id FROM recoveries WHERE id = :id FOR UPDATE"), {"id": recovery_id}
        )
        stepped_meanwhile = await step_recovery(runtime, batch_size=500)

    assert stepped_meanwhile is False
    assert (await _recovery(runtime, recovery_id)).requeued == 0
    assert await step_recovery(runtime, batch_size=500) is True


async def test_every_recovered_delivery_reaches_a_real_receiver_once_with_its_event_id(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    total = 1_200
    async with running_receiver() as receiver:
        shop = await subscribe(runtime, f"{receiver.url}/hook")
        made = await make_deliveries(runtime, shop.webhook_id, total, datetime.now(UTC) - HOUR)
        headers = await api_key_of(runtime, shop.integration_id)
        async with transaction(runtime.sessions) as session:
            secret = await reveal_secret(session, runtime.box, shop.integration_id, CLI_ACTOR)
        preview = await client.get(
            f"{API}/webhooks/{shop.webhook_id}/recover",
            params={"since": (datetime.now(UTC) - 2 * HOUR).isoformat()},
            headers=headers,
        )

        with worker_process(runtime.settings):
            answer = await client.post(
                f"{API}/webhooks/{shop.webhook_id}/recover",
                json={"since": (datetime.now(UTC) - 2 * HOUR).isoformat()},
                headers=headers,
            )

            async def all_delivered() -> bool:
                return await _count(runtime, "succeeded") == total

            await eventually(all_delivered, "every recovered delivery succeeded")

    recovery = await _recovery(runtime, answer.json()["id"])
    webhook_ids = Counter(request.headers["webhook-id"] for request in receiver.received)
    assert preview.json()["deliveries"] == total
    assert (recovery.status, recovery.total, recovery.requeued) == ("done", total, total)
    assert webhook_ids == Counter(m.event_id for m in made)
    verifier = Verifier(secret.secret)
    for request in receiver.received:
        verifier.verify(request.body, request.headers)
    async with transaction(runtime.sessions) as session:
        attempts = await session.scalar(select(func.count()).select_from(Attempt))
    # The failed attempt before the recovery is kept beside the one that succeeded.
    assert attempts == 2 * total
