"""Fixtures for recovery and webhook health: receivers on loopback are allowed, retries come at
once, and rows of old failed deliveries can be made in bulk."""

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert

from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import new_id, transaction
from reflexblue.core.runtime import Runtime
from reflexblue.core.settings import Settings
from reflexblue.integrations.api_keys import ApiKeyCreate, create_api_key
from reflexblue.webhooks.models import Attempt, Delivery, Event
from tests.support.settings import loopback_delivery_settings

API = "/api/external/v1"


def new_signing_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return loopback_delivery_settings(database_url, tmp_path)


@dataclass(frozen=True)
class MadeDelivery:
    event_id: str
    delivery_id: str


async def make_deliveries(
    runtime: Runtime,
    webhook_id: str,
    count: int,
    created_at: datetime,
    *,
    status: str = "failed",
) -> list[MadeDelivery]:
    """Deliveries as the worker leaves them after giving up: one event each, one attempt each."""
    made = [MadeDelivery(new_id("evt"), new_id("dlv")) for _ in range(count)]
    events = [
        {"id": m.event_id, "type": "webhook.test", "data": {"n": n}, "created_at": created_at}
        for n, m in enumerate(made)
    ]
    deliveries = [
        {
            "id": m.delivery_id,
            "event_id": m.event_id,
            "webhook_id": webhook_id,
            "status": status,
            "attempt_count": 1,
            "next_attempt_at": None,
            "created_at": created_at,
            "updated_at": created_at,
        }
        for m in made
    ]
    attempts = [
        {
            "id": new_id("att"),
            "delivery_id": m.delivery_id,
            "attempted_at": created_at,
            "duration_ms": 3,
            "response_status": 503,
            "response_body": "down for maintenance",
            "error": "http_status",
        }
        for m in made
    ]
    async with transaction(runtime.sessions) as session:
        await session.execute(insert(Event), events)
        await session.execute(insert(Delivery), deliveries)
        await session.execute(insert(Attempt), attempts)
    return made


async def api_key_of(runtime: Runtime, integration_id: str) -> dict[str, str]:
    """Authorization headers with a new API key of the integration."""
    async with transaction(runtime.sessions) as session:
        created = await create_api_key(
            session, integration_id, ApiKeyCreate(name="tests"), CLI_ACTOR
        )
    return {"Authorization": f"Bearer {created.key}"}


async def read_webhook(
    client: httpx.AsyncClient, headers: dict[str, str], webhook_id: str
) -> dict[str, object]:
    response = await client.get(f"{API}/webhooks/{webhook_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body
