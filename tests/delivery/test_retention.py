from datetime import timedelta

from sqlalchemy import func, select

from reflexblue.core.database import transaction, utcnow
from reflexblue.core.runtime import Runtime
from reflexblue.webhooks.models import Attempt, Delivery, Event
from reflexblue.webhooks.publishing import publish_event
from reflexblue.webhooks.retention import prune_finished_deliveries
from tests.delivery.conftest import subscribe


async def _publish_with_status(runtime: Runtime, status: str, age: timedelta) -> str:
    async with transaction(runtime.sessions) as session:
        event = await publish_event(session, "webhook.test", {})
        delivery = await session.scalar(select(Delivery).where(Delivery.event_id == event.id))
        assert delivery is not None
        delivery.status = status
        delivery.updated_at = utcnow() - age
        session.add(Attempt(delivery_id=delivery.id, duration_ms=1, response_status=200))
        event_row = await session.get(Event, event.id)
        assert event_row is not None
        event_row.created_at = utcnow() - age
    return event.id


async def _remaining(runtime: Runtime) -> set[str]:
    async with transaction(runtime.sessions) as session:
        return set(await session.scalars(select(Delivery.event_id)))


async def test_only_finished_deliveries_older_than_the_cutoff_are_pruned(runtime: Runtime) -> None:
    await subscribe(runtime, "http://127.0.0.1:9/")
    old_succeeded = await _publish_with_status(runtime, "succeeded", timedelta(days=40))
    old_failed = await _publish_with_status(runtime, "failed", timedelta(days=40))
    old_pending = await _publish_with_status(runtime, "pending", timedelta(days=40))
    recent = await _publish_with_status(runtime, "succeeded", timedelta(days=1))

    pruned = await prune_finished_deliveries(runtime.sessions, utcnow() - timedelta(days=30))

    assert pruned == 2
    assert await _remaining(runtime) == {old_pending, recent}
    async with transaction(runtime.sessions) as session:
        events = set(await session.scalars(select(Event.id)))
        attempts = await session.scalar(select(func.count()).select_from(Attempt))
    assert old_succeeded not in events
    assert old_failed not in events
    assert attempts == 2
