"""The event type catalogue through the Management API."""

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from reflexblue.audit.models import AuditEvent
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from tests.conftest import ApiUser
from tests.external.conftest import API, PUBLIC_URL, Caller

PATH = "/api/management/event-types"
ORDER_SCHEMA = {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}


async def test_catalogue_starts_with_the_types_the_product_sends(
    admin_client: httpx.AsyncClient,
) -> None:
    response = await admin_client.get(PATH)

    names = [item["name"] for item in response.json()["items"]]
    assert names == ["webhook.disabled", "webhook.test"]


async def test_event_type_is_created_with_its_schema(admin_client: httpx.AsyncClient) -> None:
    body = {"name": "order.created", "description": "An order came in.", "schema": ORDER_SCHEMA}

    response = await admin_client.post(PATH, json=body)

    assert response.status_code == 201
    assert response.json() == body
    listed = (await admin_client.get(PATH)).json()["items"]
    assert [item["name"] for item in listed] == [
        "order.created",
        "webhook.disabled",
        "webhook.test",
    ]


async def test_created_event_type_can_be_subscribed_to(
    admin_client: httpx.AsyncClient, caller: Caller
) -> None:
    await admin_client.post(PATH, json={"name": "order.created"})

    response = await admin_client.post(
        f"{API}/webhooks",
        json={"url": PUBLIC_URL, "event_types": ["order.created"]},
        headers=caller.headers,
    )

    assert response.status_code == 201


async def test_duplicate_event_type_is_a_conflict(admin_client: httpx.AsyncClient) -> None:
    await admin_client.post(PATH, json={"name": "order.created"})

    response = await admin_client.post(PATH, json={"name": "order.created"})

    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "name"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "Order.Created"}, "name"),
        ({"name": "order"}, "name"),
        ({"name": "order.created'; DROP TABLE event_types; --"}, "name"),
        ({"name": "a." + "b" * 99}, "name"),
        ({"name": 3}, "name"),
        ({"name": "order.created", "description": "d" * 501}, "description"),
        ({"name": "order.created", "schema": {"type": 12}}, "schema"),
        ({"name": "order.created", "schema": []}, "schema"),
        ({"name": "order.created", "version": 2}, "version"),
    ],
)
async def test_bad_event_type_is_refused_and_creates_nothing(
    admin_client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    before = len((await admin_client.get(PATH)).json()["items"])

    response = await admin_client.post(PATH, json=body)

    assert response.status_code == 422
    assert field in {error["field"] for error in response.json()["errors"]}
    assert len((await admin_client.get(PATH)).json()["items"]) == before


async def test_description_with_markup_is_stored_literally(
    admin_client: httpx.AsyncClient,
) -> None:
    description = "<b>bold</b> & '; DELETE FROM event_types; --"

    await admin_client.post(PATH, json={"name": "order.created", "description": description})

    listed = (await admin_client.get(PATH)).json()["items"]
    assert listed[0]["description"] == description


async def test_viewer_may_list_but_not_create(client: httpx.AsyncClient, viewer: ApiUser) -> None:
    listed = await client.get(PATH, headers=viewer.headers)
    created = await client.post(PATH, json={"name": "order.created"}, headers=viewer.headers)

    assert (listed.status_code, created.status_code) == (200, 403)


async def test_event_type_creation_is_audited(
    admin_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await admin_client.post(PATH, json={"name": "order.created"})

    async with transaction(runtime.sessions) as session:
        event = await session.scalar(
            select(AuditEvent).where(AuditEvent.action == "event_type.created")
        )

    assert event is not None
    assert (event.target_name, event.actor) == ("order.created", "user:alice")
