"""Publishing: through the Management API, the CLI, and as a function inside the caller's
transaction."""

import asyncio
import json
import subprocess

import httpx
import pytest
from sqlalchemy import func, select

from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.webhooks.event_types import create_event_type
from reflexblue.webhooks.models import Delivery, Event
from reflexblue.webhooks.publishing import publish_event
from reflexblue.webhooks.schemas import EventTypeCreate
from tests.conftest import ApiUser
from tests.delivery.conftest import subscribe
from tests.support.server import base_environment, cli_command

ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "total": {"type": "number", "minimum": 0}},
    "required": ["order_id"],
}


async def _add_order_type(runtime: Runtime) -> None:
    async with transaction(runtime.sessions) as session:
        data = EventTypeCreate.model_validate(
            {"name": "order.created", "description": "An order was placed.", "schema": ORDER_SCHEMA}
        )
        await create_event_type(session, data, CLI_ACTOR)


async def _rows(runtime: Runtime) -> tuple[int, int]:
    async with transaction(runtime.sessions) as session:
        events = await session.scalar(select(func.count()).select_from(Event))
        deliveries = await session.scalar(select(func.count()).select_from(Delivery))
    return int(events or 0), int(deliveries or 0)


async def test_publishing_through_the_api_answers_202_with_the_delivery_count(
    runtime: Runtime, admin_client: httpx.AsyncClient
) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/a", export_id="A")
    await subscribe(runtime, "http://127.0.0.1:9/b", export_id="B")

    answer = await admin_client.post(
        "/api/management/events", json={"type": "webhook.test", "data": {"x": 1}}
    )

    assert answer.status_code == 202
    assert answer.json()["id"].startswith("evt_")
    assert answer.json()["deliveries"] == 2


async def test_an_event_for_one_integration_is_addressed_by_export_id_ignoring_case(
    runtime: Runtime, admin_client: httpx.AsyncClient
) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/a", export_id="Shop_A")
    await subscribe(runtime, "http://127.0.0.1:9/b", export_id="Shop_B")

    answer = await admin_client.post(
        "/api/management/events",
        json={"type": "webhook.test", "data": {}, "integration": "shop_a"},
    )

    assert answer.json()["deliveries"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "order.created", "data": {"total": 5}}, "data"),
        ({"type": "order.created", "data": {"order_id": "A", "total": -1}}, "data.total"),
        ({"type": "order.created", "data": {"order_id": 7}}, "data.order_id"),
        ({"type": "no.such_type", "data": {}}, "type"),
        (
            {"type": "order.created", "data": {"order_id": "A"}, "integration": "NOPE"},
            "integration",
        ),
        ({"type": "order.created", "data": []}, "data"),
        ({"type": 5, "data": {}}, "type"),
        ({"data": {}}, "type"),
        ({"type": "order.created", "data": {}, "extra": 1}, "extra"),
    ],
)
async def test_a_refused_event_names_the_field_and_stores_nothing(
    runtime: Runtime, admin_client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    await _add_order_type(runtime)
    await subscribe(runtime, "http://127.0.0.1:9/", export_id="SHOP")

    answer = await admin_client.post("/api/management/events", json=body)

    assert answer.status_code == 422
    assert field in {error["field"] for error in answer.json()["errors"]}
    assert await _rows(runtime) == (0, 0)


async def test_a_viewer_may_not_publish(
    runtime: Runtime, client: httpx.AsyncClient, viewer: ApiUser
) -> None:
    answer = await client.post(
        "/api/management/events",
        json={"type": "webhook.test", "data": {}},
        headers=viewer.headers,
    )

    assert answer.status_code == 403
    assert await _rows(runtime) == (0, 0)


async def test_an_event_rolls_back_with_the_transaction_that_published_it(
    runtime: Runtime,
) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/", export_id="SHOP")

    async def change_that_fails() -> None:
        async with transaction(runtime.sessions) as session:
            await publish_event(session, "webhook.test", {"order": 1})
            raise RuntimeError("the business change failed")

    with pytest.raises(RuntimeError, match="the business change failed"):
        await change_that_fails()

    assert await _rows(runtime) == (0, 0)


async def test_a_disabled_webhook_gets_no_delivery_of_a_new_event(runtime: Runtime) -> None:
    subscriber = await subscribe(runtime, "http://127.0.0.1:9/", export_id="SHOP")
    async with transaction(runtime.sessions) as session:
        from reflexblue.webhooks.models import Webhook

        webhook = await session.get(Webhook, subscriber.webhook_id)
        assert webhook is not None
        webhook.enabled = False
        published = await publish_event(session, "webhook.test", {})

    assert published.deliveries == 0


def _cli(runtime: Runtime, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command("events", "publish", *arguments),
        env=base_environment(
            {
                "REFLEXBLUE_DATA_DIR": str(runtime.settings.data_dir),
                "REFLEXBLUE_DATABASE_URL": runtime.settings.database_url or "",
            }
        ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )


async def test_the_cli_publishes_an_event_for_one_integration(runtime: Runtime) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/", export_id="SHOP")
    await subscribe(runtime, "http://127.0.0.1:9/", export_id="OTHER")

    done = await asyncio.to_thread(
        _cli, runtime, "webhook.test", "--data", '{"n": 1}', "--integration", "SHOP", "--json"
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deliveries"] == 1
    assert await _rows(runtime) == (1, 1)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("webhook.test", "--data", "{not json"), "--data: not valid JSON"),
        (("webhook.test", "--data", "[1]"), "--data: Must be a JSON object"),
        (("no.such_type", "--data", "{}"), "TYPE: No event type is named"),
        (("webhook.test", "--data", "{}", "--integration", "NOPE"), "--integration:"),
    ],
)
async def test_the_cli_refuses_bad_input_in_one_line_and_publishes_nothing(
    runtime: Runtime, arguments: tuple[str, ...], message: str
) -> None:
    done = await asyncio.to_thread(_cli, runtime, *arguments)

    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"error: {message}")
    assert await _rows(runtime) == (0, 0)
