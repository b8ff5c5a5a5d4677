"""Console sessions found alive a moment ago are answered from this process's cache, and
never after this process ended them or changed or deleted their user."""

import httpx
import pytest
from sqlalchemy import delete, select

from reflexblue.accounts.models import ConsoleSession, User
from reflexblue.accounts.sessions import SESSION_TRUST_SECONDS, live_sessions
from reflexblue.console.security import SESSION_COOKIE
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from tests.conftest import ApiUser
from tests.console.conftest import OVERVIEW, page_token, use_session_cookie
from tests.support.clock import Clock


async def test_a_session_found_a_moment_ago_is_not_looked_up_again(
    signed_in: httpx.AsyncClient, statements: list[str]
) -> None:
    assert (await signed_in.get(OVERVIEW)).status_code == 200
    statements.clear()

    page = await signed_in.get(OVERVIEW)

    assert page.status_code == 200
    assert not any("console_sessions" in sql for sql in statements)


async def test_a_signed_out_session_is_refused_at_once(signed_in: httpx.AsyncClient) -> None:
    token = signed_in.cookies[SESSION_COOKIE]
    csrf = await page_token(signed_in)
    assert (await signed_in.post("/logout", data={"csrf_token": csrf})).status_code == 303

    use_session_cookie(signed_in, token)
    page = await signed_in.get(OVERVIEW)

    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")


async def test_a_user_given_the_viewer_role_may_not_change_anything_at_once(
    signed_in: httpx.AsyncClient, admin_account: ApiUser, runtime: Runtime
) -> None:
    assert (await signed_in.get(OVERVIEW + "/new")).status_code == 200
    async with transaction(runtime.sessions) as session:
        user = await session.scalar(select(User).where(User.username == admin_account.username))
        assert user is not None
        user.role = "viewer"

    page = await signed_in.get(OVERVIEW + "/new")

    assert page.status_code == 403


async def test_the_session_of_a_deleted_user_ends_at_once(
    signed_in: httpx.AsyncClient, admin_account: ApiUser, runtime: Runtime
) -> None:
    assert (await signed_in.get(OVERVIEW)).status_code == 200
    async with transaction(runtime.sessions) as session:
        user = await session.scalar(select(User).where(User.username == admin_account.username))
        await session.delete(user)

    page = await signed_in.get(OVERVIEW)

    assert page.status_code == 303


async def test_a_session_ended_by_another_process_ends_once_the_cache_time_is_up(
    signed_in: httpx.AsyncClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(live_sessions.clock())
    monkeypatch.setattr(live_sessions, "clock", clock)
    assert (await signed_in.get(OVERVIEW)).status_code == 200
    # Deleted as another process would: no ORM flush of this process sees it.
    async with runtime.engine.begin() as connection:
        await connection.execute(delete(ConsoleSession))

    within = await signed_in.get(OVERVIEW)
    clock.now += SESSION_TRUST_SECONDS
    after = await signed_in.get(OVERVIEW)

    assert (within.status_code, after.status_code) == (200, 303)
