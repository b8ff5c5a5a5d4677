"""X-Request-ID: taken from the caller when sane, made otherwise, always answered, and kept on
the events a request causes."""

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from reflexblue.app import create_app
from reflexblue.core.database import transaction
from reflexblue.core.request_ids import current_request_id
from reflexblue.core.runtime import Runtime
from reflexblue.core.settings import Settings
from reflexblue.webhooks.models import Event
from tests.external.conftest import API, make_caller

HEADER = "X-Request-ID"
GENERATED_LENGTH = 26  # a ULID


async def test_a_given_request_id_is_answered_back(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={HEADER: "deploy-42/check.1"})

    assert response.headers[HEADER] == "deploy-42/check.1"


async def test_a_request_id_is_made_when_none_is_given(client: httpx.AsyncClient) -> None:
    first = await client.get("/healthz")
    second = await client.get("/healthz")

    assert len(first.headers[HEADER]) == GENERATED_LENGTH
    assert first.headers[HEADER] != second.headers[HEADER]


@pytest.mark.parametrize(
    "unfit",
    ["x" * 65, "two words", "tab\tinside", "", "caf\u00e9"],
    ids=["too-long", "space", "tab", "empty", "not-ascii"],
)
async def test_an_unfit_request_id_is_replaced(client: httpx.AsyncClient, unfit: str) -> None:
    response = await client.get("/healthz", headers={HEADER.encode(): unfit.encode()})

    assert response.headers[HEADER] != unfit
    assert len(response.headers[HEADER]) == GENERATED_LENGTH


async def test_a_problem_details_answer_carries_the_request_id(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/management/integrations", headers={HEADER: "req-401"})

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers[HEADER] == "req-401"


@pytest.mark.parametrize("path", ["/login", "/no/such/page", "/static/console.css"])
async def test_console_answers_carry_the_request_id(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers={HEADER: "req-console"})

    assert response.headers[HEADER] == "req-console"


async def test_an_unhandled_error_is_answered_500_with_the_request_id(
    settings: Settings, runtime: Runtime
) -> None:
    app = create_app(settings, runtime)
    _add_failing_page(app)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/failing-page", headers={HEADER: "req-500"})

    assert response.status_code == 500
    assert response.headers[HEADER] == "req-500"


def _add_failing_page(app: FastAPI) -> None:
    async def failing_page() -> None:
        raise RuntimeError("a bug in a page")

    app.add_api_route("/failing-page", failing_page)


async def test_the_request_id_is_readable_while_the_request_is_handled(
    settings: Settings, runtime: Runtime
) -> None:
    app = create_app(settings, runtime)

    async def echo() -> dict[str, str | None]:
        return {"request_id": current_request_id()}

    app.add_api_route("/echo-request-id", echo)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/echo-request-id", headers={HEADER: "req-inside"})

    assert response.json() == {"request_id": "req-inside"}
    assert current_request_id() is None


async def test_a_test_event_remembers_the_request_that_sent_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    caller = await make_caller(runtime, "ERP_ONE")
    created = await client.post(
        f"{API}/webhooks",
        json={"url": "http://127.0.0.1:9/in", "event_types": ["webhook.test"]},
        headers=caller.headers,
    )
    sent = await client.post(
        f"{API}/webhooks/{created.json()['id']}/test",
        headers={**caller.headers, HEADER: "req-test-event"},
    )

    assert sent.status_code == 202, sent.text
    async with transaction(runtime.sessions) as session:
        event = await session.scalar(select(Event).where(Event.id == sent.json()["event_id"]))
    assert event is not None
    assert event.request_id == "req-test-event"
