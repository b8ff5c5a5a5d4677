"""Fixtures and helpers for the fault tests: real processes, receivers on loopback, and the
checks that every request a receiver got was signed as Standard Webhooks says."""

from collections.abc import Iterable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook as Verifier

from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.core.settings import Settings
from reflexblue.integrations.service import reveal_secret
from reflexblue.webhooks.models import Delivery
from tests.delivery.conftest import eventually
from tests.support.receiver import Receiver
from tests.support.settings import loopback_delivery_settings


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return loopback_delivery_settings(database_url, tmp_path)


async def secret_of(runtime: Runtime, integration_id: str) -> str:
    async with transaction(runtime.sessions) as session:
        return (await reveal_secret(session, runtime.box, integration_id, CLI_ACTOR)).secret


def verified_deliveries(
    receiver: Receiver, secrets_by_path: dict[str, str]
) -> set[tuple[str, str]]:
    """(path, event id) of every request the receiver got. Each must verify with the secret of
    the path it came to, checked by the `standardwebhooks` package rather than our own code."""
    arrived = set()
    for request in receiver.received:
        payload = Verifier(secrets_by_path[request.path]).verify(request.body, request.headers)
        assert payload["type"] == "webhook.test"
        arrived.add((request.path, request.headers["webhook-id"]))
    return arrived


async def count_deliveries(runtime: Runtime, status: str | None = None) -> int:
    query = select(func.count()).select_from(Delivery)
    if status is not None:
        query = query.where(Delivery.status == status)
    async with transaction(runtime.sessions) as session:
        return int(await session.scalar(query) or 0)


async def wait_for_arrivals(
    receiver: Receiver, path: str, secret: str, event_ids: Iterable[str]
) -> None:
    """Wait until every one of the events reached the receiver at `path`, signed with `secret`."""
    expected = {(path, event_id) for event_id in event_ids}

    async def all_arrived() -> bool:
        return expected <= verified_deliveries(receiver, {path: secret})

    await eventually(all_arrived, "every acknowledged event reached the receiver")
