"""API keys and webhooks on the detail screen, in Chromium against a real server."""

import json
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import (
    ADMIN_PASSWORD,
    OVERVIEW,
    VIEWPORT,
    ContextFactory,
    log_in,
    run_cli,
)
from tests.support.server import RunningServer, running_server

pytestmark = pytest.mark.browser

CreateIntegration = Callable[..., dict[str, Any]]


def test_a_new_key_is_shown_once_copied_and_revoked_through_the_dialog(
    new_context: ContextFactory, admin_login: Path, tag: str, create_integration: CreateIntegration
) -> None:
    context = new_context(
        storage_state=admin_login, permissions=["clipboard-read", "clipboard-write"]
    )
    page = context.new_page()
    row = create_integration(f"Keys {tag}", f"K_{tag}")
    page.goto(f"{OVERVIEW}/{row['id']}")

    page.get_by_label("Key label").fill("Webshop production")
    page.get_by_role("button", name="Create API key").click()

    expect(page.locator("#new-key")).to_contain_text("Copy it now: it is not shown again")
    key = page.locator("#new-key-value").inner_text().strip()
    assert key.startswith("rbk_")
    page.locator("#copy-key-button").click()
    expect(page.locator("#copy-key-status")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == key

    page.reload()
    expect(page.locator("#api-keys-table")).to_contain_text("Webshop production")
    assert key not in page.content()

    page.get_by_role("button", name="Revoke API key Webshop production").click()
    dialog = page.get_by_role("dialog", name="Revoke the API key “Webshop production”?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Revoke key").click()

    expect(page.get_by_role("status").filter(has_text="The API key was revoked")).to_be_visible()
    expect(page.locator("#api-keys-table tbody tr")).to_contain_text("Revoked")


class _Receiver(BaseHTTPRequestHandler):
    """Answers every webhook request with 200 and a short body."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = b"received <ok>"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver_url() -> Iterator[str]:
    """A real HTTP receiver on a loopback port, in a thread of this process."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture(scope="module")
def private_server() -> Iterator[tuple[RunningServer, dict[str, str]]]:
    """A server of its own that may deliver to loopback addresses, as the receiver needs."""
    with tempfile.TemporaryDirectory(prefix="reflexblue-sections-") as data_dir:
        env = {
            "REFLEXBLUE_DATA_DIR": data_dir,
            "REFLEXBLUE_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "REFLEXBLUE_ALLOW_PRIVATE_TARGETS": "true",
            "REFLEXBLUE_LOG_LEVEL": "WARNING",
        }
        with running_server(env) as server:
            yield server, env


def _webhook_through_the_external_api(
    server: RunningServer, env: dict[str, str], url: str
) -> tuple[str, str]:
    """An integration made by the Management API, then its webhook made by the External API
    with a key from the command line. The integration's id and the webhook's id."""
    token = json.loads(run_cli(env, "tokens", "create", "admin", "--name", "t", "--json"))
    management = {"Authorization": f"Bearer {token['token']}"}
    created = httpx.post(
        f"{server.url}/api/management/integrations",
        json={"name": "Receiver shop", "external_id": "rcv-1", "export_id": "RECEIVER_SHOP"},
        headers=management,
    )
    assert created.status_code == 201, created.text
    key = run_cli(env, "api-keys", "create", "RECEIVER_SHOP", "--name", "t").strip()
    webhook = httpx.post(
        f"{server.url}/api/external/v1/webhooks",
        json={"url": url, "event_types": ["webhook.test"], "description": "Local receiver"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert webhook.status_code == 201, webhook.text
    return created.json()["id"], webhook.json()["id"]


def test_send_test_delivers_to_the_receiver_and_the_page_shows_it_succeeded(
    browser: Browser,
    private_server: tuple[RunningServer, dict[str, str]],
    receiver_url: str,
) -> None:
    server, env = private_server
    integration_id, webhook_id = _webhook_through_the_external_api(server, env, receiver_url)
    page: Page = browser.new_context(base_url=server.url, viewport=VIEWPORT).new_page()
    page.set_default_timeout(10_000)
    log_in(page, "admin", ADMIN_PASSWORD)
    page.goto(f"{OVERVIEW}/{integration_id}")
    expect(page.locator(f"#webhook-{webhook_id}")).to_contain_text("Healthy")

    page.get_by_role("link", name=receiver_url).click()
    page.get_by_role("button", name="Send test").click()
    expect(page.locator("#webhook-notice")).to_contain_text("A test event is on its way")

    # The list refreshes itself while a delivery is pending.
    status = page.locator("#deliveries-table [data-status]").first
    expect(status).to_have_text("Succeeded", timeout=20_000)
    page.get_by_text(re.compile(r"Attempts of this delivery \(1\)")).click()
    expect(page.locator(".response-body").first).to_have_text("received <ok>")
