"""A real `reflexblue serve` and Debian's Chromium, driven by Playwright.

One server per test process, so xdist workers share nothing (data stays between the tests of
one process: each test names its integrations with its own unique tag and searches for it); one
browser context per test, signed in from a saved login.
"""

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect, sync_playwright

from tests.support.server import RunningServer, base_environment, cli_command, running_server

ADMIN_PASSWORD = "browser tests admin password"
VIEWER_NAME = "vera"
VIEWER_PASSWORD = "browser tests viewer password"
OVERVIEW = "/management/general/integrations"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

ContextFactory = Callable[..., BrowserContext]


@pytest.fixture(scope="session")
def shared_browser(request: pytest.FixtureRequest) -> Iterator[Browser | None]:
    """One Chromium for every test of this process, when the process runs browser tests only.

    Playwright's sync API keeps an asyncio event loop marked as running for as long as it
    lives, so in a process that also runs the async tests of other folders it must not outlive
    a test. `make pytest` runs this folder on its own, where one browser serves them all.
    """
    browser_folder = Path(__file__).parent
    if not all(browser_folder in Path(item.path).parents for item in request.session.items):
        yield None
        return
    with _chromium() as chromium:
        yield chromium


@pytest.fixture
def browser(shared_browser: Browser | None) -> Iterator[Browser]:
    """Debian's Chromium: the shared one, or one for this test alone."""
    if shared_browser is not None:
        yield shared_browser
        return
    with _chromium() as chromium:
        yield chromium


@contextmanager
def _chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data_dir = tmp_path_factory.mktemp("console-server")
    return {
        "REFLEXBLUE_DATA_DIR": str(data_dir),
        "REFLEXBLUE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "REFLEXBLUE_SECRET_GRACE_PERIOD": "86400",
        "REFLEXBLUE_LOG_LEVEL": "WARNING",
    }


@pytest.fixture(scope="session")
def server(server_env: dict[str, str]) -> Iterator[RunningServer]:
    with running_server(server_env) as running:
        yield running


def run_cli(env: dict[str, str], *arguments: str, stdin: str = "") -> str:
    done = subprocess.run(
        cli_command(*arguments),
        env=base_environment(env),
        # Away from the checkout, so that no `.env` file there takes part.
        cwd=env["REFLEXBLUE_DATA_DIR"],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="session")
def api(server: RunningServer, server_env: dict[str, str]) -> Iterator[httpx.Client]:
    """The Management API as the administrator, for setting up data the way a script would."""
    created = json.loads(
        run_cli(server_env, "tokens", "create", "admin", "--name", "tests", "--json")
    )
    headers = {"Authorization": f"Bearer {created['token']}"}
    with httpx.Client(base_url=f"{server.url}/api/management", headers=headers) as client:
        yield client


@pytest.fixture(scope="session")
def viewer_account(server: RunningServer, server_env: dict[str, str]) -> str:
    run_cli(
        server_env,
        "users",
        "create",
        VIEWER_NAME,
        "--role",
        "viewer",
        "--password-stdin",
        stdin=VIEWER_PASSWORD + "\n",
    )
    return VIEWER_NAME


def log_in(page: Page, username: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Integrations", level=1)).to_be_visible()


@pytest.fixture(scope="session")
def saved_logins() -> dict[str, Path]:
    """Signed-in browser states by user name, made once per test process."""
    return {}


def _saved_login(
    browser: Browser,
    server: RunningServer,
    logins: dict[str, Path],
    username: str,
    password: str,
    folder: Path,
) -> Path:
    if username not in logins:
        context = browser.new_context(base_url=server.url)
        log_in(context.new_page(), username, password)
        path = folder / f"{username}.json"
        context.storage_state(path=path)
        context.close()
        logins[username] = path
    return logins[username]


@pytest.fixture(scope="session")
def logins_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logins")


@pytest.fixture
def admin_login(
    browser: Browser, server: RunningServer, saved_logins: dict[str, Path], logins_folder: Path
) -> Path:
    return _saved_login(browser, server, saved_logins, "admin", ADMIN_PASSWORD, logins_folder)


@pytest.fixture
def viewer_login(
    browser: Browser,
    server: RunningServer,
    viewer_account: str,
    saved_logins: dict[str, Path],
    logins_folder: Path,
) -> Path:
    return _saved_login(
        browser, server, saved_logins, viewer_account, VIEWER_PASSWORD, logins_folder
    )


@pytest.fixture
def foreign_hosts() -> Iterator[list[str]]:
    """Every request a page makes to a host other than the server; none are allowed."""
    seen: list[str] = []
    yield seen
    assert seen == [], f"the console made requests to other hosts: {seen}"


@pytest.fixture
def new_context(
    browser: Browser, server: RunningServer, foreign_hosts: list[str]
) -> Iterator[ContextFactory]:
    """Browser contexts that watch for requests leaving the server; closed after the test."""
    opened: list[BrowserContext] = []
    own_host = urlsplit(server.url).netloc

    def watch(url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != own_host:
            foreign_hosts.append(parts.netloc)

    def make(**options: Any) -> BrowserContext:
        context = browser.new_context(base_url=server.url, viewport=VIEWPORT, **options)
        context.on("request", lambda request: watch(request.url))
        context.set_default_timeout(10_000)
        opened.append(context)
        return context

    yield make
    for context in opened:
        context.close()


@pytest.fixture
def page(new_context: ContextFactory, admin_login: Path) -> Page:
    """A page signed in as the administrator."""
    return new_context(storage_state=admin_login).new_page()


@pytest.fixture
def viewer_page(new_context: ContextFactory, viewer_login: Path) -> Page:
    return new_context(storage_state=viewer_login).new_page()


@pytest.fixture
def tag() -> str:
    """A word no other test uses: each test names its integrations with it and searches for it."""
    return "t" + uuid.uuid4().hex[:8]


@pytest.fixture
def create_integration(api: httpx.Client) -> Callable[..., dict[str, Any]]:
    def create(name: str, export_id: str, **fields: str) -> dict[str, Any]:
        body = {"name": name, "external_id": fields.pop("external_id", f"ext-{export_id}")}
        response = api.post("/integrations", json={**body, "export_id": export_id, **fields})
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    return create


def overview_url(tag: str, **params: str) -> str:
    query = httpx.QueryParams({"q": tag, **params})
    return f"{OVERVIEW}?{query}"
