"""The console's part: recovering from the webhook page, health in words, and the overview's
badge for integrations whose webhooks need attention."""

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from reflexblue.accounts.models import Role
from reflexblue.app import create_app
from reflexblue.audit.models import AuditEvent
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.core.settings import Settings
from reflexblue.webhooks.health import WebhookTrouble, webhook_trouble
from reflexblue.webhooks.models import Recovery, Webhook
from tests.conftest import make_user
from tests.console.conftest import OVERVIEW, csrf_of, log_in
from tests.delivery.conftest import Subscriber, subscribe
from tests.operations.conftest import make_deliveries

HOUR = timedelta(hours=1)


@pytest.fixture
async def browser_like(runtime: Runtime, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(settings, runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def _signed_in(runtime: Runtime, client: httpx.AsyncClient, role: Role) -> None:
    user = await make_user(runtime, role.value + "_user", role)
    assert (await log_in(client, user.username)).status_code == 303


def _page_of(shop: Subscriber) -> str:
    return f"{OVERVIEW}/{shop.integration_id}/webhooks/{shop.webhook_id}"


async def _set_health(runtime: Runtime, webhook_id: str, *, failing: int, enabled: bool) -> None:
    async with transaction(runtime.sessions) as session:
        webhook = await session.get(Webhook, webhook_id)
        assert webhook is not None
        webhook.enabled = enabled
        webhook.disabled_reason = None if enabled else "The receiver answered 410 Gone."
        webhook.failing_since = datetime.now(UTC) - HOUR if failing else None
        webhook.failure_count = failing


async def test_the_preview_names_the_number_of_failed_deliveries_since_the_time(
    runtime: Runtime, browser_like: httpx.AsyncClient
) -> None:
    shop = await subscribe(runtime, "http://127.0.0.1:9/hook")
    await make_deliveries(runtime, shop.webhook_id, 6, datetime.now(UTC) - HOUR)
    await _signed_in(runtime, browser_like, Role.ADMIN)
    since = (datetime.now(UTC) - 3 * HOUR).strftime("%Y-%m-%dT%H:%M")

    page = await browser_like.get(_page_of(shop), params={"since": since})

    assert page.status_code == 200
    preview = re.search(r'id="recovery-preview">(.*?)</p>', page.text)
    assert preview is not None
    assert "<strong>6</strong> failed deliveries since" in preview.group(1)
    assert 'id="recover-button">Recover 6 deliveries' in page.text


async def test_recover_starts_a_recovery_as_the_user_and_lists_it(
    runtime: Runtime, browser_like: httpx.AsyncClient
) -> None:
    shop = await subscribe(runtime, "http://127.0.0.1:9/hook")
    await make_deliveries(runtime, shop.webhook_id, 2, datetime.now(UTC) - HOUR)
    await _signed_in(runtime, browser_like, Role.ADMIN)
    since = (datetime.now(UTC) - 3 * HOUR).strftime("%Y-%m-%dT%H:%M")
    token = csrf_of((await browser_like.get(_page_of(shop))).text)

    answer = await browser_like.post(
        _page_of(shop) + "/recover", data={"csrf_token": token, "since": since}
    )
    back = await browser_like.get(answer.headers["location"])

    assert answer.status_code == 303
    async with transaction(runtime.sessions) as session:
        recovery = await session.scalar(select(Recovery))
        audited = await session.scalar(
            select(AuditEvent).where(AuditEvent.action == "webhook.recovery_requested")
        )
    assert recovery is not None
    assert recovery.total == 2
    assert recovery.requested_by == "user:admin_user"
    assert audited is not None
    assert audited.actor == "user:admin_user"
    assert f'id="recovery-{recovery.id}"' in back.text
    assert "0 of 2 requeued" in back.text


async def test_recover_without_the_csrf_token_changes_nothing(
    runtime: Runtime, browser_like: httpx.AsyncClient
) -> None:
    shop = await subscribe(runtime, "http://127.0.0.1:9/hook")
    await _signed_in(runtime, browser_like, Role.ADMIN)

    answer = await browser_like.post(
        _page_of(shop) + "/recover", data={"since": "2026-12-01T08:00"}
    )

    assert answer.status_code == 403
    async with transaction(runtime.sessions) as session:
        assert await session.scalar(select(Recovery)) is None


@pytest.mark.parametrize(
    ("since", "message"),
    [("next tuesday", "Enter a date and time"), ("2999-01-01T00:00", "Must not be in the future")],
    ids=["not-a-time", "future"],
)
async def test_a_bad_time_is_shown_beside_the_field_and_kept(
    runtime: Runtime, browser_like: httpx.AsyncClient, since: str, message: str
) -> None:
    shop = await subscribe(runtime, "http://127.0.0.1:9/hook")
    await _signed_in(runtime, browser_like, Role.ADMIN)
    token = csrf_of((await browser_like.get(_page_of(shop))).text)

    answer = await browser_like.post(
        _page_of(shop) + "/recover", data={"csrf_token": token, "since": since}
    )

    assert answer.status_code == 422
    error = re.search(r'id="recovery-since-error">(.*?)</p>', answer.text)
    assert error is not None
    assert message in error.group(1)
    assert f'value="{since}"' in answer.text
    async with transaction(runtime.sessions) as session:
        assert await session.scalar(select(Recovery)) is None


async def test_a_viewer_sees_recoveries_but_no_recovery_form(
    runtime: Runtime, browser_like: httpx.AsyncClient
) -> None:
    shop = await subscribe(runtime, "http://127.0.0.1:9/hook")
    await _signed_in(runtime, browser_like, Role.VIEWER)

    page = await browser_like.get(_page_of(shop), params={"since": "2026-12-01T08:00"})
    refused = await browser_like.post(
        _page_of(shop) + "/recover",
        data={"csrf_token": csrf_of(page.text), "since": "2026-12-01T08:00"},
    )

    assert "Recover failed deliveries" in page.text
    assert 'id="recovery-preview-button"' not in page.text
    assert 'id="recover-button"' not in page.text
    assert refused.status_code == 403


async def test_a_failing_webhook_reads_failing_with_its_count_in_the_console(
    runtime: Runtime, browser_like: httpx.AsyncClient
) -> None:
    shop = await subscribe(runtime, "http://127.0.0.1:9/hook")
    await _set_health(runtime, shop.webhook_id, failing=4, enabled=True)
    await _signed_in(runtime, browser_like, Role.VIEWER)

    page = await browser_like.get(_page_of(shop))

    state = re.search(r'id="webhook-state">(.*?)</span>', page.text, re.DOTALL)
    assert state is not None
    assert "Failing since" in state.group(1)
    assert "(4 failed attempts in a row)" in state.group(1)


async def test_trouble_is_counted_per_integration_for_the_given_ones_only(
    runtime: Runtime,
) -> None:
    shop = await subscribe(runtime, "http://127.0.0.1:9/a", export_id="SHOP")
    healthy = await subscribe(runtime, "http://127.0.0.1:9/b", export_id="HEALTHY")
    elsewhere = await subscribe(runtime, "http://127.0.0.1:9/c", export_id="ELSEWHERE")
    await _set_health(runtime, shop.webhook_id, failing=2, enabled=True)
    await _set_health(runtime, elsewhere.webhook_id, failing=0, enabled=False)
    async with transaction(runtime.sessions) as session:
        for _ in range(2):
            session.add(
                Webhook(
                    integration_id=shop.integration_id,
                    url="http://127.0.0.1:9/d",
                    event_types=["*"],
                    enabled=False,
                    disabled_reason="The receiver answered 410 Gone.",
                )
            )

    async with transaction(runtime.sessions) as session:
        found = await webhook_trouble(session, [shop.integration_id, healthy.integration_id])

    assert found == {shop.integration_id: WebhookTrouble(failing=1, disabled=2)}


async def test_the_overview_marks_integrations_whose_webhooks_need_attention(
    runtime: Runtime, browser_like: httpx.AsyncClient
) -> None:
    shop = await subscribe(runtime, "http://127.0.0.1:9/a", export_id="SHOP")
    healthy = await subscribe(runtime, "http://127.0.0.1:9/b", export_id="HEALTHY")
    await _set_health(runtime, shop.webhook_id, failing=3, enabled=True)
    await _signed_in(runtime, browser_like, Role.VIEWER)

    page = await browser_like.get(OVERVIEW)

    shop_row = re.search(rf'id="row-{shop.integration_id}".*?</tr>', page.text, re.DOTALL)
    healthy_row = re.search(rf'id="row-{healthy.integration_id}".*?</tr>', page.text, re.DOTALL)
    assert shop_row is not None
    assert healthy_row is not None
    assert 'title="Webhooks needing attention: 1 failing"' in shop_row.group(0)
    assert "data-webhook-trouble" not in healthy_row.group(0)
