"""API keys, webhooks and deliveries on an integration's detail screen, over HTTP."""

import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction, utcnow
from reflexblue.core.errors import Unauthenticated
from reflexblue.core.runtime import Runtime
from reflexblue.integrations.api_keys import (
    ApiKeyCreate,
    authenticate_api_key,
    create_api_key,
    list_api_keys,
)
from reflexblue.integrations.models import Integration
from reflexblue.integrations.schemas import IntegrationCreate
from reflexblue.integrations.service import create_integration
from reflexblue.webhooks.deliveries import queue_test_event
from reflexblue.webhooks.models import Attempt, Delivery, DeliveryStatus, Webhook
from reflexblue.webhooks.schemas import WebhookCreate
from reflexblue.webhooks.service import create_webhook
from tests.conftest import ApiUser
from tests.console.conftest import OVERVIEW, csrf_of, log_in

_KEY = re.compile(r"rbk_[A-Za-z0-9_\-]+")


async def _integration(runtime: Runtime, export_id: str = "SHOP") -> Integration:
    async with transaction(runtime.sessions) as session:
        return await create_integration(
            session,
            runtime.box,
            IntegrationCreate(name=f"Shop {export_id}", external_id="ext-1", export_id=export_id),
            CLI_ACTOR,
        )


async def _webhook(
    runtime: Runtime, integration_id: str, url: str = "https://example.com/hook", **state: object
) -> Webhook:
    description = str(state.pop("description", ""))
    async with transaction(runtime.sessions) as session:
        data = WebhookCreate(url=url, description=description, event_types=["webhook.test"])
        webhook = await create_webhook(
            session, integration_id, data, CLI_ACTOR, max_per_integration=10
        )
        for name, value in state.items():
            setattr(webhook, name, value)
    return webhook


async def _failed_delivery(
    runtime: Runtime, integration_id: str, webhook_id: str, body: str = "try later"
) -> str:
    """A delivery that gave up after one attempt answered with a 500."""
    async with transaction(runtime.sessions) as session:
        queued = await queue_test_event(session, integration_id, webhook_id)
        delivery = await session.get(Delivery, queued.id)
        assert delivery is not None
        delivery.status = DeliveryStatus.FAILED.value
        delivery.attempt_count = 1
        delivery.next_attempt_at = None
        session.add(
            Attempt(
                delivery_id=delivery.id,
                duration_ms=12,
                response_status=500,
                response_body=body,
                error="http_status",
            )
        )
    return queued.id


async def _delivery_status(runtime: Runtime, delivery_id: str) -> str:
    async with transaction(runtime.sessions) as session:
        delivery = await session.get(Delivery, delivery_id)
        assert delivery is not None
        return delivery.status


def _detail_path(integration: Integration) -> str:
    return f"{OVERVIEW}/{integration.id}"


def _webhook_path(integration: Integration, webhook: Webhook) -> str:
    return f"{OVERVIEW}/{integration.id}/webhooks/{webhook.id}"


async def test_the_detail_screen_lists_the_keys_with_their_last_four_and_state(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    integration = await _integration(runtime)
    async with transaction(runtime.sessions) as session:
        created = await create_api_key(
            session, integration.id, ApiKeyCreate(name="Webshop production"), CLI_ACTOR
        )

    response = await signed_in.get(_detail_path(integration))

    assert response.status_code == 200
    row = response.text.split(f'id="key-{created.id}"')[1].split("</tr>")[0]
    assert "Webshop production" in row
    assert f"…{created.key[-4:]}" in row
    assert "Active" in row
    assert created.key not in response.text


async def test_the_detail_screen_shows_each_webhook_state_in_words(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    integration = await _integration(runtime)
    since = utcnow() - timedelta(hours=2)
    await _webhook(runtime, integration.id, "https://example.com/ok")
    await _webhook(runtime, integration.id, "https://example.com/failing", failing_since=since)
    await _webhook(
        runtime,
        integration.id,
        "https://example.com/off",
        enabled=False,
        disabled_reason="Failed for 3 days",
    )

    text = (await signed_in.get(_detail_path(integration))).text

    assert "Healthy" in text
    assert f'Failing since <time datetime="{since.isoformat(timespec="seconds")}"' in text
    assert "Disabled: Failed for 3 days" in text


async def test_a_new_key_is_shown_once_and_opens_the_external_api(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    integration = await _integration(runtime)
    page = await signed_in.get(_detail_path(integration))

    created = await signed_in.post(
        f"{_detail_path(integration)}/api-keys",
        data={"csrf_token": csrf_of(page.text), "name": "Nightly import", "expires_in_days": "30"},
    )

    assert created.status_code == 200
    assert "Copy it now: it is not shown again" in created.text
    found = _KEY.search(created.text)
    assert found
    key = found.group(0)
    async with transaction(runtime.sessions) as session:
        owner, _ = await authenticate_api_key(session, key)
    assert owner.id == integration.id
    again = await signed_in.get(_detail_path(integration))
    assert key not in again.text
    assert "Nightly import" in again.text


async def test_an_htmx_create_answers_with_the_keys_section_only(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    integration = await _integration(runtime)
    token = csrf_of((await signed_in.get(_detail_path(integration))).text)

    response = await signed_in.post(
        f"{_detail_path(integration)}/api-keys",
        data={"name": "Webshop"},
        headers={"HX-Request": "true", "X-CSRF-Token": token},
    )

    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section class="panel" id="api-keys-section"')
    assert _KEY.search(response.text)


@pytest.mark.parametrize("days", ["abc", "0", "-3", "2.5", "100000"])
async def test_a_bad_expiry_is_refused_and_no_key_is_made(
    runtime: Runtime, signed_in: httpx.AsyncClient, days: str
) -> None:
    integration = await _integration(runtime)
    token = csrf_of((await signed_in.get(_detail_path(integration))).text)

    response = await signed_in.post(
        f"{_detail_path(integration)}/api-keys",
        data={"csrf_token": token, "name": "Webshop", "expires_in_days": days},
    )

    assert response.status_code == 422
    assert "Enter a whole number of days from 1 to 3650" in response.text
    assert not _KEY.search(response.text)
    async with transaction(runtime.sessions) as session:
        assert await list_api_keys(session, integration.id) == []


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
async def test_a_missing_or_too_long_key_name_is_refused(
    runtime: Runtime, signed_in: httpx.AsyncClient, name: str
) -> None:
    integration = await _integration(runtime)
    token = csrf_of((await signed_in.get(_detail_path(integration))).text)

    response = await signed_in.post(
        f"{_detail_path(integration)}/api-keys", data={"csrf_token": token, "name": name}
    )

    assert response.status_code == 422
    assert 'id="key-name-error"' in response.text
    async with transaction(runtime.sessions) as session:
        assert await list_api_keys(session, integration.id) == []


async def test_revoke_stops_the_key_and_says_so(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    integration = await _integration(runtime)
    async with transaction(runtime.sessions) as session:
        created = await create_api_key(session, integration.id, ApiKeyCreate(name="Old"), CLI_ACTOR)
    token = csrf_of((await signed_in.get(_detail_path(integration))).text)

    response = await signed_in.post(
        f"{_detail_path(integration)}/api-keys/{created.id}/revoke", data={"csrf_token": token}
    )

    assert response.status_code == 303
    page = await signed_in.get(response.headers["location"])
    assert "The API key was revoked" in page.text
    row = page.text.split(f'id="key-{created.id}"')[1].split("</tr>")[0]
    assert "Revoked" in row
    with pytest.raises(Unauthenticated):
        async with transaction(runtime.sessions) as session:
            await authenticate_api_key(session, created.key)


async def test_revoke_without_the_csrf_token_is_refused_and_the_key_still_works(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    integration = await _integration(runtime)
    async with transaction(runtime.sessions) as session:
        created = await create_api_key(
            session, integration.id, ApiKeyCreate(name="Kept"), CLI_ACTOR
        )

    response = await signed_in.post(
        f"{_detail_path(integration)}/api-keys/{created.id}/revoke", data={}
    )

    assert response.status_code == 403
    async with transaction(runtime.sessions) as session:
        owner, _ = await authenticate_api_key(session, created.key)
    assert owner.id == integration.id


async def test_a_key_of_another_integration_cannot_be_revoked_through_this_one(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    mine = await _integration(runtime, "MINE")
    theirs = await _integration(runtime, "THEIRS")
    async with transaction(runtime.sessions) as session:
        created = await create_api_key(session, theirs.id, ApiKeyCreate(name="Theirs"), CLI_ACTOR)
    token = csrf_of((await signed_in.get(_detail_path(mine))).text)

    response = await signed_in.post(
        f"{_detail_path(mine)}/api-keys/{created.id}/revoke", data={"csrf_token": token}
    )

    assert response.status_code == 404
    async with transaction(runtime.sessions) as session:
        owner, _ = await authenticate_api_key(session, created.key)
    assert owner.id == theirs.id


async def test_a_viewer_sees_the_lists_without_any_buttons(
    runtime: Runtime, visitor: httpx.AsyncClient, viewer_account: ApiUser
) -> None:
    integration = await _integration(runtime)
    async with transaction(runtime.sessions) as session:
        await create_api_key(session, integration.id, ApiKeyCreate(name="Seen"), CLI_ACTOR)
    webhook = await _webhook(runtime, integration.id)
    await _failed_delivery(runtime, integration.id, webhook.id)
    await log_in(visitor, viewer_account.username)

    detail = (await visitor.get(_detail_path(integration))).text
    webhook_page = (await visitor.get(_webhook_path(integration, webhook))).text

    assert "Seen" in detail
    assert webhook.url in detail
    assert "Create API key" not in detail
    assert ">Revoke<" not in detail
    assert "Attempts of this delivery" in webhook_page
    assert "Send test" not in webhook_page
    assert ">Retry<" not in webhook_page


@pytest.mark.parametrize(
    "action", ["api-keys", "api-keys/{key}/revoke", "webhooks/{webhook}/test", "retry"]
)
async def test_a_viewer_is_refused_every_change(
    runtime: Runtime, visitor: httpx.AsyncClient, viewer_account: ApiUser, action: str
) -> None:
    integration = await _integration(runtime)
    async with transaction(runtime.sessions) as session:
        created = await create_api_key(session, integration.id, ApiKeyCreate(name="K"), CLI_ACTOR)
    webhook = await _webhook(runtime, integration.id)
    delivery_id = await _failed_delivery(runtime, integration.id, webhook.id)
    await log_in(visitor, viewer_account.username)
    token = csrf_of((await visitor.get(_detail_path(integration))).text)
    retry = f"webhooks/{webhook.id}/deliveries/{delivery_id}/retry"
    path = retry if action == "retry" else action.format(key=created.id, webhook=webhook.id)

    response = await visitor.post(
        f"{_detail_path(integration)}/{path}", data={"csrf_token": token, "name": "Mine"}
    )

    assert response.status_code == 403
    async with transaction(runtime.sessions) as session:
        keys = await list_api_keys(session, integration.id)
        deliveries = list(await session.scalars(select(Delivery)))
    assert [(key.name, key.revoked_at) for key in keys] == [("K", None)]
    assert [each.status for each in deliveries] == ["failed"]


async def test_send_test_queues_a_test_delivery_for_the_webhook(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    integration = await _integration(runtime)
    webhook = await _webhook(runtime, integration.id)
    page = await signed_in.get(_webhook_path(integration, webhook))
    assert "No deliveries to this webhook yet" in page.text

    response = await signed_in.post(
        f"{_webhook_path(integration, webhook)}/test", data={"csrf_token": csrf_of(page.text)}
    )

    assert response.status_code == 303
    shown = await signed_in.get(response.headers["location"])
    assert "A test event is on its way" in shown.text
    async with transaction(runtime.sessions) as session:
        deliveries = list(await session.scalars(select(Delivery)))
    assert [(each.webhook_id, each.status) for each in deliveries] == [(webhook.id, "pending")]
    assert f'id="delivery-{deliveries[0].id}"' in shown.text
    assert runtime.delivery_doorbell.is_set()


async def test_retry_puts_a_failed_delivery_back_in_the_queue(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    integration = await _integration(runtime)
    webhook = await _webhook(runtime, integration.id)
    delivery_id = await _failed_delivery(runtime, integration.id, webhook.id)
    page = await signed_in.get(_webhook_path(integration, webhook))

    response = await signed_in.post(
        f"{_webhook_path(integration, webhook)}/deliveries/{delivery_id}/retry",
        data={"csrf_token": csrf_of(page.text)},
    )

    assert response.status_code == 303
    assert (
        "The delivery is queued again" in (await signed_in.get(response.headers["location"])).text
    )
    assert await _delivery_status(runtime, delivery_id) == "pending"


async def test_retry_of_a_delivery_that_has_not_failed_says_why_not(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    integration = await _integration(runtime)
    webhook = await _webhook(runtime, integration.id)
    async with transaction(runtime.sessions) as session:
        queued = await queue_test_event(session, integration.id, webhook.id)
    page = await signed_in.get(_webhook_path(integration, webhook))

    response = await signed_in.post(
        f"{_webhook_path(integration, webhook)}/deliveries/{queued.id}/retry",
        data={"csrf_token": csrf_of(page.text)},
    )

    assert response.status_code == 409
    assert "Only a failed delivery can be retried; this one is pending." in response.text
    assert await _delivery_status(runtime, queued.id) == "pending"


async def test_a_webhook_of_another_integration_is_not_found_here(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    mine = await _integration(runtime, "MINE")
    theirs = await _integration(runtime, "THEIRS")
    webhook = await _webhook(runtime, theirs.id)

    response = await signed_in.get(_webhook_path(mine, webhook))

    assert response.status_code == 404


async def test_html_in_a_webhook_or_a_response_body_is_shown_as_text(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    integration = await _integration(runtime)
    webhook = await _webhook(
        runtime,
        integration.id,
        "https://example.com/<img/src=x>",
        description="<script>alert(1)</script>",
    )
    await _failed_delivery(runtime, integration.id, webhook.id, body="<b>boom</b>")

    detail = (await signed_in.get(_detail_path(integration))).text
    webhook_page = (await signed_in.get(_webhook_path(integration, webhook))).text

    for text in (detail, webhook_page):
        assert "<script>alert(1)</script>" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "<img/src=x>" not in text
        assert "https://example.com/&lt;img/src=x&gt;" in text
    assert "<b>boom</b>" not in webhook_page
    assert '<pre class="response-body">&lt;b&gt;boom&lt;/b&gt;</pre>' in webhook_page
