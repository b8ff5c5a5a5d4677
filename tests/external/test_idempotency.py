"""Idempotency-Key: a repeated POST is answered from the first time, never carried out twice."""

import json
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from reflexblue.core.database import transaction, utcnow
from reflexblue.core.runtime import Runtime
from reflexblue.webhooks.idempotency import fingerprint
from reflexblue.webhooks.models import IdempotencyRecord, Webhook
from tests.external.conftest import API, PUBLIC_URL, Caller, create_webhook

BODY = {"url": PUBLIC_URL, "event_types": ["webhook.test"]}


async def _webhook_count(runtime: Runtime) -> int:
    async with transaction(runtime.sessions) as session:
        return await session.scalar(select(func.count()).select_from(Webhook)) or 0


async def test_repeat_with_the_same_key_returns_the_first_answer(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    headers = {"Idempotency-Key": "create-orders-hook-1"}

    first = await api.post(f"{API}/webhooks", json=BODY, headers=headers)
    second = await api.post(f"{API}/webhooks", json=BODY, headers=headers)

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert second.headers["location"] == first.headers["location"]
    assert await _webhook_count(runtime) == 1


async def test_repeat_without_a_key_is_carried_out_again(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    await api.post(f"{API}/webhooks", json=BODY)
    await api.post(f"{API}/webhooks", json=BODY)

    assert await _webhook_count(runtime) == 2


async def test_same_key_with_another_body_is_refused(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    headers = {"Idempotency-Key": "k-1"}
    await api.post(f"{API}/webhooks", json=BODY, headers=headers)

    other = await api.post(
        f"{API}/webhooks", json={**BODY, "description": "different"}, headers=headers
    )

    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert await _webhook_count(runtime) == 1


async def test_same_key_on_another_route_is_refused(api: httpx.AsyncClient) -> None:
    webhook = await create_webhook(api)
    headers = {"Idempotency-Key": "k-2"}
    await api.post(f"{API}/webhooks/{webhook['id']}/test", headers=headers)

    other = await api.post(f"{API}/webhooks", json=BODY, headers=headers)

    assert other.status_code == 422


async def test_keys_are_scoped_to_the_integration(
    client: httpx.AsyncClient, runtime: Runtime, caller: Caller, other_caller: Caller
) -> None:
    key = {"Idempotency-Key": "shared-key"}

    mine = await client.post(f"{API}/webhooks", json=BODY, headers={**caller.headers, **key})
    theirs = await client.post(
        f"{API}/webhooks", json=BODY, headers={**other_caller.headers, **key}
    )

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]
    assert "idempotent-replayed" not in theirs.headers
    assert await _webhook_count(runtime) == 2


async def test_key_older_than_a_day_is_forgotten(api: httpx.AsyncClient, runtime: Runtime) -> None:
    headers = {"Idempotency-Key": "old-key"}
    await api.post(f"{API}/webhooks", json=BODY, headers=headers)
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(IdempotencyRecord).values(created_at=utcnow() - timedelta(hours=24, seconds=1))
        )

    again = await api.post(f"{API}/webhooks", json=BODY, headers=headers)

    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers
    assert await _webhook_count(runtime) == 2


async def test_refused_request_does_not_use_up_its_key(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    headers = {"Idempotency-Key": "k-3"}
    refused = await api.post(
        f"{API}/webhooks", json={**BODY, "url": "http://127.0.0.1/"}, headers=headers
    )

    fixed = await api.post(
        f"{API}/webhooks", json={**BODY, "url": "http://127.0.0.1/"}, headers=headers
    )

    assert (refused.status_code, fixed.status_code) == (422, 422)
    assert "idempotent-replayed" not in fixed.headers
    async with transaction(runtime.sessions) as session:
        assert await session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0


async def test_key_still_being_answered_gets_a_conflict(
    api: httpx.AsyncClient, runtime: Runtime, caller: Caller
) -> None:
    body = json.dumps(BODY).encode()
    async with transaction(runtime.sessions) as session:
        session.add(
            IdempotencyRecord(
                integration_id=caller.integration_id,
                key="busy",
                fingerprint=fingerprint("POST", f"{API}/webhooks", body),
                created_at=utcnow(),
            )
        )

    response = await api.post(
        f"{API}/webhooks",
        content=body,
        headers={"Idempotency-Key": "busy", "Content-Type": "application/json"},
    )

    assert response.status_code == 409
    assert await _webhook_count(runtime) == 0


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
async def test_bad_idempotency_key_is_refused(
    api: httpx.AsyncClient, runtime: Runtime, key: str
) -> None:
    response = await api.post(f"{API}/webhooks", json=BODY, headers={"Idempotency-Key": key})

    assert response.status_code == 422
    assert await _webhook_count(runtime) == 0
