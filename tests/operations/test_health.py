"""Webhook health: failing with a count, healthy again, and disabled with the operator told."""

import dataclasses
from datetime import timedelta

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook as Verifier

from reflexblue.core.database import transaction
from reflexblue.core.runtime import Runtime
from reflexblue.webhooks.models import Delivery, Event, Webhook
from reflexblue.webhooks.operator import OPERATOR_WEBHOOK_ID
from reflexblue.webhooks.publishing import publish_event
from tests.delivery.conftest import Subscriber, eventually, running_worker, subscribe
from tests.operations.conftest import API, api_key_of, new_signing_secret, read_webhook
from tests.support.receiver import Receiver, running_receiver


def _answering(*statuses: int):  # type: ignore[no-untyped-def]
    answers = iter(statuses)

    async def respond(_: web.Request) -> web.StreamResponse:
        return web.Response(status=next(answers, 200))

    return respond


async def _always(status: int, _: web.Request) -> web.StreamResponse:
    return web.Response(status=status)


async def _publish(runtime: Runtime) -> str:
    async with transaction(runtime.sessions) as session:
        return (await publish_event(session, "webhook.test", {"n": 1})).id


async def _webhook(runtime: Runtime, webhook_id: str) -> Webhook:
    async with transaction(runtime.sessions) as session:
        found = await session.get(Webhook, webhook_id)
    assert found is not None
    return found


def _delivery_status_is(runtime: Runtime, event_id: str, status: str):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        async with transaction(runtime.sessions) as session:
            found = await session.scalar(select(Delivery).where(Delivery.event_id == event_id))
        return found is not None and found.status == status

    return check


def _with_operator(runtime: Runtime, url: str, secret: str) -> Runtime:
    changes = {"operator_webhook_url": url, "operator_webhook_secret": SecretStr(secret)}
    return dataclasses.replace(runtime, settings=runtime.settings.model_copy(update=changes))


async def test_a_failing_webhook_shows_since_when_and_how_many_attempts_failed(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    async with running_receiver(lambda r: _always(500, r)) as receiver:
        shop = await subscribe(runtime, receiver.url)
        async with running_worker(runtime):
            event_id = await _publish(runtime)
            await eventually(_delivery_status_is(runtime, event_id, "failed"), "given up")

    webhook = await read_webhook(
        client, await api_key_of(runtime, shop.integration_id), shop.webhook_id
    )
    # The schedule "0,0" makes three attempts in all.
    assert (webhook["health"], webhook["failure_count"], webhook["enabled"]) == ("failing", 3, True)
    assert isinstance(webhook["failing_since"], str)


async def test_a_success_makes_a_failing_webhook_healthy_again(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    async with running_receiver(_answering(500, 503)) as receiver:
        shop = await subscribe(runtime, receiver.url)
        async with running_worker(runtime):
            event_id = await _publish(runtime)
            await eventually(_delivery_status_is(runtime, event_id, "succeeded"), "delivered")

    webhook = await read_webhook(
        client, await api_key_of(runtime, shop.integration_id), shop.webhook_id
    )
    assert (webhook["health"], webhook["failure_count"], webhook["failing_since"]) == (
        "healthy",
        0,
        None,
    )


async def test_enabling_a_disabled_webhook_again_clears_its_failures(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    shop = await subscribe(runtime, "http://127.0.0.1:9/hook")
    async with transaction(runtime.sessions) as session:
        webhook = await session.get(Webhook, shop.webhook_id)
        assert webhook is not None
        webhook.enabled, webhook.disabled_reason = False, "The receiver answered 410 Gone."
        webhook.failing_since, webhook.failure_count = webhook.created_at, 9
    headers = await api_key_of(runtime, shop.integration_id)
    before = await read_webhook(client, headers, shop.webhook_id)

    response = await client.patch(
        f"{API}/webhooks/{shop.webhook_id}", json={"enabled": True}, headers=headers
    )

    assert before["health"] == "disabled"
    assert response.status_code == 200
    after = response.json()
    assert (after["health"], after["failure_count"], after["failing_since"]) == ("healthy", 0, None)
    assert after["disabled_reason"] is None


async def _disable_and_watch_operator(
    runtime: Runtime, operator: Receiver, secret: str, *, gone: bool
) -> Subscriber:
    status = 410 if gone else 500
    async with running_receiver(lambda r: _always(status, r)) as receiver:
        shop = await subscribe(runtime, receiver.url)
        if not gone:
            async with transaction(runtime.sessions) as session:
                webhook = await session.get(Webhook, shop.webhook_id)
                assert webhook is not None
                # Failing for six days already, against the default limit of five.
                webhook.failing_since = webhook.created_at - timedelta(days=6)
        async with running_worker(_with_operator(runtime, operator.url + "/ops", secret)):
            await _publish(runtime)

            async def operator_told() -> bool:
                async with transaction(runtime.sessions) as session:
                    query = select(func.count()).where(
                        Delivery.webhook_id == OPERATOR_WEBHOOK_ID, Delivery.status != "pending"
                    )
                    return bool(await session.scalar(query))

            await eventually(operator_told, "the operator's webhook got its event")
    return shop


@pytest.mark.parametrize(
    ("gone", "reason"),
    [(True, "410 Gone"), (False, "Every attempt failed since")],
    ids=["gone", "failing-too-long"],
)
async def test_a_disabled_webhook_is_reported_to_the_operator_webhook_once_and_signed(
    runtime: Runtime, gone: bool, reason: str
) -> None:
    secret = new_signing_secret()
    async with running_receiver() as operator:
        shop = await _disable_and_watch_operator(runtime, operator, secret, gone=gone)

    assert len(operator.received) == 1
    request = operator.received[0]
    payload = Verifier(secret).verify(request.body, request.headers)
    data = payload["data"]
    assert payload["type"] == "webhook.disabled"
    assert request.path == "/ops"
    assert (data["webhook_id"], data["integration_id"], data["export_id"]) == (
        shop.webhook_id,
        shop.integration_id,
        "SHOP",
    )
    assert reason in data["reason"]
    assert data["url"] == (await _webhook(runtime, shop.webhook_id)).url
    assert set(data) == {
        "webhook_id",
        "integration_id",
        "export_id",
        "url",
        "reason",
        "disabled_at",
    }
    async with transaction(runtime.sessions) as session:
        event = await session.scalar(select(Event).where(Event.type == "webhook.disabled"))
    assert event is not None
    assert request.headers["webhook-id"] == event.id


async def test_an_operator_webhook_answering_410_is_not_disabled_and_not_reported(
    runtime: Runtime,
) -> None:
    secret = new_signing_secret()
    async with running_receiver(lambda r: _always(410, r)) as operator:
        await _disable_and_watch_operator(runtime, operator, secret, gone=True)

    operator_webhook = await _webhook(runtime, OPERATOR_WEBHOOK_ID)
    async with transaction(runtime.sessions) as session:
        reports = await session.scalar(
            select(func.count()).select_from(Event).where(Event.type == "webhook.disabled")
        )
    assert operator_webhook.enabled is True
    assert operator_webhook.failure_count == 1
    assert reports == 1
    assert len(operator.received) == 1


async def test_without_an_operator_url_disabling_queues_no_report(runtime: Runtime) -> None:
    async with running_receiver(lambda r: _always(410, r)) as receiver:
        shop = await subscribe(runtime, receiver.url)
        async with running_worker(runtime):
            event_id = await _publish(runtime)
            await eventually(_delivery_status_is(runtime, event_id, "failed"), "given up")

    async with transaction(runtime.sessions) as session:
        reports = await session.scalar(
            select(func.count()).select_from(Event).where(Event.type == "webhook.disabled")
        )
    assert (await _webhook(runtime, shop.webhook_id)).enabled is False
    assert reports == 0


async def test_the_operator_webhook_belongs_to_no_integration_and_no_caller_sees_it(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    secret = new_signing_secret()
    async with running_receiver() as operator:
        shop = await _disable_and_watch_operator(runtime, operator, secret, gone=True)
    headers = await api_key_of(runtime, shop.integration_id)

    listed = await client.get(f"{API}/webhooks", headers=headers)
    direct = await client.get(f"{API}/webhooks/{OPERATOR_WEBHOOK_ID}", headers=headers)

    assert [item["id"] for item in listed.json()["items"]] == [shop.webhook_id]
    assert direct.status_code == 404
    assert (await _webhook(runtime, OPERATOR_WEBHOOK_ID)).integration_id is None
