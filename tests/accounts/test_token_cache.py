"""Management API tokens verified a moment ago are answered from this process's cache, and
never after this process has revoked them or changed or deleted their user."""

import httpx
import pytest
from sqlalchemy import select, update

from reflexblue.accounts.models import User, UserToken
from reflexblue.accounts.service import (
    TOKEN_TRUST_SECONDS,
    list_tokens,
    revoke_token,
    verified_tokens,
)
from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction, utcnow
from reflexblue.core.runtime import Runtime
from tests.conftest import ApiUser
from tests.support.clock import Clock
from tests.support.management import INTEGRATIONS_PATH, integration_body


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moment = Clock(verified_tokens.clock())
    monkeypatch.setattr(verified_tokens, "clock", moment)
    return moment


async def test_a_token_verified_a_moment_ago_is_not_looked_up_again(
    client: httpx.AsyncClient, admin: ApiUser, statements: list[str]
) -> None:
    first = await client.get(INTEGRATIONS_PATH, headers=admin.headers)
    looked_up = any("user_tokens" in sql for sql in statements)
    statements.clear()

    second = await client.get(INTEGRATIONS_PATH, headers=admin.headers)

    assert (first.status_code, second.status_code) == (200, 200)
    assert looked_up
    assert not any("user_tokens" in sql for sql in statements)


async def test_a_token_revoked_by_this_process_is_refused_at_once(
    client: httpx.AsyncClient, admin: ApiUser, runtime: Runtime
) -> None:
    assert (await client.get(INTEGRATIONS_PATH, headers=admin.headers)).status_code == 200
    async with transaction(runtime.sessions) as session:
        (token,) = await list_tokens(session, admin.username)
        await revoke_token(session, token.id, CLI_ACTOR)

    response = await client.get(INTEGRATIONS_PATH, headers=admin.headers)

    assert response.status_code == 401


async def test_a_user_given_the_viewer_role_may_not_change_anything_at_once(
    client: httpx.AsyncClient, admin: ApiUser, runtime: Runtime
) -> None:
    assert (await client.get(INTEGRATIONS_PATH, headers=admin.headers)).status_code == 200
    async with transaction(runtime.sessions) as session:
        user = await session.scalar(select(User).where(User.username == admin.username))
        assert user is not None
        user.role = "viewer"

    response = await client.post(INTEGRATIONS_PATH, json=integration_body(), headers=admin.headers)

    assert response.status_code == 403


async def test_the_token_of_a_deleted_user_is_refused_at_once(
    client: httpx.AsyncClient, admin: ApiUser, runtime: Runtime
) -> None:
    assert (await client.get(INTEGRATIONS_PATH, headers=admin.headers)).status_code == 200
    async with transaction(runtime.sessions) as session:
        user = await session.scalar(select(User).where(User.username == admin.username))
        await session.delete(user)

    response = await client.get(INTEGRATIONS_PATH, headers=admin.headers)

    assert response.status_code == 401


async def test_a_revocation_by_another_process_counts_once_the_cache_time_is_up(
    client: httpx.AsyncClient, admin: ApiUser, runtime: Runtime, clock: Clock
) -> None:
    assert (await client.get(INTEGRATIONS_PATH, headers=admin.headers)).status_code == 200
    # Written as another process would: no ORM flush of this process sees it.
    async with runtime.engine.begin() as connection:
        await connection.execute(update(UserToken).values(revoked_at=utcnow()))

    within = await client.get(INTEGRATIONS_PATH, headers=admin.headers)
    clock.now += TOKEN_TRUST_SECONDS
    after = await client.get(INTEGRATIONS_PATH, headers=admin.headers)

    assert (within.status_code, after.status_code) == (200, 401)


async def test_a_use_from_the_cache_changes_nothing_in_the_database(
    client: httpx.AsyncClient, admin: ApiUser, statements: list[str]
) -> None:
    await client.get(INTEGRATIONS_PATH, headers=admin.headers)
    statements.clear()

    await client.get(INTEGRATIONS_PATH, headers=admin.headers)

    assert not any(sql.lstrip().upper().startswith("UPDATE") for sql in statements)
