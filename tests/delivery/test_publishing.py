"""Publishing: through the Management API, the CLI, and as a function inside the caller's
transaction."""

import asyncio
import json
import subprocess

import httpx
import pytest
from sqlalchemy import func, select, text

from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.webhooks.event_types import create_event_type
from reflexblue.webhooks.models import Delivery, Event, EventType
from reflexblue.webhooks.publishing import publish_event
from reflexblue.webhooks.schemas import EventTypeCreate
from tests.conftest import ApiUser
from tests.delivery.conftest import subscribe
from tests.support.server import base_environment, cli_command

IDEM = "idempotency_key"
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
        ({"type": "order.created", "data": {"order_id": "A"}, "idempotency_key": ""}, IDEM),
        ({"type": "order.created", "data": {"order_id": "A"}, "idempotency_key": "k" * 256}, IDEM),
        ({"type": "order.created", "data": {"order_id": "A"}, "idempotency_key": "clé"}, IDEM),
        ({"type": "order.created", "data": {"order_id": "A"}, "idempotency_key": "a\nb"}, IDEM),
        ({"type": "order.created", "data": {"order_id": "A"}, "idempotency_key": 5}, IDEM),
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
        (("webhook.test", "--data", "{}", "--idempotency-key", "k" * 256), "--idempotency-key:"),
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


async def test_a_repeat_under_the_same_key_answers_with_the_first_event_and_stores_nothing(
    runtime: Runtime, admin_client: httpx.AsyncClient
) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/a", export_id="A")
    await subscribe(runtime, "http://127.0.0.1:9/b", export_id="B")
    body = {"type": "webhook.test", "data": {"n": 1, "m": 2}, "idempotency_key": "order-17"}

    first = await admin_client.post("/api/management/events", json=body)
    reordered = {**body, "data": {"m": 2, "n": 1}}
    again = await admin_client.post("/api/management/events", json=reordered)

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() == {"id": first.json()["id"], "deliveries": 2}
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert await _rows(runtime) == (1, 2)


@pytest.mark.parametrize(
    "change",
    [
        {"data": {"n": 2}},
        {"type": "order.created", "data": {"order_id": "A"}},
        {"integration": "B"},
    ],
)
async def test_the_same_key_with_other_content_is_refused_and_stores_nothing(
    runtime: Runtime, admin_client: httpx.AsyncClient, change: dict[str, object]
) -> None:
    await _add_order_type(runtime)
    await subscribe(runtime, "http://127.0.0.1:9/a", export_id="A")
    await subscribe(runtime, "http://127.0.0.1:9/b", export_id="B")
    body = {"type": "webhook.test", "data": {"n": 1}, "integration": "A", "idempotency_key": "k1"}
    await admin_client.post("/api/management/events", json=body)

    answer = await admin_client.post("/api/management/events", json={**body, **change})

    assert answer.status_code == 422
    assert [error["field"] for error in answer.json()["errors"]] == [IDEM]
    assert await _rows(runtime) == (1, 1)


async def test_different_keys_publish_different_events(
    runtime: Runtime, admin_client: httpx.AsyncClient
) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/", export_id="A")
    body = {"type": "webhook.test", "data": {"n": 1}}

    first = await admin_client.post("/api/management/events", json={**body, IDEM: "one"})
    second = await admin_client.post("/api/management/events", json={**body, IDEM: "two"})

    assert first.json()["id"] != second.json()["id"]
    assert await _rows(runtime) == (2, 2)


async def test_a_key_whose_transaction_rolled_back_is_free_again(runtime: Runtime) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/", export_id="SHOP")

    async def change_that_fails() -> None:
        async with transaction(runtime.sessions) as session:
            await publish_event(session, "webhook.test", {"n": 1}, idempotency_key="k")
            raise RuntimeError("the business change failed")

    with pytest.raises(RuntimeError):
        await change_that_fails()
    async with transaction(runtime.sessions) as session:
        published = await publish_event(session, "webhook.test", {"n": 2}, idempotency_key="k")

    assert not published.replayed
    assert await _rows(runtime) == (1, 1)


async def test_concurrent_publications_under_one_key_make_one_event_and_keep_both_transactions(
    runtime: Runtime,
) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/", export_id="SHOP")
    first_written = asyncio.Event()
    second_may_commit = asyncio.Event()

    async def first() -> str:
        async with transaction(runtime.sessions) as session:
            published = await publish_event(session, "webhook.test", {"n": 1}, idempotency_key="k")
            first_written.set()
            await second_may_commit.wait()
        return published.id

    async def second() -> tuple[str, bool]:
        await first_written.wait()
        async with transaction(runtime.sessions) as session:
            published = await publish_event(session, "webhook.test", {"n": 1}, idempotency_key="k")
            # The caller's own work in the same transaction still commits after the replay.
            data = EventTypeCreate.model_validate({"name": "after.replay", "description": ""})
            await create_event_type(session, data, CLI_ACTOR)
        return published.id, published.replayed

    first_task = asyncio.create_task(first())
    second_task = asyncio.create_task(second())
    await first_written.wait()
    await _until_second_writer_waits(runtime)
    second_may_commit.set()
    first_id = await first_task
    second_id, replayed = await second_task

    assert second_id == first_id
    assert replayed
    assert await _rows(runtime) == (1, 1)
    async with transaction(runtime.sessions) as session:
        assert await session.get(EventType, "after.replay") is not None


async def _until_second_writer_waits(runtime: Runtime) -> None:
    """On PostgreSQL, until the second insert waits on the first's unique index entry: the
    race the savepoint is there for. (SQLite queues the second writer at its BEGIN.)"""
    if runtime.engine.dialect.name != "postgresql":
        return
    waiting_for_lock = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    async with runtime.engine.connect() as connection:
        # Another connection's state: there is no event to await, only a row to look for.
        while True:
            waiting = await connection.scalar(waiting_for_lock)
            # PostgreSQL reads pg_stat_activity once per transaction and keeps that view to
            # its end: a look before the second writer waited would otherwise be the last.
            await connection.rollback()
            if waiting:
                return
            await asyncio.sleep(0.01)


async def test_the_cli_publishes_once_under_an_idempotency_key(runtime: Runtime) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/", export_id="SHOP")
    arguments = ("webhook.test", "--data", '{"n": 1}', "--idempotency-key", "nightly-2026-12-03")

    first = await asyncio.to_thread(_cli, runtime, *arguments, "--json")
    again = await asyncio.to_thread(_cli, runtime, *arguments)

    assert first.returncode == again.returncode == 0, again.stderr
    first_id = json.loads(first.stdout)["id"]
    assert again.stdout.startswith(f"Already published as {first_id} under this idempotency key")
    assert await _rows(runtime) == (1, 1)


async def test_a_batch_publishes_every_event_in_one_go(
    runtime: Runtime, admin_client: httpx.AsyncClient
) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/a", export_id="A")
    await subscribe(runtime, "http://127.0.0.1:9/b", export_id="B")
    events = [
        {"type": "webhook.test", "data": {"n": 1}},
        {"type": "webhook.test", "data": {"n": 2}, "integration": "A"},
        {"type": "webhook.test", "data": {"n": 3}, "integration": "b"},
    ]

    answer = await admin_client.post("/api/management/events/batch", json={"events": events})

    assert answer.status_code == 202
    published = answer.json()["events"]
    assert [each["deliveries"] for each in published] == [2, 1, 1]
    assert len({each["id"] for each in published}) == 3
    assert await _rows(runtime) == (3, 4)


async def test_a_batch_replays_an_event_published_earlier_under_its_key(
    runtime: Runtime, admin_client: httpx.AsyncClient
) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/", export_id="A")
    event = {"type": "webhook.test", "data": {"n": 1}, IDEM: "once"}
    first = await admin_client.post("/api/management/events", json=event)

    answer = await admin_client.post(
        "/api/management/events/batch",
        json={"events": [event, {"type": "webhook.test", "data": {"n": 2}}]},
    )

    assert answer.json()["events"][0] == first.json()
    assert await _rows(runtime) == (2, 2)


@pytest.mark.parametrize(
    ("events", "field"),
    [
        (
            [
                {"type": "order.created", "data": {"order_id": "A"}},
                {"type": "order.created", "data": {"order_id": "B", "total": -1}},
            ],
            "events.1.data.total",
        ),
        (
            [{"type": "order.created", "data": {"order_id": "A"}}, {"type": "no.such", "data": {}}],
            "events.1.type",
        ),
        (
            [{"type": "order.created", "data": {"order_id": "A"}, "integration": "NOPE"}],
            "events.0.integration",
        ),
        (
            [
                {"type": "order.created", "data": {"order_id": "A"}},
                {"type": "order.created", "data": {"order_id": "A"}, "x": 1},
            ],
            "events.1.x",
        ),
        (
            [
                {"type": "order.created", "data": {"order_id": "A"}, IDEM: "k"},
                {"type": "order.created", "data": {"order_id": "B"}, IDEM: "k"},
            ],
            f"events.1.{IDEM}",
        ),
        ([], "events"),
        ([{"type": "order.created", "data": {"order_id": "A"}}] * 1001, "events"),
        (["order.created"], "events.0"),
        ({"type": "order.created"}, "events"),
    ],
)
async def test_a_refused_batch_names_the_event_and_field_and_stores_nothing(
    runtime: Runtime, admin_client: httpx.AsyncClient, events: object, field: str
) -> None:
    await _add_order_type(runtime)
    await subscribe(runtime, "http://127.0.0.1:9/", export_id="SHOP")

    answer = await admin_client.post("/api/management/events/batch", json={"events": events})

    assert answer.status_code == 422
    assert field in {error["field"] for error in answer.json()["errors"]}
    assert await _rows(runtime) == (0, 0)


async def test_a_viewer_may_not_publish_a_batch(
    runtime: Runtime, client: httpx.AsyncClient, viewer: ApiUser
) -> None:
    answer = await client.post(
        "/api/management/events/batch",
        json={"events": [{"type": "webhook.test", "data": {}}]},
        headers=viewer.headers,
    )

    assert answer.status_code == 403
    assert await _rows(runtime) == (0, 0)
