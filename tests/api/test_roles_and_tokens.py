"""Who may do what: viewers read, admins change; bad tokens get 401 problem details."""

import httpx
import pytest

from reflexblue.accounts.service import list_tokens, revoke_token
from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from tests.conftest import ApiUser
from tests.support.management import (
    AUDIT_LOG_PATH,
    INTEGRATIONS_PATH,
    assert_problem,
    create_integration,
    integration_body,
    list_all_integrations,
    read_integration,
)


async def test_a_viewer_reads_the_list_an_integration_and_the_audit_log(
    admin_client: httpx.AsyncClient, viewer: ApiUser
) -> None:
    created = await create_integration(admin_client)

    responses = [
        await admin_client.get(INTEGRATIONS_PATH, headers=viewer.headers),
        await admin_client.get(f"{INTEGRATIONS_PATH}/{created['id']}", headers=viewer.headers),
        await admin_client.get(AUDIT_LOG_PATH, headers=viewer.headers),
    ]

    assert [response.status_code for response in responses] == [200, 200, 200]
    assert responses[0].json()["items"] == [created]


async def test_a_viewer_may_not_create(admin_client: httpx.AsyncClient, viewer: ApiUser) -> None:
    response = await admin_client.post(
        INTEGRATIONS_PATH, json=integration_body(), headers=viewer.headers
    )

    assert_problem(response, 403)
    assert await list_all_integrations(admin_client) == []


async def test_a_viewer_may_not_update(admin_client: httpx.AsyncClient, viewer: ApiUser) -> None:
    created = await create_integration(admin_client)

    response = await admin_client.patch(
        f"{INTEGRATIONS_PATH}/{created['id']}", json={"name": "Mine"}, headers=viewer.headers
    )

    assert_problem(response, 403)
    assert await read_integration(admin_client, created["id"]) == created


async def test_a_viewer_may_not_delete(admin_client: httpx.AsyncClient, viewer: ApiUser) -> None:
    created = await create_integration(admin_client)

    response = await admin_client.delete(
        f"{INTEGRATIONS_PATH}/{created['id']}", headers=viewer.headers
    )

    assert_problem(response, 403)
    assert await read_integration(admin_client, created["id"]) == created


async def test_a_viewer_may_not_reveal_a_secret(
    admin_client: httpx.AsyncClient, viewer: ApiUser
) -> None:
    created = await create_integration(admin_client)

    response = await admin_client.get(
        f"{INTEGRATIONS_PATH}/{created['id']}/secret", headers=viewer.headers
    )

    assert_problem(response, 403)
    assert "whsec_" not in response.text


async def test_a_viewer_may_not_rotate_a_secret(
    admin_client: httpx.AsyncClient, viewer: ApiUser
) -> None:
    created = await create_integration(admin_client)
    before = (await admin_client.get(f"{INTEGRATIONS_PATH}/{created['id']}/secret")).json()

    response = await admin_client.post(
        f"{INTEGRATIONS_PATH}/{created['id']}/secret/rotate", headers=viewer.headers
    )

    assert_problem(response, 403)
    after = (await admin_client.get(f"{INTEGRATIONS_PATH}/{created['id']}/secret")).json()
    assert after == before


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer rbu_" + "A" * 43,  # well formed, never issued
        "Bearer rbk_" + "A" * 43,  # an External API key's form
        "Bearer not-a-token",
        "Bearer ",
        "Bearer",
        "Basic YWxpY2U6cGFzc3dvcmQ=",
        "rbu_" + "A" * 43,
        "",
    ],
)
async def test_an_unknown_or_malformed_token_is_401_with_www_authenticate(
    client: httpx.AsyncClient, authorization: str
) -> None:
    response = await client.get(INTEGRATIONS_PATH, headers={"Authorization": authorization})

    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == 'Bearer realm="management"'


async def test_a_revoked_token_is_401(
    client: httpx.AsyncClient, admin: ApiUser, runtime: Runtime
) -> None:
    async with transaction(runtime.sessions) as session:
        (token,) = await list_tokens(session, admin.username)
        await revoke_token(session, token.id, CLI_ACTOR)

    response = await client.get(INTEGRATIONS_PATH, headers=admin.headers)

    assert_problem(response, 401)
    assert "www-authenticate" in response.headers


async def test_a_token_works_until_it_is_revoked(
    client: httpx.AsyncClient, admin: ApiUser, runtime: Runtime
) -> None:
    before = await client.get(INTEGRATIONS_PATH, headers=admin.headers)
    async with transaction(runtime.sessions) as session:
        (token,) = await list_tokens(session, admin.username)
        await revoke_token(session, token.id, CLI_ACTOR)

    after = await client.get(INTEGRATIONS_PATH, headers=admin.headers)

    assert (before.status_code, after.status_code) == (200, 401)


async def test_a_changed_character_makes_a_token_unknown(
    client: httpx.AsyncClient, admin: ApiUser
) -> None:
    last = admin.token[-1]
    forged = admin.token[:-1] + ("A" if last != "A" else "B")

    response = await client.get(INTEGRATIONS_PATH, headers={"Authorization": f"Bearer {forged}"})

    assert_problem(response, 401)


async def test_without_a_token_nothing_can_be_created(client: httpx.AsyncClient) -> None:
    response = await client.post(INTEGRATIONS_PATH, json=integration_body())

    assert_problem(response, 401)
