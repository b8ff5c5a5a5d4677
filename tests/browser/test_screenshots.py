"""Screenshots of the two screens at 1280 by 800 pixels for the README, made from a real run.

A server of its own, so that the pictures show only the realistic examples below.
"""

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import ADMIN_PASSWORD, OVERVIEW, VIEWPORT, log_in, run_cli
from tests.support.server import running_server

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

EXAMPLES = (
    ("Acme Webshop", "ACME_SHOP", "acme-shop-prod", "Orders and stock levels from the webshop."),
    ("Northwind ERP", "NORTHWIND", "nw-erp-7781", "Invoices and customer master data, nightly."),
    ("Globex Payroll", "GLOBEX_PAY", "globex/payroll", "Salary runs and cost centre bookings."),
    ("Initech CRM", "INITECH_CRM", "initech-crm-eu", "Leads and opportunities, both ways."),
    ("Umbrella Logistics", "UMBRELLA_LOG", "umb-log-02", "Shipment status updates by webhook."),
    ("Contoso Helpdesk", "CONTOSO_DESK", "contoso-hd", "Tickets raised from customer orders."),
)


@pytest.fixture(scope="module")
def showcase() -> Iterator[tuple[str, list[str]]]:
    """A server with the examples above; its URL and the integrations' ids."""
    with tempfile.TemporaryDirectory(prefix="reflexblue-showcase-") as data_dir:
        env = {
            "REFLEXBLUE_DATA_DIR": data_dir,
            "REFLEXBLUE_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "REFLEXBLUE_LOG_LEVEL": "WARNING",
            # The example webhook's URL is a literal documentation address: nothing here
            # resolves names, and no event is published, so nothing is ever sent to it.
            "REFLEXBLUE_ALLOW_PRIVATE_TARGETS": "true",
        }
        with running_server(env) as server:
            token = json.loads(
                run_cli(env, "tokens", "create", "admin", "--name", "docs", "--json")
            )
            headers = {"Authorization": f"Bearer {token['token']}"}
            with httpx.Client(base_url=f"{server.url}/api/management", headers=headers) as api:
                ids = [
                    api.post(
                        "/integrations",
                        json={
                            "name": name,
                            "export_id": export_id,
                            "external_id": external_id,
                            "description": description,
                        },
                    ).json()["id"]
                    for name, export_id, external_id, description in EXAMPLES
                ]
            _add_key_and_webhook(server.url, env, EXAMPLES[0][1])
            yield server.url, ids


def _add_key_and_webhook(url: str, env: dict[str, str], export_id: str) -> None:
    """The first example's API keys and webhook, so the detail screen shows its sections."""
    run_cli(env, "api-keys", "create", export_id, "--name", "Webshop staging")
    key = run_cli(env, "api-keys", "create", export_id, "--name", "Webshop production").strip()
    webhook = httpx.post(
        f"{url}/api/external/v1/webhooks",
        json={
            "url": "https://203.0.113.24/reflexblue/events",
            "description": "Order events for the webshop.",
            "event_types": ["*"],
        },
        headers={"Authorization": f"Bearer {key}"},
    )
    assert webhook.status_code == 201, webhook.text


def _signed_in_page(browser: Browser, url: str) -> Page:
    page = browser.new_context(base_url=url, viewport=VIEWPORT).new_page()
    log_in(page, "admin", ADMIN_PASSWORD)
    return page


def test_screenshot_of_the_overview_is_saved(
    browser: Browser, showcase: tuple[str, list[str]]
) -> None:
    url, ids = showcase
    page = _signed_in_page(browser, url)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page.goto(f"{OVERVIEW}?sort=name&order=asc&selected={ids[1]}")
    expect(page.locator(f"#row-{ids[1]}")).to_have_attribute("aria-selected", "true")
    page.screenshot(path=str(SCREENSHOTS / "overview.png"))

    assert (SCREENSHOTS / "overview.png").stat().st_size > 10_000


def test_screenshot_of_the_detail_screen_is_saved(
    browser: Browser, showcase: tuple[str, list[str]]
) -> None:
    url, ids = showcase
    page = _signed_in_page(browser, url)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page.goto(f"{OVERVIEW}/{ids[0]}")
    expect(page.get_by_role("heading", name="Secret key")).to_be_visible()
    expect(page.locator("#api-keys-table")).to_contain_text("Webshop production")
    expect(page.locator("#webhooks-table")).to_contain_text("Healthy")
    page.screenshot(path=str(SCREENSHOTS / "detail.png"))

    assert (SCREENSHOTS / "detail.png").stat().st_size > 10_000
