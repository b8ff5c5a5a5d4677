"""The console in a browser: CSRF refusal, cookie flags, Content-Security-Policy, login."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ADMIN_PASSWORD, OVERVIEW, ContextFactory, log_in
from tests.support.server import RunningServer

pytestmark = pytest.mark.browser

CreateIntegration = Callable[..., dict[str, Any]]


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    page: Page, tag: str, create_integration: CreateIntegration, api: httpx.Client
) -> None:
    row = create_integration(f"Alpha {tag}", f"A_{tag}")
    page.goto(f"{OVERVIEW}/{row['id']}")

    forged = page.request.post(f"{OVERVIEW}/{row['id']}/delete", form={"q": tag})

    assert forged.status == 403
    assert api.get(f"/integrations/{row['id']}").status_code == 200


def test_a_post_with_another_token_is_refused(
    page: Page, tag: str, create_integration: CreateIntegration, api: httpx.Client
) -> None:
    row = create_integration(f"Alpha {tag}", f"A_{tag}")
    page.goto(f"{OVERVIEW}/{row['id']}")

    forged = page.request.post(
        f"{OVERVIEW}/{row['id']}",
        form={
            "csrf_token": "not-the-token",
            "name": "Forged",
            "external_id": "x",
            "export_id": f"A_{tag}",
            "version": str(row["version"]),
        },
    )

    assert forged.status == 403
    assert api.get(f"/integrations/{row['id']}").json()["name"] == f"Alpha {tag}"


def test_the_session_cookie_is_http_only_and_same_site_lax(
    new_context: ContextFactory,
) -> None:
    context = new_context()
    log_in(context.new_page(), "admin", ADMIN_PASSWORD)

    cookie = next(c for c in context.cookies() if c["name"] == "reflexblue_session")

    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # plain HTTP here; HTTPS sets Secure (tests/console)


def test_pages_carry_a_content_security_policy_without_inline_script(page: Page) -> None:
    response = page.goto(OVERVIEW)

    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


def test_the_console_breaks_no_rule_of_its_policy(
    page: Page, tag: str, create_integration: CreateIntegration
) -> None:
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    row = create_integration(f"Alpha {tag}", f"A_{tag}")

    page.goto(f"{OVERVIEW}?q={tag}&selected={row['id']}")
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#live-region")).to_have_text("The list is up to date.")
    page.goto(f"{OVERVIEW}/{row['id']}")
    page.get_by_role("button", name="Reveal").click()
    expect(page.get_by_role("button", name="Copy")).to_be_visible()

    assert violations == []


def test_a_wrong_password_is_refused_with_a_clear_message(
    new_context: ContextFactory,
) -> None:
    page = new_context().new_page()
    page.goto("/login")

    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("alert")).to_have_text("The user name or password is not right.")
    expect(page.get_by_label("User name")).to_have_value("admin")


def test_signing_in_returns_to_the_page_asked_for(
    new_context: ContextFactory, server: RunningServer
) -> None:
    page = new_context().new_page()
    page.goto(f"{OVERVIEW}/new")

    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", name="New integration")).to_be_visible()


def test_log_out_ends_the_session(new_context: ContextFactory) -> None:
    context = new_context()
    page = context.new_page()
    log_in(page, "admin", ADMIN_PASSWORD)

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_text("You are logged out.")).to_be_visible()
    page.goto(OVERVIEW)

    expect(page.get_by_role("heading", name="Log in to ReflexBlue")).to_be_visible()
