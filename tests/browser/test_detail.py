"""Adding and editing an integration on the detail screen, as the manual describes."""

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import OVERVIEW, ContextFactory, overview_url

pytestmark = pytest.mark.browser

CreateIntegration = Callable[..., dict[str, Any]]


def _fill(page: Page, **values: str) -> None:
    labels = {
        "name": "Name",
        "description": "Description",
        "external_id": "External integration ID",
        "export_id": "Export ID",
    }
    for field, value in values.items():
        page.get_by_label(labels[field], exact=False).first.fill(value)


def test_add_saves_and_shows_the_integration_selected_with_a_confirmation(
    page: Page, tag: str, api: httpx.Client
) -> None:
    page.goto(overview_url(tag))
    page.get_by_role("link", name="Add").click()
    expect(page.get_by_role("heading", name="New integration", level=1)).to_be_visible()

    _fill(
        page,
        name=f"Acme {tag}",
        description="Orders",
        external_id="acme-1",
        export_id=f"ACME_{tag}",
    )
    page.get_by_role("button", name="Save").click()

    expect(
        page.get_by_role("status").filter(has_text=f"Integration “Acme {tag}” saved.")
    ).to_be_visible()
    selected = page.locator('#integrations-grid tr[aria-selected="true"]')
    expect(selected).to_contain_text(f"Acme {tag}")
    expect(page).to_have_url(re.compile(f"q={tag}"))
    stored = api.get("/integrations", params={"q": tag}).json()["items"]
    assert [(item["name"], item["export_id"]) for item in stored] == [
        (f"Acme {tag}", f"ACME_{tag}")
    ]


def test_required_fields_are_marked(page: Page) -> None:
    page.goto(f"{OVERVIEW}/new")

    for label in ("Name", "External integration ID", "Export ID"):
        field = page.get_by_label(label, exact=False).first
        expect(field).to_have_attribute("aria-required", "true")
    expect(page.get_by_label("Description")).not_to_have_attribute("aria-required", "true")
    expect(
        page.get_by_text("Letters (A–Z, a–z), digits (0–9) and the underscore (_) only")
    ).to_be_visible()


def test_add_with_errors_shows_them_beside_the_fields_and_keeps_what_was_typed(
    page: Page, tag: str, api: httpx.Client
) -> None:
    page.goto(f"{OVERVIEW}/new")

    _fill(page, name="   ", description="Kept text", external_id="ext-1", export_id="has-hyphen")
    page.get_by_role("button", name="Save").click()

    name = page.get_by_label("Name", exact=False).first
    export_id = page.get_by_label("Export ID", exact=False).first
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_have_accessible_description(re.compile("required and may not be blank"))
    expect(export_id).to_have_attribute("aria-invalid", "true")
    expect(export_id).to_have_accessible_description(re.compile("only letters"))
    expect(export_id).to_have_value("has-hyphen")
    expect(page.get_by_label("Description")).to_have_value("Kept text")
    expect(page.get_by_role("alert")).to_contain_text("Some fields need a change")
    assert api.get("/integrations", params={"q": "has-hyphen"}).json()["items"] == []


def test_a_duplicate_export_id_is_shown_beside_the_export_id(
    page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    create_integration(f"First {tag}", f"DUP_{tag}")
    page.goto(f"{OVERVIEW}/new")

    _fill(page, name=f"Second {tag}", external_id="x", export_id=f"dup_{tag}")
    page.get_by_role("button", name="Save").click()

    export_id = page.get_by_label("Export ID", exact=False).first
    expect(export_id).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#error-export_id")).to_contain_text("already exists")
    expect(page.get_by_label("Name", exact=False).first).to_have_value(f"Second {tag}")


def test_edit_changes_the_selected_integration(
    page: Page, tag: str, create_integration: CreateIntegration, api: httpx.Client
) -> None:
    row = create_integration(f"Before {tag}", f"E_{tag}")
    page.goto(overview_url(tag))
    page.locator(f"#row-{row['id']}").click()

    page.get_by_role("button", name="Edit").click()
    _fill(page, name=f"After {tag}")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_text(f"Integration “After {tag}” saved.")).to_be_visible()
    expect(page.locator(f"#row-{row['id']}")).to_have_attribute("aria-selected", "true")
    expect(page.locator(f"#row-{row['id']}")).to_contain_text(f"After {tag}")
    assert api.get(f"/integrations/{row['id']}").json()["name"] == f"After {tag}"


def test_cancel_returns_without_saving(
    page: Page, tag: str, create_integration: CreateIntegration, api: httpx.Client
) -> None:
    row = create_integration(f"Kept {tag}", f"K_{tag}")
    page.goto(f"{OVERVIEW}/{row['id']}?q={tag}")

    _fill(page, name="Not saved")
    page.get_by_role("link", name="Cancel").click()

    expect(page.locator(f"#row-{row['id']}")).to_have_attribute("aria-selected", "true")
    assert api.get(f"/integrations/{row['id']}").json()["name"] == f"Kept {tag}"


def test_a_stale_save_is_refused_and_keeps_what_was_typed(
    new_context: ContextFactory,
    admin_login: Path,
    tag: str,
    create_integration: CreateIntegration,
    api: httpx.Client,
) -> None:
    row = create_integration(f"Shared {tag}", f"S_{tag}")
    first = new_context(storage_state=admin_login).new_page()
    second = new_context(storage_state=admin_login).new_page()
    first.goto(f"{OVERVIEW}/{row['id']}")
    second.goto(f"{OVERVIEW}/{row['id']}")

    _fill(first, description="Saved first")
    first.get_by_role("button", name="Save").click()
    expect(first.get_by_text("saved.")).to_be_visible()
    _fill(second, description="Typed second")
    second.get_by_role("button", name="Save").click()

    expect(second.get_by_role("alert")).to_contain_text("changed by someone else")
    expect(second.get_by_label("Description")).to_have_value("Typed second")
    expect(second.locator("#saved-description")).to_contain_text("Saved first")
    expect(second.get_by_role("link", name="Load the saved values")).to_be_visible()
    assert api.get(f"/integrations/{row['id']}").json()["description"] == "Saved first"


def test_saving_again_after_a_conflict_applies_the_typed_values(
    new_context: ContextFactory,
    admin_login: Path,
    tag: str,
    create_integration: CreateIntegration,
    api: httpx.Client,
) -> None:
    row = create_integration(f"Shared {tag}", f"S_{tag}")
    page = new_context(storage_state=admin_login).new_page()
    page.goto(f"{OVERVIEW}/{row['id']}")
    api.patch(f"/integrations/{row['id']}", json={"description": "From a script"})
    _fill(page, description="Mine")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("changed by someone else")

    page.get_by_role("button", name="Save").click()

    expect(page.get_by_text(f"Integration “Shared {tag}” saved.")).to_be_visible()
    assert api.get(f"/integrations/{row['id']}").json()["description"] == "Mine"
