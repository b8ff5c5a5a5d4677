"""An integration sees and changes only what is its own: another's ids answer like missing ones."""

from typing import Any

import httpx
from sqlalchemy import update

from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.webhooks.models import Delivery, DeliveryStatus
from tests.external.conftest import API, PUBLIC_URL, Caller


async def _owned_by(client: httpx.AsyncClient, caller: Caller) -> tuple[str, str]:
    """A webhook of the caller with one failed delivery: the ids another integration tries."""
    webhook = await client.post(
        f"{API}/webhooks",
        json={"url": PUBLIC_URL, "event_types": ["*"]},
        headers=caller.headers,
    )
    webhook_id: str = webhook.json()["id"]
    test = await client.post(f"{API}/webhooks/{webhook_id}/test", headers=caller.headers)
    delivery_id: str = test.json()["id"]
    return webhook_id, delivery_id


async def _fail(runtime: Runtime, delivery_id: str) -> None:
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(status=DeliveryStatus.FAILED.value)
        )


async def test_every_route_keeps_integrations_apart(
    client: httpx.AsyncClient, runtime: Runtime, caller: Caller, other_caller: Caller
) -> None:
    webhook_id, delivery_id = await _owned_by(client, caller)
    await _fail(runtime, delivery_id)
    patch_body = {"description": "taken over"}
    window = {"since": "2026-01-01T00:00:00Z"}
    recovery = await client.post(
        f"{API}/webhooks/{webhook_id}/recover", json=window, headers=caller.headers
    )
    recovery_id = recovery.json()["id"]
    # Each route called by the other integration on the first one's ids, next to the same
    # call on an id that does not exist at all.
    walk: dict[tuple[str, str], tuple[str, str, str, dict[str, Any] | None]] = {
        ("GET", "/webhooks/{id}"): ("GET", "/webhooks/{}", webhook_id, None),
        ("PATCH", "/webhooks/{id}"): ("PATCH", "/webhooks/{}", webhook_id, patch_body),
        ("DELETE", "/webhooks/{id}"): ("DELETE", "/webhooks/{}", webhook_id, None),
        ("POST", "/webhooks/{id}/test"): ("POST", "/webhooks/{}/test", webhook_id, None),
        ("GET", "/webhooks/{id}/deliveries"): (
            "GET",
            "/webhooks/{}/deliveries",
            webhook_id,
            None,
        ),
        ("GET", "/deliveries/{id}"): ("GET", "/deliveries/{}", delivery_id, None),
        ("POST", "/deliveries/{id}/retry"): ("POST", "/deliveries/{}/retry", delivery_id, None),
        ("GET", "/webhooks/{id}/recover"): (
            "GET",
            "/webhooks/{}/recover?since=2026-01-01T00:00:00Z",
            webhook_id,
            None,
        ),
        ("POST", "/webhooks/{id}/recover"): ("POST", "/webhooks/{}/recover", webhook_id, window),
        ("GET", "/recoveries/{id}"): ("GET", "/recoveries/{}", recovery_id, None),
    }
    other = other_caller.headers

    for method, template, owned_id, body in walk.values():
        missing_id = owned_id[:-6] + "ZZZZZZ"
        foreign = await client.request(
            method, API + template.format(owned_id), json=body, headers=other
        )
        missing = await client.request(
            method, API + template.format(missing_id), json=body, headers=other
        )
        assert foreign.status_code == 404, (method, template)
        assert foreign.json()["title"] == missing.json()["title"]
        assert foreign.json()["detail"] == missing.json()["detail"].replace(missing_id, owned_id)

    listed = await client.get(f"{API}/webhooks", headers=other)
    assert listed.json()["items"] == []
    own = (await client.get(f"{API}/integration", headers=other)).json()
    assert own["id"] == other_caller.integration_id
    assert (await client.get(f"{API}/event-types", headers=other)).status_code == 200

    # Nothing of the first integration changed, and the walk covered every route there is.
    webhook = (await client.get(f"{API}/webhooks/{webhook_id}", headers=caller.headers)).json()
    assert webhook["description"] == ""
    delivery = (await client.get(f"{API}/deliveries/{delivery_id}", headers=caller.headers)).json()
    assert delivery["status"] == "failed"
    deliveries = await client.get(f"{API}/webhooks/{webhook_id}/deliveries", headers=caller.headers)
    assert len(deliveries.json()["items"]) == 1
    walked = set(walk) | {("GET", "/webhooks"), ("GET", "/integration"), ("GET", "/event-types")}
    walked |= {("POST", "/webhooks")}
    assert walked == await _all_operations(client)


async def test_a_webhook_created_by_one_integration_is_listed_for_it_alone(
    client: httpx.AsyncClient, caller: Caller, other_caller: Caller
) -> None:
    webhook_id, _ = await _owned_by(client, caller)

    mine = (await client.get(f"{API}/webhooks", headers=caller.headers)).json()
    theirs = (await client.get(f"{API}/webhooks", headers=other_caller.headers)).json()

    assert [item["id"] for item in mine["items"]] == [webhook_id]
    assert theirs["items"] == []


async def _all_operations(client: httpx.AsyncClient) -> set[tuple[str, str]]:
    document = (await client.get(f"{API}/openapi.json")).json()
    return {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
