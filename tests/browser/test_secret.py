"""The secret key on the detail screen: masked, Reveal, Copy, Rotate secret."""

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import OVERVIEW, ContextFactory

pytestmark = pytest.mark.browser

CreateIntegration = Callable[..., dict[str, Any]]


def test_the_secret_is_masked_until_revealed(
    page: Page, tag: str, create_integration: CreateIntegration, api: httpx.Client
) -> None:
    row = create_integration(f"Alpha {tag}", f"A_{tag}")
    secret = api.get(f"/integrations/{row['id']}/secret").json()["secret"]
    page.goto(f"{OVERVIEW}/{row['id']}")

    expect(page.locator("#secret-value")).not_to_contain_text(secret)
    assert secret not in page.content()

    page.get_by_role("button", name="Reveal").click()

    expect(page.locator("#secret-value")).to_have_text(secret)


def test_a_reveal_is_audited(
    page: Page, tag: str, create_integration: CreateIntegration, api: httpx.Client
) -> None:
    row = create_integration(f"Alpha {tag}", f"A_{tag}")
    page.goto(f"{OVERVIEW}/{row['id']}")

    page.get_by_role("button", name="Reveal").click()
    expect(page.get_by_role("button", name="Copy")).to_be_visible()

    events = api.get("/audit-log", params={"limit": 200}).json()["items"]
    reveals = [
        event
        for event in events
        if event.get("action") == "integration.secret_revealed"
        and event.get("target_id") == row["id"]
    ]
    assert len(reveals) == 1, reveals


def test_copy_puts_the_secret_on_the_clipboard(
    new_context: ContextFactory,
    admin_login: Path,
    tag: str,
    create_integration: CreateIntegration,
    api: httpx.Client,
) -> None:
    context = new_context(
        storage_state=admin_login, permissions=["clipboard-read", "clipboard-write"]
    )
    page = context.new_page()
    row = create_integration(f"Alpha {tag}", f"A_{tag}")
    page.goto(f"{OVERVIEW}/{row['id']}")

    page.get_by_role("button", name="Reveal").click()
    page.get_by_role("button", name="Copy").click()

    expect(page.locator("#copy-status")).to_have_text("Copied")
    secret = api.get(f"/integrations/{row['id']}/secret").json()["secret"]
    assert page.evaluate("navigator.clipboard.readText()") == secret


def test_rotate_asks_first_and_explains_the_grace_period(
    page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    row = create_integration(f"Alpha {tag}", f"A_{tag}")
    page.goto(f"{OVERVIEW}/{row['id']}")

    page.get_by_role("button", name="Rotate secret").click()

    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("24 hours")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()


def test_rotate_makes_a_new_secret_and_shows_when_the_old_one_expires(
    page: Page, tag: str, create_integration: CreateIntegration, api: httpx.Client
) -> None:
    row = create_integration(f"Alpha {tag}", f"A_{tag}")
    before = api.get(f"/integrations/{row['id']}/secret").json()["secret"]
    page.goto(f"{OVERVIEW}/{row['id']}")

    page.get_by_role("button", name="Rotate secret").click()
    page.get_by_role("dialog").get_by_role("button", name="Rotate secret").click()

    expect(page.get_by_text("A new secret key was made.")).to_be_visible()
    expect(page.locator("#previous-secret-note")).to_contain_text(
        re.compile("previous secret key still signs webhook requests until")
    )
    after = api.get(f"/integrations/{row['id']}/secret").json()
    assert after["secret"] != before
    assert after["previous_secret_expires_at"] is not None


def test_a_new_integration_says_its_secret_comes_with_the_first_save(page: Page) -> None:
    page.goto(f"{OVERVIEW}/new")

    section = page.locator("#secret-section")

    expect(section).to_contain_text("generates the secret key when you first save")
    expect(section.get_by_role("button")).to_have_count(0)
