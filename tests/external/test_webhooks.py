"""Webhooks through the External API: create, read, list, change, delete, and their rules."""

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from reflexblue.audit.models import AuditEvent
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from tests.external.conftest import API, PUBLIC_URL, client_with, create_webhook

VALID: dict[str, Any] = {"url": PUBLIC_URL, "event_types": ["webhook.test"]}


async def test_created_webhook_reads_as_the_spec_says(api: httpx.AsyncClient) -> None:
    response = await api.post(f"{API}/webhooks", json={**VALID, "description": "Orders to the ERP"})

    assert response.status_code == 201
    webhook = response.json()
    assert set(webhook) == {
        "id",
        "url",
        "description",
        "event_types",
        "enabled",
        "disabled_reason",
        "failing_since",
        "failure_count",
        "health",
        "created_at",
        "updated_at",
    }
    assert webhook["id"].startswith("wh_")
    assert (webhook["url"], webhook["enabled"], webhook["disabled_reason"]) == (
        PUBLIC_URL,
        True,
        None,
    )
    assert response.headers["location"] == f"{API}/webhooks/{webhook['id']}"


async def test_created_webhook_can_be_read_back(api: httpx.AsyncClient) -> None:
    created = await create_webhook(api)

    response = await api.get(f"{API}/webhooks/{created['id']}")

    assert response.json() == created


async def test_webhook_list_pages_with_a_cursor(api: httpx.AsyncClient) -> None:
    made = [(await create_webhook(api, url=f"{PUBLIC_URL}/{n}"))["id"] for n in range(5)]

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get(f"{API}/webhooks", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == made


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"cursor": "garbage!"}, "cursor")],
)
async def test_bad_paging_parameters_are_refused(
    api: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    response = await api.get(f"{API}/webhooks", params=params)

    assert response.status_code == 422
    assert field in {error["field"] for error in response.json()["errors"]}


async def test_webhook_for_an_unknown_event_type_is_refused(api: httpx.AsyncClient) -> None:
    response = await api.post(f"{API}/webhooks", json={**VALID, "event_types": ["order.gone"]})

    assert response.status_code == 422
    assert "order.gone" in response.json()["errors"][0]["message"]
    assert (await api.get(f"{API}/webhooks")).json()["items"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_types": ["*"]}, "url"),
        ({"url": PUBLIC_URL}, "event_types"),
        ({**VALID, "url": ""}, "url"),
        ({**VALID, "url": "  "}, "url"),
        ({**VALID, "url": "ftp://example.com/x"}, "url"),
        ({**VALID, "url": "https://a:b@example.com/x"}, "url"),
        ({**VALID, "url": "https://example.com/" + "x" * 2000}, "url"),
        ({**VALID, "url": ["https://example.com"]}, "url"),
        ({**VALID, "event_types": []}, "event_types"),
        ({**VALID, "event_types": "*"}, "event_types"),
        ({**VALID, "event_types": ["*", "webhook.test"]}, "event_types"),
        ({**VALID, "description": "x" * 501}, "description"),
        ({**VALID, "description": 7}, "description"),
        ({**VALID, "enabled": False}, "enabled"),
        ({**VALID, "id": "wh_mine"}, "id"),
    ],
)
async def test_bad_webhook_input_is_refused_and_creates_nothing(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await api.post(f"{API}/webhooks", json=body)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert field in {error["field"] for error in response.json()["errors"]}
    assert (await api.get(f"{API}/webhooks")).json()["items"] == []


async def test_body_that_is_not_an_object_is_refused(api: httpx.AsyncClient) -> None:
    response = await api.post(f"{API}/webhooks", json=["not", "an", "object"])

    assert response.status_code == 422


async def test_malformed_json_is_a_400(api: httpx.AsyncClient) -> None:
    response = await api.post(
        f"{API}/webhooks", content=b'{"url": ', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/hook",
        "http://2130706433/hook",
        "http://0177.0.0.1/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/hook",
        "http://10.1.2.3/hook",
    ],
)
async def test_private_target_is_refused_by_default(api: httpx.AsyncClient, url: str) -> None:
    response = await api.post(f"{API}/webhooks", json={**VALID, "url": url})

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "url"
    assert (await api.get(f"{API}/webhooks")).json()["items"] == []


async def test_private_target_is_accepted_when_allowed(runtime: Runtime, caller: Any) -> None:
    async with client_with(runtime, allow_private_targets=True) as http:
        response = await http.post(
            f"{API}/webhooks",
            json={**VALID, "url": "http://localhost:9000/hook"},
            headers=caller.headers,
        )

    assert response.status_code == 201


async def test_host_that_does_not_resolve_is_refused(api: httpx.AsyncClient) -> None:
    response = await api.post(
        f"{API}/webhooks", json={**VALID, "url": "https://no-such-host.invalid/x"}
    )

    assert response.status_code == 422
    assert "could not be resolved" in response.json()["errors"][0]["message"]


async def test_changing_the_url_to_a_private_target_is_refused(api: httpx.AsyncClient) -> None:
    created = await create_webhook(api)

    response = await api.patch(
        f"{API}/webhooks/{created['id']}", json={"url": "http://127.0.0.1/x"}
    )

    assert response.status_code == 422
    assert (await api.get(f"{API}/webhooks/{created['id']}")).json()["url"] == PUBLIC_URL


async def test_webhooks_per_integration_are_limited(runtime: Runtime, caller: Any) -> None:
    async with client_with(runtime, max_webhooks_per_integration=2) as http:
        http.headers.update(caller.headers)
        await create_webhook(http, url=f"{PUBLIC_URL}/1")
        await create_webhook(http, url=f"{PUBLIC_URL}/2")

        response = await http.post(f"{API}/webhooks", json=VALID)

    assert response.status_code == 422
    assert "at most 2 webhooks" in response.json()["detail"]


async def test_text_with_markup_and_sql_is_stored_literally(api: httpx.AsyncClient) -> None:
    description = "<img src=x onerror=alert(1)> '; DROP TABLE webhooks; --"
    url = f"{PUBLIC_URL}?q=%27%20OR%201=1--&x=<b>"

    response = await api.post(
        f"{API}/webhooks", json={**VALID, "url": url, "description": description}
    )

    read = (await api.get(f"{API}/webhooks/{response.json()['id']}")).json()
    assert (read["url"], read["description"]) == (url, description)


async def test_webhook_subscribes_to_every_type(api: httpx.AsyncClient) -> None:
    created = await create_webhook(api, event_types=["*"])

    assert created["event_types"] == ["*"]


async def test_patch_changes_only_the_given_fields(api: httpx.AsyncClient) -> None:
    created = await create_webhook(api)

    response = await api.patch(
        f"{API}/webhooks/{created['id']}", json={"description": "Now described"}
    )

    changed = response.json()
    assert changed["description"] == "Now described"
    assert (changed["url"], changed["event_types"]) == (created["url"], created["event_types"])
    assert changed["updated_at"] > created["updated_at"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": None}, "url"),
        ({"event_types": []}, "event_types"),
        ({"event_types": ["order.gone"]}, "event_types"),
        ({"enabled": "no"}, "enabled"),
        ({"description": "x" * 501}, "description"),
        ({"secret": "x"}, "secret"),
    ],
)
async def test_bad_patch_is_refused_and_changes_nothing(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    created = await create_webhook(api)

    response = await api.patch(f"{API}/webhooks/{created['id']}", json=body)

    assert response.status_code == 422
    assert field in {error["field"] for error in response.json()["errors"]}
    assert (await api.get(f"{API}/webhooks/{created['id']}")).json() == created


async def test_disabling_and_enabling_a_webhook(api: httpx.AsyncClient) -> None:
    created = await create_webhook(api)
    path = f"{API}/webhooks/{created['id']}"

    disabled = (await api.patch(path, json={"enabled": False})).json()
    enabled = (await api.patch(path, json={"enabled": True})).json()

    assert (disabled["enabled"], disabled["disabled_reason"] is not None) == (False, True)
    assert (enabled["enabled"], enabled["disabled_reason"]) == (True, None)


async def test_deleted_webhook_is_gone(api: httpx.AsyncClient) -> None:
    created = await create_webhook(api)

    deleted = await api.delete(f"{API}/webhooks/{created['id']}")

    assert deleted.status_code == 204
    assert (await api.get(f"{API}/webhooks/{created['id']}")).status_code == 404
    assert (await api.get(f"{API}/webhooks")).json()["items"] == []


async def test_webhook_changes_are_audited_as_the_integration(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    created = await create_webhook(api)
    await api.delete(f"{API}/webhooks/{created['id']}")

    async with transaction(runtime.sessions) as session:
        events = list(
            await session.scalars(select(AuditEvent).where(AuditEvent.target_id == created["id"]))
        )

    assert [event.action for event in events] == ["webhook.created", "webhook.deleted"]
    assert events[0].actor == "api_key:ERP_ONE/tests"


async def test_event_types_are_listed(api: httpx.AsyncClient) -> None:
    response = await api.get(f"{API}/event-types")

    assert response.json() == {
        "items": [
            {
                "name": "webhook.disabled",
                "description": "Sent to the operator's webhook when a webhook is disabled "
                "automatically.",
                "schema": None,
            },
            {
                "name": "webhook.test",
                "description": "Sent on request to check that a webhook's receiver answers.",
                "schema": None,
            },
        ],
        "next_cursor": None,
    }
