"""The whole manual page done with the keyboard alone: open, add, edit, delete."""

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import OVERVIEW

pytestmark = pytest.mark.browser


def _tab_to(page: Page, selector: str, limit: int = 40) -> None:
    """Press Tab until the element is focused, as a keyboard user would."""
    target = page.locator(selector)
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{selector} is not reachable with Tab")


def test_add_edit_and_delete_with_the_keyboard_only(
    page: Page, tag: str, api: httpx.Client
) -> None:
    page.goto(f"{OVERVIEW}/new")
    page.keyboard.press("Control+Backquote")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(re.escape(OVERVIEW) + "$"))

    _tab_to(page, "#add-button")
    page.keyboard.press("Enter")
    expect(page.get_by_label("Name", exact=False).first).to_be_focused()
    page.keyboard.type(f"Keyed {tag}")
    page.keyboard.press("Tab")
    page.keyboard.type("Typed without a mouse")
    page.keyboard.press("Tab")
    page.keyboard.type("key-1")
    page.keyboard.press("Tab")
    page.keyboard.type(f"KEY_{tag}")
    page.keyboard.press("Enter")
    expect(page.get_by_text(f"Integration “Keyed {tag}” saved.")).to_be_visible()

    _tab_to(page, "#search-input")
    page.keyboard.type(tag)
    page.keyboard.press("Enter")
    _tab_to(page, "#integrations-grid")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page.get_by_label("Name", exact=False).first).to_have_value(f"Keyed {tag}")
    _tab_to(page, "#field-name")
    page.keyboard.press("End")
    page.keyboard.type(" changed")
    page.keyboard.press("Enter")
    expect(page.get_by_text(f"Integration “Keyed {tag} changed” saved.")).to_be_visible()

    _tab_to(page, "#delete-button")
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("dialog").get_by_role("button", name="Delete")).to_be_focused()
    page.keyboard.press("Enter")

    expect(page.get_by_text(f"Integration “Keyed {tag} changed” deleted.")).to_be_visible()
    assert api.get("/integrations", params={"q": tag}).json()["items"] == []


def test_every_control_of_the_overview_is_labelled(page: Page) -> None:
    page.goto(OVERVIEW)

    unlabelled = page.evaluate(
        """() => Array.from(document.querySelectorAll('a, button, input, textarea, select'))
            .filter(el => el.type !== 'hidden')
            .filter(el => !(el.innerText || '').trim() && !el.getAttribute('aria-label')
                          && !(el.labels && el.labels.length))
            .map(el => el.outerHTML)"""
    )

    assert unlabelled == []
