"""The audit log: every change and every reveal, who and when, and never a secret."""

from datetime import datetime
from typing import Any

import httpx

from reflexblue.core.database import utcnow
from tests.conftest import ApiUser
from tests.support.management import (
    AUDIT_LOG_PATH,
    INTEGRATIONS_PATH,
    assert_problem,
    create_integration,
    integration_body,
)


async def _events(client: httpx.AsyncClient, action: str | None = None) -> list[dict[str, Any]]:
    response = await client.get(AUDIT_LOG_PATH, params={"limit": 200})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return [item for item in items if action is None or item["action"] == action]


async def test_creating_records_who_when_and_every_field(
    admin_client: httpx.AsyncClient, admin: ApiUser
) -> None:
    started = utcnow()
    created = await create_integration(admin_client)

    (event,) = await _events(admin_client, "integration.created")

    assert event["actor"] == f"user:{admin.username}"
    assert (event["target_type"], event["target_id"]) == ("integration", created["id"])
    assert event["target_name"] == created["name"]
    assert started <= datetime.fromisoformat(event["occurred_at"]) <= utcnow()
    assert event["changes"] == {
        field: {"to": created[field]}
        for field in ("name", "description", "external_id", "export_id")
    }


async def test_updating_records_only_the_changed_fields_from_and_to(
    admin_client: httpx.AsyncClient,
) -> None:
    created = await create_integration(admin_client)

    await admin_client.patch(
        f"{INTEGRATIONS_PATH}/{created['id']}",
        json={"name": "Renamed", "external_id": created["external_id"]},
    )

    (event,) = await _events(admin_client, "integration.updated")
    assert event["changes"] == {"name": {"from": created["name"], "to": "Renamed"}}
    assert event["target_id"] == created["id"]


async def test_an_update_that_changes_nothing_records_nothing(
    admin_client: httpx.AsyncClient,
) -> None:
    created = await create_integration(admin_client)

    await admin_client.patch(f"{INTEGRATIONS_PATH}/{created['id']}", json={"name": created["name"]})

    assert await _events(admin_client, "integration.updated") == []


async def test_deleting_is_recorded(admin_client: httpx.AsyncClient) -> None:
    created = await create_integration(admin_client)

    await admin_client.delete(f"{INTEGRATIONS_PATH}/{created['id']}")

    (event,) = await _events(admin_client, "integration.deleted")
    assert (event["target_id"], event["target_name"]) == (created["id"], created["name"])


async def test_every_reveal_and_rotation_is_recorded(
    admin_client: httpx.AsyncClient, admin: ApiUser
) -> None:
    created = await create_integration(admin_client)
    path = f"{INTEGRATIONS_PATH}/{created['id']}/secret"

    await admin_client.get(path)
    await admin_client.get(path)
    rotated = (await admin_client.post(f"{path}/rotate")).json()

    reveals = await _events(admin_client, "integration.secret_revealed")
    (rotation,) = await _events(admin_client, "integration.secret_rotated")
    assert [event["actor"] for event in reveals] == [f"user:{admin.username}"] * 2
    recorded_expiry = rotation["changes"]["previous_secret_expires_at"]["to"]
    assert datetime.fromisoformat(recorded_expiry) == datetime.fromisoformat(
        rotated["previous_secret_expires_at"]
    )


async def test_no_secret_is_ever_recorded(admin_client: httpx.AsyncClient) -> None:
    created = await create_integration(admin_client)
    path = f"{INTEGRATIONS_PATH}/{created['id']}/secret"
    first = (await admin_client.get(path)).json()
    rotated = (await admin_client.post(f"{path}/rotate")).json()
    await admin_client.get(path)

    response = await admin_client.get(AUDIT_LOG_PATH, params={"limit": 200})

    assert "whsec_" not in response.text
    for secret in (first["secret"], rotated["secret"]):
        assert secret.removeprefix("whsec_") not in response.text


async def test_refused_changes_record_nothing(
    admin_client: httpx.AsyncClient, viewer: ApiUser
) -> None:
    created = await create_integration(admin_client)
    before = await _events(admin_client)
    item = f"{INTEGRATIONS_PATH}/{created['id']}"

    await admin_client.post(INTEGRATIONS_PATH, json=integration_body())  # 409
    await admin_client.post(INTEGRATIONS_PATH, json=integration_body(export_id="a-b"))  # 422
    await admin_client.patch(item, json={"name": "X"}, headers={"If-Match": '"9"'})  # 412
    await admin_client.delete(item, headers=viewer.headers)  # 403
    await admin_client.get(f"{item}/secret", headers=viewer.headers)  # 403

    assert await _events(admin_client) == before


async def test_the_log_is_newest_first_and_pages_by_cursor(
    admin_client: httpx.AsyncClient,
) -> None:
    for number in range(5):
        await create_integration(admin_client, export_id=f"E{number}")
    everything = await _events(admin_client)
    pages: list[list[dict[str, Any]]] = []
    cursor = None

    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = (await admin_client.get(AUDIT_LOG_PATH, params=params)).json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break

    walked = [event for page in pages for event in page]
    assert walked == everything
    assert [event["id"] for event in walked] == sorted(
        (event["id"] for event in walked), reverse=True
    )
    assert [event["target_name"] for event in walked[:5]] == ["Acme Warehouse"] * 5
    assert all(len(page) == 2 for page in pages[:-1])


async def test_bad_audit_log_parameters_are_422(admin_client: httpx.AsyncClient) -> None:
    for parameter, value in [
        ("cursor", "abc"),
        ("cursor", "-1"),
        ("cursor", "9" * 19),
        ("limit", "0"),
        ("limit", "x"),
        ("limit", "9" * 5000),
    ]:
        response = await admin_client.get(AUDIT_LOG_PATH, params={parameter: value})

        assert_problem(response, 422, field=parameter)


async def test_the_audit_log_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get(AUDIT_LOG_PATH)

    assert_problem(response, 401)
