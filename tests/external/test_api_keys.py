"""API keys through the Management API: shown once, stored as a hash, listed, revoked."""

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from reflexblue.audit.models import AuditEvent
from reflexblue.core.crypto import hash_token
from reflexblue.core.database import transaction, utcnow
from reflexblue.core.runtime import Runtime
from reflexblue.integrations.models import ApiKey
from reflexblue.webhooks.models import Webhook
from tests.conftest import ApiUser
from tests.external.conftest import API, PUBLIC_URL, Caller

MANAGEMENT = "/api/management/integrations"


async def _new_integration(admin_client: httpx.AsyncClient, export_id: str = "SHOP") -> str:
    response = await admin_client.post(
        MANAGEMENT, json={"name": "Shop", "external_id": "shop-1", "export_id": export_id}
    )
    assert response.status_code == 201, response.text
    integration_id: str = response.json()["id"]
    return integration_id


async def _new_key(
    admin_client: httpx.AsyncClient, integration_id: str, **extra: Any
) -> dict[str, Any]:
    response = await admin_client.post(
        f"{MANAGEMENT}/{integration_id}/api-keys", json={"name": "ci", **extra}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_new_key_is_returned_once_with_its_value(admin_client: httpx.AsyncClient) -> None:
    integration_id = await _new_integration(admin_client)

    created = await _new_key(admin_client, integration_id)

    assert set(created) == {"id", "name", "key", "created_at", "expires_at"}
    assert created["key"].startswith("rbk_")
    assert len(created["key"]) >= len("rbk_") + 43  # 32 random bytes in base64url


async def test_new_key_works_against_the_external_api(admin_client: httpx.AsyncClient) -> None:
    integration_id = await _new_integration(admin_client)
    created = await _new_key(admin_client, integration_id)

    response = await admin_client.get(
        f"{API}/integration", headers={"Authorization": f"Bearer {created['key']}"}
    )

    assert response.json()["id"] == integration_id


async def test_key_is_stored_only_as_its_hash(
    admin_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    integration_id = await _new_integration(admin_client)
    created = await _new_key(admin_client, integration_id)

    async with transaction(runtime.sessions) as session:
        row = await session.get(ApiKey, created["id"])
        stored = (await session.execute(text("SELECT * FROM api_keys"))).all()

    assert row is not None
    assert row.key_hash == hash_token(created["key"])
    assert created["key"] not in repr(stored)


async def test_key_list_shows_last_four_and_never_the_key(
    admin_client: httpx.AsyncClient,
) -> None:
    integration_id = await _new_integration(admin_client)
    created = await _new_key(admin_client, integration_id)

    response = await admin_client.get(f"{MANAGEMENT}/{integration_id}/api-keys")

    [listed] = response.json()["items"]
    assert listed["last_four"] == created["key"][-4:]
    assert listed["name"] == "ci"
    assert listed["last_used_at"] is None
    assert listed["revoked_at"] is None
    assert created["key"] not in response.text
    assert "key_hash" not in listed


async def test_key_with_expiry_reports_it(admin_client: httpx.AsyncClient) -> None:
    integration_id = await _new_integration(admin_client)
    expires = (utcnow() + timedelta(days=3)).isoformat()

    created = await _new_key(admin_client, integration_id, expires_at=expires)

    assert created["expires_at"] is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": 5}, "name"),
        ({}, "name"),
        ({"name": "ci", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "ci", "expires_at": "2030-01-01T00:00:00"}, "expires_at"),
        ({"name": "ci", "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "ci", "scopes": ["all"]}, "scopes"),
    ],
)
async def test_bad_key_input_is_refused_and_creates_nothing(
    admin_client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    integration_id = await _new_integration(admin_client)

    response = await admin_client.post(f"{MANAGEMENT}/{integration_id}/api-keys", json=body)

    assert response.status_code == 422
    assert field in {error["field"] for error in response.json()["errors"]}
    listed = await admin_client.get(f"{MANAGEMENT}/{integration_id}/api-keys")
    assert listed.json()["items"] == []


async def test_key_name_with_markup_is_stored_literally(admin_client: httpx.AsyncClient) -> None:
    integration_id = await _new_integration(admin_client)
    name = "<script>alert(1)</script>'; DROP TABLE api_keys; --"

    created = await _new_key(admin_client, integration_id, name=name)

    assert created["name"] == name
    listed = await admin_client.get(f"{MANAGEMENT}/{integration_id}/api-keys")
    assert listed.json()["items"][0]["name"] == name


async def test_key_for_an_unknown_integration_is_404(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.post(f"{MANAGEMENT}/int_missing/api-keys", json={"name": "ci"})

    assert response.status_code == 404


async def test_revoked_key_stops_working_at_once(admin_client: httpx.AsyncClient) -> None:
    integration_id = await _new_integration(admin_client)
    created = await _new_key(admin_client, integration_id)
    key_headers = {"Authorization": f"Bearer {created['key']}"}

    revoked = await admin_client.delete(f"{MANAGEMENT}/{integration_id}/api-keys/{created['id']}")

    assert revoked.status_code == 204
    assert (await admin_client.get(f"{API}/integration", headers=key_headers)).status_code == 401
    listed = await admin_client.get(f"{MANAGEMENT}/{integration_id}/api-keys")
    assert listed.json()["items"][0]["revoked_at"] is not None


async def test_key_cannot_be_revoked_through_another_integration(
    admin_client: httpx.AsyncClient,
) -> None:
    first = await _new_integration(admin_client, "FIRST")
    second = await _new_integration(admin_client, "SECOND")
    created = await _new_key(admin_client, first)

    response = await admin_client.delete(f"{MANAGEMENT}/{second}/api-keys/{created['id']}")

    assert response.status_code == 404
    key_headers = {"Authorization": f"Bearer {created['key']}"}
    assert (await admin_client.get(f"{API}/integration", headers=key_headers)).status_code == 200


async def test_viewer_may_list_keys_but_not_create_or_revoke(
    admin_client: httpx.AsyncClient, viewer: ApiUser
) -> None:
    integration_id = await _new_integration(admin_client)
    created = await _new_key(admin_client, integration_id)
    path = f"{MANAGEMENT}/{integration_id}/api-keys"

    listed = await admin_client.get(path, headers=viewer.headers)
    made = await admin_client.post(path, json={"name": "x"}, headers=viewer.headers)
    revoked = await admin_client.delete(f"{path}/{created['id']}", headers=viewer.headers)

    assert (listed.status_code, made.status_code, revoked.status_code) == (200, 403, 403)


async def test_key_creation_and_revocation_are_audited_without_the_key(
    admin_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    integration_id = await _new_integration(admin_client)
    created = await _new_key(admin_client, integration_id)
    await admin_client.delete(f"{MANAGEMENT}/{integration_id}/api-keys/{created['id']}")

    async with transaction(runtime.sessions) as session:
        events = list(
            await session.scalars(select(AuditEvent).where(AuditEvent.target_id == created["id"]))
        )

    assert [event.action for event in events] == ["api_key.created", "api_key.revoked"]
    assert all(event.actor == "user:alice" for event in events)
    assert created["key"] not in repr([(e.changes, e.target_name) for e in events])


async def test_deleting_an_integration_removes_its_keys_and_webhooks(
    admin_client: httpx.AsyncClient, runtime: Runtime, caller: Caller
) -> None:
    webhook = await admin_client.post(
        f"{API}/webhooks",
        json={"url": PUBLIC_URL, "event_types": ["*"]},
        headers=caller.headers,
    )
    assert webhook.status_code == 201

    deleted = await admin_client.delete(f"{MANAGEMENT}/{caller.integration_id}")

    assert deleted.status_code == 204
    async with transaction(runtime.sessions) as session:
        keys = await session.scalar(select(func.count()).select_from(ApiKey))
        webhooks = await session.scalar(select(func.count()).select_from(Webhook))
    assert (keys, webhooks) == (0, 0)
    response = await admin_client.get(f"{API}/integration", headers=caller.headers)
    assert response.status_code == 401
