"""Webhook health on the overview and recovery on the webhook page, in Chromium."""

import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import OVERVIEW, overview_url, run_cli
from tests.support.server import RunningServer

pytestmark = pytest.mark.browser

PUBLIC_URL = "https://93.184.215.14/hooks/orders"
CreateIntegration = Callable[..., dict[str, Any]]


def _webhook_of(
    server: RunningServer, env: dict[str, str], export_id: str
) -> tuple[str, dict[str, str]]:
    """A webhook made through the External API with a new key; its id and the key's headers."""
    key = run_cli(env, "api-keys", "create", export_id, "--name", "browser").strip()
    headers = {"Authorization": f"Bearer {key}"}
    created = httpx.post(
        f"{server.url}/api/external/v1/webhooks",
        json={"url": PUBLIC_URL, "event_types": ["webhook.test"]},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    webhook_id: str = created.json()["id"]
    return webhook_id, headers


def _failed_deliveries(env: dict[str, str], webhook_id: str, count: int) -> None:
    """Deliveries the worker gave up on an hour ago, written straight into the server's file."""
    at = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None).isoformat(sep=" ")
    database = Path(env["REFLEXBLUE_DATA_DIR"]) / "reflexblue.sqlite3"
    with closing(sqlite3.connect(database, timeout=30)) as connection, connection:
        for n in range(count):
            event_id, delivery_id = f"evt_{webhook_id[3:]}{n}", f"dlv_{webhook_id[3:]}{n}"
            connection.execute(
                "INSERT INTO events (id, type, data, created_at)"
                " VALUES (?, 'webhook.test', '{}', ?)",
                (event_id, at),
            )
            connection.execute(
                "INSERT INTO deliveries (id, event_id, webhook_id, status, attempt_count,"
                " created_at, updated_at) VALUES (?, ?, ?, 'failed', 7, ?, ?)",
                (delivery_id, event_id, webhook_id, at, at),
            )


def test_the_overview_badges_an_integration_with_a_disabled_webhook(
    page: Page,
    server: RunningServer,
    server_env: dict[str, str],
    tag: str,
    create_integration: CreateIntegration,
) -> None:
    troubled = create_integration(f"Troubled {tag}", f"TR_{tag}")
    create_integration(f"Calm {tag}", f"CA_{tag}")
    webhook_id, headers = _webhook_of(server, server_env, f"TR_{tag}")
    disabled = httpx.patch(
        f"{server.url}/api/external/v1/webhooks/{webhook_id}",
        json={"enabled": False},
        headers=headers,
    )
    assert disabled.status_code == 200

    page.goto(overview_url(tag))

    badge = page.locator(f"#row-{troubled['id']} [data-webhook-trouble]")
    expect(badge).to_have_text("⚠ Webhooks: 1 disabled")
    expect(badge).to_have_attribute("title", "Webhooks needing attention: 1 disabled")
    expect(page.locator("[data-webhook-trouble]")).to_have_count(1)


def test_failed_deliveries_are_previewed_then_recovered_from_the_webhook_page(
    page: Page,
    server: RunningServer,
    server_env: dict[str, str],
    tag: str,
    create_integration: CreateIntegration,
) -> None:
    integration = create_integration(f"Recovering {tag}", f"RE_{tag}")
    webhook_id, _ = _webhook_of(server, server_env, f"RE_{tag}")
    _failed_deliveries(server_env, webhook_id, 3)

    page.goto(f"{OVERVIEW}/{integration['id']}/webhooks/{webhook_id}")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#recovery-preview")).to_contain_text("3 failed deliveries since")
    page.get_by_role("button", name="Recover 3 deliveries").click()

    expect(page.locator("#webhook-notice")).to_contain_text("The recovery started")
    row = page.locator("#recoveries-table tbody tr").first
    # The list refreshes itself while the recovery runs.
    expect(row.locator("[data-recovery-status]")).to_have_text("Done", timeout=20_000)
    expect(row.locator("[data-progress]")).to_have_text("3 of 3 requeued")
