"""External API keys verified a moment ago are answered from this process's cache, and never
after this process has revoked them or deleted their integration, nor after they expire."""

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction, utcnow
from reflexblue.core.runtime import Runtime
from reflexblue.integrations import api_keys
from reflexblue.integrations.api_keys import (
    KEY_TRUST_SECONDS,
    ApiKeyCreate,
    create_api_key,
    revoke_api_key,
    verified_keys,
)
from reflexblue.integrations.models import ApiKey
from reflexblue.integrations.service import delete_integration
from tests.external.conftest import API, Caller
from tests.support.clock import Clock

WEBHOOKS = f"{API}/webhooks"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moment = Clock(verified_keys.clock())
    monkeypatch.setattr(verified_keys, "clock", moment)
    return moment


def _looked_up(statements: list[str]) -> bool:
    return any("api_keys" in sql for sql in statements)


async def test_a_key_verified_a_moment_ago_is_not_looked_up_again(
    client: httpx.AsyncClient, caller: Caller, statements: list[str]
) -> None:
    first = await client.get(WEBHOOKS, headers=caller.headers)
    looked_up = _looked_up(statements)
    statements.clear()

    second = await client.get(WEBHOOKS, headers=caller.headers)

    assert (first.status_code, second.status_code) == (200, 200)
    assert looked_up
    assert not _looked_up(statements)


async def test_a_use_from_the_cache_changes_nothing_in_the_database(
    client: httpx.AsyncClient, caller: Caller, statements: list[str]
) -> None:
    await client.get(WEBHOOKS, headers=caller.headers)
    statements.clear()

    await client.get(WEBHOOKS, headers=caller.headers)

    assert not any(sql.lstrip().upper().startswith("UPDATE") for sql in statements)


async def test_a_key_revoked_by_this_process_is_refused_at_once(
    client: httpx.AsyncClient, caller: Caller, runtime: Runtime
) -> None:
    assert (await client.get(WEBHOOKS, headers=caller.headers)).status_code == 200
    async with transaction(runtime.sessions) as session:
        await revoke_api_key(session, caller.key_id, CLI_ACTOR)

    assert (await client.get(WEBHOOKS, headers=caller.headers)).status_code == 401


async def test_the_key_of_a_deleted_integration_is_refused_at_once(
    client: httpx.AsyncClient, caller: Caller, runtime: Runtime
) -> None:
    assert (await client.get(WEBHOOKS, headers=caller.headers)).status_code == 200
    async with transaction(runtime.sessions) as session:
        await delete_integration(session, caller.integration_id, CLI_ACTOR)

    assert (await client.get(WEBHOOKS, headers=caller.headers)).status_code == 401


async def test_another_key_of_the_integration_is_not_touched_by_a_revocation(
    client: httpx.AsyncClient, caller: Caller, runtime: Runtime, statements: list[str]
) -> None:
    async with transaction(runtime.sessions) as session:
        other = await create_api_key(
            session, caller.integration_id, ApiKeyCreate(name="other"), CLI_ACTOR
        )
    other_headers = {"Authorization": f"Bearer {other.key}"}
    assert (await client.get(WEBHOOKS, headers=other_headers)).status_code == 200
    async with transaction(runtime.sessions) as session:
        await revoke_api_key(session, caller.key_id, CLI_ACTOR)
    statements.clear()

    assert (await client.get(WEBHOOKS, headers=other_headers)).status_code == 200
    assert not _looked_up(statements)


async def test_a_key_that_expires_while_kept_is_refused_from_then_on(
    client: httpx.AsyncClient, runtime: Runtime, caller: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    expires_at = utcnow() + timedelta(hours=1)
    async with transaction(runtime.sessions) as session:
        expiring = await create_api_key(
            session,
            caller.integration_id,
            ApiKeyCreate(name="expiring", expires_at=expires_at),
            CLI_ACTOR,
        )
    headers = {"Authorization": f"Bearer {expiring.key}"}
    assert (await client.get(WEBHOOKS, headers=headers)).status_code == 200

    monkeypatch.setattr(api_keys, "utcnow", lambda: expires_at)

    assert (await client.get(WEBHOOKS, headers=headers)).status_code == 401


async def test_a_revocation_by_another_process_counts_once_the_cache_time_is_up(
    client: httpx.AsyncClient, caller: Caller, runtime: Runtime, clock: Clock
) -> None:
    assert (await client.get(WEBHOOKS, headers=caller.headers)).status_code == 200
    # Written as another process would: no ORM flush of this process sees it.
    async with runtime.engine.begin() as connection:
        await connection.execute(update(ApiKey).values(revoked_at=utcnow()))

    within = await client.get(WEBHOOKS, headers=caller.headers)
    clock.now += KEY_TRUST_SECONDS
    after = await client.get(WEBHOOKS, headers=caller.headers)

    assert (within.status_code, after.status_code) == (200, 401)
