"""The overview: columns, sorting by header, Refresh, selection, search and paging."""

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import OVERVIEW, overview_url

pytestmark = pytest.mark.browser

CreateIntegration = Callable[..., dict[str, Any]]


def _name_cells(page: Page) -> Locator:
    return page.locator("#integrations-grid tbody td.col-name")


def _expect_names(page: Page, names: list[str]) -> None:
    """Wait, as the browser may still be loading the page, until the rows show these names."""
    expect(_name_cells(page)).to_have_text(names)


def _three(create: CreateIntegration, tag: str) -> list[dict[str, Any]]:
    return [
        create(f"Bravo {tag}", f"B_{tag}", external_id="zulu"),
        create(f"Alpha {tag}", f"C_{tag}", external_id="yankee"),
        create(f"Charlie {tag}", f"A_{tag}", external_id="xray"),
    ]


def test_overview_shows_the_columns_of_the_manual(
    page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    create_integration(f"Acme {tag}", f"ACME_{tag}", description="Orders from the shop")

    page.goto(overview_url(tag))

    headers = page.locator("#integrations-grid thead th").all_inner_texts()
    assert [re.sub(r"[▲▼↕]", "", h).strip().lower() for h in headers] == [
        "name",
        "description",
        "external integration id",
        "export id",
        "last modified",
    ]
    row = page.locator("#integrations-grid tbody tr").first
    expect(row).to_contain_text(f"Acme {tag}")
    expect(row).to_contain_text("Orders from the shop")
    expect(row).to_contain_text(f"ACME_{tag}")


def test_clicking_a_header_sorts_by_that_column(
    page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    _three(create_integration, tag)
    page.goto(overview_url(tag))

    page.get_by_role("link", name="Export ID").click()

    header = page.get_by_role("columnheader", name="Export ID")
    expect(header).to_have_attribute("aria-sort", "ascending")
    expect(header).to_contain_text("▲")
    expect(page).to_have_url(re.compile(r"sort=export_id&order=asc"))
    _expect_names(page, [f"Charlie {tag}", f"Bravo {tag}", f"Alpha {tag}"])


def test_clicking_the_sorted_header_again_reverses_the_order(
    page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    _three(create_integration, tag)
    page.goto(overview_url(tag))

    page.get_by_role("link", name="Name").click()

    header = page.get_by_role("columnheader", name="Name")
    expect(header).to_have_attribute("aria-sort", "descending")
    expect(header).to_contain_text("▼")
    expect(page).to_have_url(re.compile(r"sort=name&order=desc"))
    _expect_names(page, [f"Charlie {tag}", f"Bravo {tag}", f"Alpha {tag}"])


def test_the_sort_in_the_url_reproduces_the_view(
    page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    _three(create_integration, tag)

    page.goto(overview_url(tag, sort="external_id", order="desc"))

    expect(page.get_by_role("columnheader", name="External integration ID")).to_have_attribute(
        "aria-sort", "descending"
    )
    _expect_names(page, [f"Bravo {tag}", f"Alpha {tag}", f"Charlie {tag}"])


def test_refresh_shows_a_change_made_through_the_api_without_a_page_load(
    page: Page, tag: str, create_integration: CreateIntegration, api: httpx.Client
) -> None:
    first = create_integration(f"Alpha {tag}", f"A_{tag}")
    page.goto(overview_url(tag, sort="name", order="desc"))
    page.locator(f"#row-{first['id']}").click()
    page.evaluate("window.sameDocument = true")

    create_integration(f"Bravo {tag}", f"B_{tag}")
    api.patch(f"/integrations/{first['id']}", json={"description": "Changed by a script"})
    page.get_by_role("button", name="Refresh").click()

    expect(page.locator("#integrations-grid tbody tr")).to_have_count(2)
    expect(page.locator(f"#row-{first['id']}")).to_contain_text("Changed by a script")
    _expect_names(page, [f"Bravo {tag}", f"Alpha {tag}"])
    assert page.evaluate("window.sameDocument") is True


def test_refresh_keeps_the_sort_search_and_selected_row(
    page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    rows = _three(create_integration, tag)
    page.goto(overview_url(tag, sort="export_id", order="desc"))
    page.locator(f"#row-{rows[1]['id']}").click()

    page.get_by_role("button", name="Refresh").click()

    expect(page.locator("#live-region")).to_have_text("The list is up to date.")
    expect(page.locator(f"#row-{rows[1]['id']}")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("columnheader", name="Export ID")).to_have_attribute(
        "aria-sort", "descending"
    )
    expect(page).to_have_url(re.compile(f"selected={rows[1]['id']}"))
    expect(page.get_by_role("button", name="Edit")).to_be_enabled()


def test_edit_and_delete_are_disabled_until_a_row_is_selected(
    page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    row = create_integration(f"Alpha {tag}", f"A_{tag}")
    page.goto(overview_url(tag))

    expect(page.get_by_role("link", name="Add")).to_be_visible()
    expect(page.get_by_role("button", name="Edit")).to_be_disabled()
    expect(page.get_by_role("button", name="Delete")).to_be_disabled()

    page.locator(f"#row-{row['id']}").click()

    expect(page.locator(f"#row-{row['id']}")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("button", name="Edit")).to_be_enabled()
    expect(page.get_by_role("button", name="Delete")).to_be_enabled()
    expect(page).to_have_url(re.compile(f"selected={row['id']}"))


def test_arrow_keys_move_the_selection(
    page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    rows = _three(create_integration, tag)
    page.goto(overview_url(tag))
    by_name = sorted(rows, key=lambda row: str(row["name"]))

    page.locator("#integrations-grid").focus()
    page.keyboard.press("ArrowDown")
    expect(page.locator(f"#row-{by_name[0]['id']}")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(page.locator(f"#row-{by_name[2]['id']}")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("ArrowUp")

    expect(page.locator(f"#row-{by_name[1]['id']}")).to_have_attribute("aria-selected", "true")
    expect(page.locator('#integrations-grid tr[aria-selected="true"]')).to_have_count(1)


def test_double_click_opens_the_detail_screen(
    page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    row = create_integration(f"Alpha {tag}", f"A_{tag}")
    page.goto(overview_url(tag))

    page.locator(f"#row-{row['id']}").dblclick()

    expect(page).to_have_url(re.compile(f"{OVERVIEW}/{row['id']}"))
    expect(page.get_by_label("Name")).to_have_value(f"Alpha {tag}")


def test_enter_on_the_selected_row_opens_the_detail_screen(
    page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    row = create_integration(f"Alpha {tag}", f"A_{tag}")
    page.goto(overview_url(tag, selected=row["id"]))

    page.locator("#integrations-grid").focus()
    page.keyboard.press("Enter")

    expect(page).to_have_url(re.compile(f"{OVERVIEW}/{row['id']}"))


def test_search_box_narrows_the_list(
    page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    create_integration(f"Alpha {tag}", f"A_{tag}")
    create_integration(f"Bravo {tag}", f"B_{tag}")
    page.goto(overview_url(tag))

    page.get_by_label("Search integrations").fill(f"B_{tag}")
    page.get_by_role("button", name="Search").click()

    _expect_names(page, [f"Bravo {tag}"])
    expect(page).to_have_url(re.compile(f"q=B_{tag}"))


def test_a_search_without_matches_says_so(page: Page, tag: str) -> None:
    page.goto(overview_url(tag))

    expect(page.get_by_role("heading", name=f"No integration matches “{tag}”")).to_be_visible()


def test_next_and_previous_walk_pages_of_fifty(
    page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    for number in range(51):
        create_integration(f"Item {number:02d} {tag}", f"I{number:02d}_{tag}")
    page.goto(overview_url(tag))
    expect(page.locator("#integrations-grid tbody tr")).to_have_count(50)

    page.get_by_role("link", name="Next").click()
    _expect_names(page, [f"Item 50 {tag}"])

    page.get_by_role("link", name="Previous").click()
    expect(page.locator("#integrations-grid tbody tr")).to_have_count(50)
    expect(_name_cells(page).first).to_have_text(f"Item 00 {tag}")
