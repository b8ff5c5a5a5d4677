"""Deleting an integration behind a confirmation dialog."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import overview_url

pytestmark = pytest.mark.browser

CreateIntegration = Callable[..., dict[str, Any]]


def _three(create: CreateIntegration, tag: str) -> list[dict[str, Any]]:
    return [
        create(f"{name} {tag}", f"{name.upper()}_{tag}") for name in ("Alpha", "Bravo", "Charlie")
    ]


def test_delete_dialog_names_the_integration_and_what_goes_with_it(
    page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    row = create_integration(f"Alpha {tag}", f"A_{tag}")
    page.goto(overview_url(tag, selected=row["id"]))

    page.get_by_role("button", name="Delete").click()

    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"Delete the integration “Alpha {tag}”?")
    expect(dialog).to_contain_text("webhooks")
    expect(dialog).to_contain_text("API keys")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()


def test_confirmed_delete_removes_the_row_and_selects_the_next(
    page: Page, tag: str, create_integration: CreateIntegration, api: httpx.Client
) -> None:
    alpha, bravo, charlie = _three(create_integration, tag)
    page.goto(overview_url(tag, selected=bravo["id"]))

    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()

    expect(page.locator(f"#row-{bravo['id']}")).to_have_count(0)
    expect(page.get_by_text(f"Integration “Bravo {tag}” deleted.")).to_be_visible()
    expect(page.locator(f"#row-{charlie['id']}")).to_have_attribute("aria-selected", "true")
    assert api.get(f"/integrations/{bravo['id']}").status_code == 404
    assert api.get(f"/integrations/{alpha['id']}").status_code == 200


def test_deleting_the_last_row_selects_the_one_before(
    page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    _, bravo, charlie = _three(create_integration, tag)
    page.goto(overview_url(tag, selected=charlie["id"]))

    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()

    expect(page.locator(f"#row-{charlie['id']}")).to_have_count(0)
    expect(page.locator(f"#row-{bravo['id']}")).to_have_attribute("aria-selected", "true")


def test_cancelled_delete_changes_nothing(
    page: Page, tag: str, create_integration: CreateIntegration, api: httpx.Client
) -> None:
    row = create_integration(f"Alpha {tag}", f"A_{tag}")
    page.goto(overview_url(tag, selected=row["id"]))

    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()

    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(page.locator(f"#row-{row['id']}")).to_have_attribute("aria-selected", "true")
    assert api.get(f"/integrations/{row['id']}").status_code == 200


def test_escape_cancels_the_delete_dialog(
    page: Page, tag: str, create_integration: CreateIntegration, api: httpx.Client
) -> None:
    row = create_integration(f"Alpha {tag}", f"A_{tag}")
    page.goto(overview_url(tag, selected=row["id"]))

    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")

    expect(page.get_by_role("dialog")).to_be_hidden()
    assert api.get(f"/integrations/{row['id']}").status_code == 200


def test_the_delete_dialog_keeps_focus_inside(
    page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    row = create_integration(f"Alpha {tag}", f"A_{tag}")
    page.goto(overview_url(tag, selected=row["id"]))
    page.get_by_role("button", name="Delete").click()

    for _ in range(6):
        page.keyboard.press("Tab")
        inside = page.evaluate(
            "document.getElementById('delete-dialog').contains(document.activeElement)"
        )
        # Chromium may pass focus to the browser's own UI between the last and first
        # control, but never to the page behind the modal dialog.
        outside_page = page.evaluate("document.activeElement === document.body")
        assert inside or outside_page
