"""A viewer sees the integrations but none of the controls that change them, nor the secret."""

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import OVERVIEW, overview_url

pytestmark = pytest.mark.browser

CreateIntegration = Callable[..., dict[str, Any]]


def test_viewer_sees_the_list_without_add_or_delete(
    viewer_page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    row = create_integration(f"Alpha {tag}", f"A_{tag}")

    viewer_page.goto(overview_url(tag))

    expect(viewer_page.locator(f"#row-{row['id']}")).to_be_visible()
    expect(viewer_page.get_by_role("link", name="Add")).to_have_count(0)
    expect(viewer_page.get_by_role("button", name="Delete")).to_have_count(0)
    expect(viewer_page.get_by_role("button", name="Edit")).to_have_count(0)
    expect(viewer_page.get_by_role("button", name="Refresh")).to_be_visible()


def test_viewer_opens_a_read_only_detail_without_secret_controls(
    viewer_page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    row = create_integration(f"Alpha {tag}", f"A_{tag}")
    viewer_page.goto(overview_url(tag))

    viewer_page.locator(f"#row-{row['id']}").dblclick()

    expect(viewer_page).to_have_url(re.compile(f"{OVERVIEW}/{row['id']}"))
    expect(viewer_page.get_by_label("Name", exact=False).first).to_have_attribute("readonly", "")
    expect(viewer_page.get_by_role("button", name="Save")).to_have_count(0)
    expect(viewer_page.get_by_role("button", name="Reveal")).to_have_count(0)
    expect(viewer_page.get_by_role("button", name="Rotate secret")).to_have_count(0)
    expect(viewer_page.locator("#secret-section")).to_contain_text("Only administrators")
    expect(viewer_page.locator("#secret-section")).not_to_contain_text("whsec_")


def test_viewer_posts_are_refused_and_change_nothing(
    viewer_page: Page, tag: str, create_integration: CreateIntegration, api: httpx.Client
) -> None:
    row = create_integration(f"Alpha {tag}", f"A_{tag}")
    viewer_page.goto(f"{OVERVIEW}/{row['id']}")
    token = viewer_page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    base = f"{OVERVIEW}/{row['id']}"
    fields: dict[str, str | float | bool] = {
        "csrf_token": token,
        "name": "Hacked",
        "external_id": "x",
        "export_id": "X",
    }

    responses = [
        viewer_page.request.post(base, form={**fields, "version": str(row["version"])}),
        viewer_page.request.post(f"{base}/delete", form={"csrf_token": token}),
        viewer_page.request.post(f"{base}/secret/reveal", form={"csrf_token": token}),
        viewer_page.request.post(f"{base}/secret/rotate", form={"csrf_token": token}),
        viewer_page.request.post(f"{OVERVIEW}/new", form=fields),
    ]

    assert [response.status for response in responses] == [403] * 5
    assert all("whsec_" not in response.text() for response in responses)
    assert api.get(f"/integrations/{row['id']}").json()["name"] == f"Alpha {tag}"
