"""Every way of calling the External API without a working key gets the same 401."""

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction, utcnow
from reflexblue.core.runtime import Runtime
from reflexblue.integrations.api_keys import revoke_api_key
from reflexblue.integrations.models import ApiKey
from tests.conftest import ApiUser
from tests.external.conftest import API, Caller


def _assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == 'Bearer realm="external"'
    problem = response.json()
    assert problem["status"] == 401
    assert "int_" not in response.text


async def test_valid_key_is_let_in(client: httpx.AsyncClient, caller: Caller) -> None:
    response = await client.get(f"{API}/integration", headers=caller.headers)

    assert response.status_code == 200
    assert response.json()["id"] == caller.integration_id


async def test_request_without_a_key_is_refused(client: httpx.AsyncClient) -> None:
    _assert_refused(await client.get(f"{API}/integration"))


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "rbk_abcdefghijklmnopqrstuvwxyz0123456789ABCDEF",
        "Bearer not-a-key",
        "Bearer rbk_",
        "Bearer ' OR 1=1 --",
    ],
)
async def test_malformed_authorization_is_refused(client: httpx.AsyncClient, header: str) -> None:
    _assert_refused(await client.get(f"{API}/integration", headers={"Authorization": header}))


async def test_unknown_key_is_refused(client: httpx.AsyncClient, caller: Caller) -> None:
    unknown = caller.key[:-4] + ("AAAA" if not caller.key.endswith("AAAA") else "BBBB")

    _assert_refused(
        await client.get(f"{API}/integration", headers={"Authorization": f"Bearer {unknown}"})
    )


async def test_management_token_is_not_an_api_key(
    client: httpx.AsyncClient, admin: ApiUser
) -> None:
    _assert_refused(await client.get(f"{API}/integration", headers=admin.headers))


async def test_revoked_key_is_refused_at_once(
    client: httpx.AsyncClient, runtime: Runtime, caller: Caller
) -> None:
    assert (await client.get(f"{API}/integration", headers=caller.headers)).status_code == 200
    async with transaction(runtime.sessions) as session:
        await revoke_api_key(session, caller.key_id, CLI_ACTOR)

    _assert_refused(await client.get(f"{API}/integration", headers=caller.headers))


async def test_expired_key_is_refused(
    client: httpx.AsyncClient, runtime: Runtime, caller: Caller
) -> None:
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == caller.key_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )

    _assert_refused(await client.get(f"{API}/integration", headers=caller.headers))


async def test_unknown_revoked_and_expired_keys_get_the_same_answer(
    client: httpx.AsyncClient, runtime: Runtime, caller: Caller, other_caller: Caller
) -> None:
    async with transaction(runtime.sessions) as session:
        await revoke_api_key(session, caller.key_id, CLI_ACTOR)
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == other_caller.key_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    unknown = {"Authorization": "Bearer rbk_" + "x" * 43}

    answers = [
        (await client.get(f"{API}/integration", headers=headers)).json()
        for headers in (caller.headers, other_caller.headers, unknown)
    ]

    assert answers[0] == answers[1] == answers[2]


async def test_using_a_key_records_when_it_was_last_used(
    client: httpx.AsyncClient, runtime: Runtime, caller: Caller
) -> None:
    await client.get(f"{API}/integration", headers=caller.headers)

    async with transaction(runtime.sessions) as session:
        key = await session.get(ApiKey, caller.key_id)
        assert key is not None
        assert key.last_used_at is not None


async def test_integration_read_never_carries_its_secret(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    response = await client.get(f"{API}/integration", headers=caller.headers)

    assert set(response.json()) == {
        "id",
        "name",
        "description",
        "external_id",
        "export_id",
        "created_at",
        "updated_at",
        "version",
    }
    assert "whsec_" not in response.text
