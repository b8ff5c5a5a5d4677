"""The screens at a desktop size and in a narrow window."""

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import OVERVIEW, overview_url

pytestmark = pytest.mark.browser


def test_in_a_narrow_window_the_table_scrolls_and_the_page_does_not(
    page: Page, tag: str, create_integration: Callable[..., dict[str, Any]]
) -> None:
    create_integration(
        f"A rather long integration name {tag}",
        f"LONG_{tag}",
        description="A description long enough to need some room on screen.",
    )
    page.set_viewport_size({"width": 400, "height": 800})

    page.goto(overview_url(tag))

    expect(page.get_by_role("button", name="Menu")).to_be_visible()
    expect(page.get_by_role("button", name="Refresh")).to_be_in_viewport()
    page_overflows = page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"
    )
    table_scrolls = page.evaluate(
        "(() => { const box = document.querySelector('.table-scroll');"
        " return box.scrollWidth > box.clientWidth; })()"
    )
    assert page_overflows is False
    assert table_scrolls is True


def test_the_detail_screen_fits_a_narrow_window(page: Page) -> None:
    page.set_viewport_size({"width": 400, "height": 800})

    page.goto(f"{OVERVIEW}/new")

    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    expect(page.get_by_role("button", name="Save")).to_be_visible()
