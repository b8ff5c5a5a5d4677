"""Fixtures for the External API: integrations, their API keys, and clients that use them."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import httpx
import pytest

from reflexblue.app import create_app
from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.integrations.api_keys import ApiKeyCreate, create_api_key
from reflexblue.integrations.schemas import IntegrationCreate
from reflexblue.integrations.service import create_integration

API = "/api/external/v1"
PUBLIC_URL = "https://93.184.215.14/hooks/orders"


@dataclass(frozen=True)
class Caller:
    integration_id: str
    key_id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_caller(runtime: Runtime, export_id: str) -> Caller:
    """A new integration with one API key."""
    async with transaction(runtime.sessions) as session:
        data = IntegrationCreate(
            name=f"{export_id} system", external_id=export_id, export_id=export_id
        )
        integration = await create_integration(session, runtime.box, data, CLI_ACTOR)
        created = await create_api_key(
            session, integration.id, ApiKeyCreate(name="tests"), CLI_ACTOR
        )
    return Caller(integration.id, created.id, created.key)


@pytest.fixture
async def caller(runtime: Runtime) -> Caller:
    return await make_caller(runtime, "ERP_ONE")


@pytest.fixture
async def other_caller(runtime: Runtime) -> Caller:
    return await make_caller(runtime, "CRM_TWO")


@pytest.fixture
async def api(client: httpx.AsyncClient, caller: Caller) -> httpx.AsyncClient:
    """The whole application, calling as the `caller` integration."""
    client.headers.update(caller.headers)
    return client


@asynccontextmanager
async def client_with(runtime: Runtime, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    """The whole application on the same database, with some settings changed."""
    settings = runtime.settings.model_copy(update=overrides)
    changed = replace(runtime, settings=settings)
    transport = httpx.ASGITransport(app=create_app(settings, changed))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def create_webhook(
    api: httpx.AsyncClient, url: str = PUBLIC_URL, event_types: list[str] | None = None
) -> dict[str, object]:
    response = await api.post(
        f"{API}/webhooks", json={"url": url, "event_types": event_types or ["webhook.test"]}
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body
