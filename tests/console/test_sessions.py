"""Signing in and out of the console, and what the session cookie is."""

from datetime import timedelta

import httpx
from sqlalchemy import select, update

from reflexblue.accounts.models import ConsoleSession
from reflexblue.core.crypto import hash_token
from reflexblue.core.database import transaction, utcnow
from reflexblue.core.runtime import Runtime
from tests.conftest import TEST_PASSWORD, ApiUser
from tests.console.conftest import OVERVIEW, csrf_of, log_in, use_session_cookie


async def test_a_page_without_a_session_sends_the_browser_to_log_in(
    visitor: httpx.AsyncClient,
) -> None:
    response = await visitor.get(f"{OVERVIEW}?sort=name")

    assert response.status_code == 303
    assert (
        response.headers["location"]
        == "/login?next=%2Fmanagement%2Fgeneral%2Fintegrations%3Fsort%3Dname"
    )


async def test_an_htmx_request_without_a_session_is_told_to_load_the_login_page(
    visitor: httpx.AsyncClient,
) -> None:
    response = await visitor.get(OVERVIEW, headers={"HX-Request": "true"})

    assert response.headers["hx-redirect"].startswith("/login?next=")


async def test_log_in_sets_an_http_only_same_site_lax_cookie(
    visitor: httpx.AsyncClient, admin_account: ApiUser
) -> None:
    response = await log_in(visitor, admin_account.username)

    cookie = response.headers["set-cookie"]
    assert cookie.startswith("reflexblue_session=rbs_")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie
    assert response.headers["location"] == OVERVIEW


async def test_over_https_the_session_cookie_is_secure(
    runtime: Runtime, visitor: httpx.AsyncClient, admin_account: ApiUser
) -> None:
    visitor.base_url = httpx.URL("https://testserver")

    response = await log_in(visitor, admin_account.username)

    assert "Secure" in response.headers["set-cookie"]


async def test_only_the_hash_of_the_session_token_is_stored(
    runtime: Runtime, visitor: httpx.AsyncClient, admin_account: ApiUser
) -> None:
    await log_in(visitor, admin_account.username)
    token = visitor.cookies["reflexblue_session"]

    async with transaction(runtime.sessions) as session:
        stored = list(await session.scalars(select(ConsoleSession.token_hash)))

    assert stored == [hash_token(token)]


async def test_each_log_in_makes_a_new_session_and_ends_the_old_one(
    visitor: httpx.AsyncClient, admin_account: ApiUser
) -> None:
    await log_in(visitor, admin_account.username)
    first = visitor.cookies["reflexblue_session"]
    visitor.cookies.delete("reflexblue_session")
    form = await visitor.get("/login")
    use_session_cookie(visitor, first)

    await visitor.post(
        "/login",
        data={"csrf_token": csrf_of(form.text), "username": "alice", "password": TEST_PASSWORD},
    )
    second = visitor.cookies["reflexblue_session"]
    use_session_cookie(visitor, first)
    with_old = await visitor.get(OVERVIEW)

    assert second != first
    assert with_old.status_code == 303


async def test_log_out_deletes_the_session(runtime: Runtime, signed_in: httpx.AsyncClient) -> None:
    token = csrf_of((await signed_in.get(OVERVIEW)).text)
    cookie = signed_in.cookies["reflexblue_session"]

    response = await signed_in.post("/logout", data={"csrf_token": token})
    use_session_cookie(signed_in, cookie)
    after = await signed_in.get(OVERVIEW)

    assert response.headers["location"] == "/login?signed_out=1"
    assert after.status_code == 303
    async with transaction(runtime.sessions) as session:
        assert list(await session.scalars(select(ConsoleSession))) == []


async def test_log_out_without_the_csrf_token_is_refused(signed_in: httpx.AsyncClient) -> None:
    response = await signed_in.post("/logout", data={})

    assert response.status_code == 403
    assert (await signed_in.get(OVERVIEW)).status_code == 200


async def test_an_expired_session_no_longer_opens_pages(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    async with transaction(runtime.sessions) as session:
        await session.execute(update(ConsoleSession).values(expires_at=utcnow()))

    response = await signed_in.get(OVERVIEW)

    assert response.status_code == 303


async def test_log_in_without_the_form_token_is_refused(
    visitor: httpx.AsyncClient, admin_account: ApiUser
) -> None:
    await visitor.get("/login")

    response = await visitor.post(
        "/login", data={"username": admin_account.username, "password": "x"}
    )

    assert response.status_code == 403
    assert "reflexblue_session" not in visitor.cookies


async def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(
    visitor: httpx.AsyncClient, admin_account: ApiUser
) -> None:
    response = await log_in(visitor, admin_account.username, "wrong")

    assert response.status_code == 401
    assert "The user name or password is not right." in response.text
    assert "reflexblue_session" not in visitor.cookies


async def test_a_user_name_no_user_can_have_is_refused_as_any_unknown_name(
    visitor: httpx.AsyncClient, admin_account: ApiUser
) -> None:
    response = await log_in(visitor, f"{admin_account.username}\x00", TEST_PASSWORD)

    assert response.status_code == 401
    assert "The user name or password is not right." in response.text
    assert "reflexblue_session" not in visitor.cookies


async def test_an_empty_log_in_form_asks_for_both_fields(visitor: httpx.AsyncClient) -> None:
    response = await log_in(visitor, "", "")

    assert response.status_code == 422
    assert "Enter your user name and your password." in response.text


async def test_repeated_failures_lock_the_user_name_out_for_a_while(
    visitor: httpx.AsyncClient, admin_account: ApiUser
) -> None:
    for _ in range(5):
        assert (await log_in(visitor, admin_account.username, "wrong")).status_code == 401

    locked = await log_in(visitor, admin_account.username)

    assert locked.status_code == 429
    assert "Too many failed sign-ins. Wait 30 seconds and try again." in locked.text
    assert locked.headers["retry-after"] == "30"
    assert "reflexblue_session" not in visitor.cookies


async def test_next_may_not_lead_to_another_site(
    visitor: httpx.AsyncClient, admin_account: ApiUser
) -> None:
    form = await visitor.get("/login")

    response = await visitor.post(
        "/login",
        data={
            "csrf_token": csrf_of(form.text),
            "username": admin_account.username,
            "password": TEST_PASSWORD,
            "next": "//evil.example/steal",
        },
    )

    assert response.headers["location"] == OVERVIEW


async def test_using_a_session_extends_its_idle_expiry(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    soon = utcnow() + timedelta(minutes=5)
    async with transaction(runtime.sessions) as session:
        await session.execute(update(ConsoleSession).values(expires_at=soon))

    response = await signed_in.get(OVERVIEW)

    assert response.status_code == 200
    async with transaction(runtime.sessions) as session:
        [expires_at] = list(await session.scalars(select(ConsoleSession.expires_at)))
    assert expires_at > soon + timedelta(minutes=30)


async def test_a_session_ends_at_its_absolute_age_however_busy(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    long_ago = utcnow() - timedelta(hours=11, minutes=59)
    async with transaction(runtime.sessions) as session:
        await session.execute(update(ConsoleSession).values(created_at=long_ago))

    await signed_in.get(OVERVIEW)

    async with transaction(runtime.sessions) as session:
        [expires_at] = list(await session.scalars(select(ConsoleSession.expires_at)))
    assert expires_at <= long_ago + timedelta(hours=12)


async def test_a_session_past_its_absolute_age_no_longer_opens_pages(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(ConsoleSession).values(created_at=utcnow() - timedelta(hours=12, seconds=1))
        )

    response = await signed_in.get(OVERVIEW)

    assert response.status_code == 303
