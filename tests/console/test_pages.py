"""The console's pages over HTTP: what they answer to good and bad requests."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.integrations.models import Integration
from reflexblue.integrations.schemas import IntegrationCreate
from reflexblue.integrations.service import create_integration, get_integration
from tests.conftest import ApiUser
from tests.console.conftest import OVERVIEW, csrf_of, log_in, page_token


async def _create(runtime: Runtime, count: int, prefix: str = "Item") -> list[Integration]:
    async with transaction(runtime.sessions) as session:
        return [
            await create_integration(
                session,
                runtime.box,
                IntegrationCreate(
                    name=f"{prefix} {n:03d}", external_id=f"ext-{n}", export_id=f"{prefix}_{n}"
                ),
                CLI_ACTOR,
            )
            for n in range(count)
        ]


@contextmanager
def _counting_statements(runtime: Runtime) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", count)


async def test_an_empty_overview_says_so_and_points_to_add(signed_in: httpx.AsyncClient) -> None:
    response = await signed_in.get(OVERVIEW)

    assert response.status_code == 200
    assert "There are no integrations yet" in response.text
    assert 'href="/management/general/integrations/new">Add</a> to create the first one' in (
        response.text
    )


async def test_the_overview_runs_the_same_statements_for_three_rows_as_for_fifty(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    await _create(runtime, 3, "Few")
    # The first page seen looks the session up; the later ones find it in this process's cache.
    await signed_in.get(OVERVIEW)
    with _counting_statements(runtime) as few:
        await signed_in.get(OVERVIEW, params={"q": "Few"})
    await _create(runtime, 50, "Many")
    with _counting_statements(runtime) as many:
        await signed_in.get(OVERVIEW, params={"q": "Many"})

    assert len(many) == len(few)
    assert not any("count(" in statement.lower() for statement in many)


async def test_an_htmx_request_gets_only_the_table_fragment(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    await _create(runtime, 2)

    response = await signed_in.get(OVERVIEW, headers={"HX-Request": "true"})

    assert response.text.lstrip().startswith('<div id="integrations-region"')
    assert "<html" not in response.text
    assert "Item 001" in response.text
    assert response.headers["vary"] == "HX-Request"


async def test_an_unknown_sort_falls_back_to_name_and_says_so(
    signed_in: httpx.AsyncClient,
) -> None:
    response = await signed_in.get(OVERVIEW, params={"sort": "password", "order": "sideways"})

    assert response.status_code == 200
    assert "That sort column is not known; the list is sorted by name." in response.text
    assert "The order must be ascending or descending" in response.text


async def test_a_broken_page_link_shows_the_first_page_and_says_so(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    await _create(runtime, 2)

    response = await signed_in.get(OVERVIEW, params={"cursor": "not-a-cursor"})

    assert response.status_code == 200
    assert "That page link is out of date; this is the first page." in response.text
    assert "Item 000" in response.text


async def test_an_unknown_integration_gets_a_not_found_page(
    signed_in: httpx.AsyncClient,
) -> None:
    response = await signed_in.get(f"{OVERVIEW}/int_nothing")

    assert response.status_code == 404
    assert "No integration has the id" in response.text


async def test_too_long_a_name_is_refused_with_the_rule_and_nothing_is_stored(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    token = await page_token(signed_in)

    response = await signed_in.post(
        f"{OVERVIEW}/new",
        data={
            "csrf_token": token,
            "name": "x" * 201,
            "external_id": "e",
            "export_id": "E1",
            "description": "",
        },
    )

    assert response.status_code == 422
    assert "Use at most 200 characters (this has 201)." in response.text
    assert 'value="' + "x" * 201 + '"' in response.text
    assert (await signed_in.get(OVERVIEW)).text.count("There are no integrations yet") == 1


async def test_a_missing_field_is_reported_as_required(signed_in: httpx.AsyncClient) -> None:
    token = await page_token(signed_in)

    response = await signed_in.post(f"{OVERVIEW}/new", data={"csrf_token": token})

    assert response.status_code == 422
    assert response.text.count('aria-invalid="true"') == 3


async def test_a_save_without_a_version_is_refused_as_stale(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    [integration] = await _create(runtime, 1)
    token = await page_token(signed_in, f"{OVERVIEW}/{integration.id}")

    response = await signed_in.post(
        f"{OVERVIEW}/{integration.id}",
        data={"csrf_token": token, "name": "New", "external_id": "e", "export_id": "E"},
    )

    assert response.status_code == 409
    assert "changed by someone else" in response.text
    async with transaction(runtime.sessions) as session:
        assert (await get_integration(session, integration.id)).name == "Item 000"


async def test_a_viewer_cannot_open_the_add_screen(
    visitor: httpx.AsyncClient, viewer_account: ApiUser
) -> None:
    await log_in(visitor, viewer_account.username)

    response = await visitor.get(f"{OVERVIEW}/new")

    assert response.status_code == 403


async def test_a_viewer_gets_no_secret_when_revealing(
    runtime: Runtime, visitor: httpx.AsyncClient, viewer_account: ApiUser
) -> None:
    [integration] = await _create(runtime, 1)
    await log_in(visitor, viewer_account.username)
    token = csrf_of((await visitor.get(f"{OVERVIEW}/{integration.id}")).text)

    response = await visitor.post(
        f"{OVERVIEW}/{integration.id}/secret/reveal", data={"csrf_token": token}
    )

    assert response.status_code == 403
    assert "whsec_" not in response.text


async def test_an_htmx_post_may_carry_the_csrf_token_in_a_header(
    runtime: Runtime, signed_in: httpx.AsyncClient
) -> None:
    [integration] = await _create(runtime, 1)
    token = await page_token(signed_in, f"{OVERVIEW}/{integration.id}")

    response = await signed_in.post(
        f"{OVERVIEW}/{integration.id}/secret/reveal",
        headers={"HX-Request": "true", "X-CSRF-Token": token},
    )

    assert response.status_code == 200
    assert "whsec_" in response.text
    assert "<html" not in response.text


async def test_console_responses_carry_the_security_headers(
    visitor: httpx.AsyncClient,
) -> None:
    for path in ("/login", "/static/console.css"):
        response = await visitor.get(path)
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"


async def test_the_api_keeps_its_own_headers(visitor: httpx.AsyncClient) -> None:
    response = await visitor.get("/api/management/integrations")

    assert "content-security-policy" not in response.headers


async def test_pages_are_not_cached(signed_in: httpx.AsyncClient) -> None:
    response = await signed_in.get(OVERVIEW)

    assert response.headers["cache-control"] == "no-store"
