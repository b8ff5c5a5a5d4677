"""The console in this process over httpx: enough for what needs no visitor."""

import re

import httpx
import pytest

from reflexblue.accounts.models import Role
from reflexblue.core.runtime import Runtime
from tests.conftest import TEST_PASSWORD, ApiUser, make_user

OVERVIEW = "/management/general/integrations"
_HIDDEN_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _HIDDEN_CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def log_in(
    visitor: httpx.AsyncClient, username: str, password: str = TEST_PASSWORD
) -> httpx.Response:
    form = await visitor.get("/login")
    return await visitor.post(
        "/login",
        data={"csrf_token": csrf_of(form.text), "username": username, "password": password},
    )


@pytest.fixture
async def admin_account(runtime: Runtime) -> ApiUser:
    return await make_user(runtime, "alice", Role.ADMIN)


@pytest.fixture
async def viewer_account(runtime: Runtime) -> ApiUser:
    return await make_user(runtime, "victor", Role.VIEWER)


@pytest.fixture
async def signed_in(visitor: httpx.AsyncClient, admin_account: ApiUser) -> httpx.AsyncClient:
    response = await log_in(visitor, admin_account.username)
    assert response.status_code == 303
    return visitor


async def page_token(visitor: httpx.AsyncClient, path: str = OVERVIEW + "/new") -> str:
    return csrf_of((await visitor.get(path)).text)


def use_session_cookie(visitor: httpx.AsyncClient, token: str) -> None:
    """Put a session token back in the jar, as a browser holding an old cookie would."""
    visitor.cookies.delete("reflexblue_session")
    visitor.cookies.set("reflexblue_session", token, domain="testserver.local")
