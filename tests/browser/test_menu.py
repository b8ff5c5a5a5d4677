"""Opening the Integrations overview: by the Ctrl+~ menu, by the Menu button, by link."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import OVERVIEW

pytestmark = pytest.mark.browser


def _open_some_other_screen(page: Page) -> None:
    page.goto(f"{OVERVIEW}/new")
    expect(page.get_by_role("heading", name="New integration")).to_be_visible()


def test_ctrl_backquote_opens_the_menu_tree(page: Page) -> None:
    _open_some_other_screen(page)

    page.keyboard.press("Control+Backquote")

    tree = page.get_by_role("tree", name="Menu")
    expect(tree).to_be_visible()
    expect(page.get_by_role("treeitem", name="Management", exact=False).first).to_be_visible()
    expect(page.get_by_role("treeitem", name="Integrations")).to_be_focused()


def test_ctrl_tilde_opens_the_menu_tree(page: Page) -> None:
    _open_some_other_screen(page)

    page.keyboard.press("Control+~")

    expect(page.get_by_role("tree", name="Menu")).to_be_visible()
    expect(page.get_by_role("button", name="Menu")).to_have_attribute("aria-expanded", "true")


def test_menu_path_management_general_integrations_opens_the_overview(page: Page) -> None:
    _open_some_other_screen(page)
    page.keyboard.press("Control+Backquote")

    page.keyboard.press("Home")
    expect(page.get_by_role("treeitem").filter(has_text="Management").first).to_be_focused()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("treeitem", name="Integrations")).to_be_focused()
    page.keyboard.press("Enter")

    expect(page).to_have_url(re.compile(re.escape(OVERVIEW) + "$"))
    expect(page.get_by_role("heading", name="Integrations", level=1)).to_be_visible()


def test_left_arrow_collapses_and_right_arrow_expands_a_menu_branch(page: Page) -> None:
    page.goto(OVERVIEW)
    page.keyboard.press("Control+Backquote")
    page.keyboard.press("Home")
    management = page.locator('[role="treeitem"][aria-expanded]').first

    page.keyboard.press("ArrowLeft")
    expect(management).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_role("treeitem", name="Integrations")).to_be_hidden()

    page.keyboard.press("ArrowRight")
    expect(management).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("treeitem", name="Integrations")).to_be_visible()


def test_escape_closes_the_menu_and_returns_focus(page: Page) -> None:
    _open_some_other_screen(page)
    name_field = page.get_by_label("Name")
    name_field.focus()

    page.keyboard.press("Control+Backquote")
    expect(page.get_by_role("tree", name="Menu")).to_be_visible()
    page.keyboard.press("Escape")

    expect(page.get_by_role("tree", name="Menu")).to_be_hidden()
    expect(name_field).to_be_focused()


def test_menu_button_opens_the_menu_for_the_mouse(page: Page) -> None:
    _open_some_other_screen(page)

    page.get_by_role("button", name="Menu").click()
    page.get_by_role("treeitem", name="Integrations").click()

    expect(page).to_have_url(re.compile(re.escape(OVERVIEW) + "$"))


def test_each_menu_leaf_is_a_real_link(page: Page) -> None:
    page.goto(OVERVIEW)
    page.get_by_role("button", name="Menu").click()

    leaf = page.get_by_role("treeitem", name="Integrations")

    expect(leaf).to_have_attribute("href", OVERVIEW)


def test_the_overview_link_opens_the_screen_directly(page: Page) -> None:
    page.goto(OVERVIEW)

    expect(page).to_have_title(re.compile("^Integrations"))
    expect(page.get_by_role("heading", name="Integrations", level=1)).to_be_visible()
