"""Fixtures for the attack tests: integrations with API keys, as the External API tests make."""

import httpx
import pytest

from reflexblue.core.runtime import Runtime
from tests.external.conftest import Caller, make_caller


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
