"""The worker's own SQL writes what the ORM reads, and the lease guards every outcome."""

from datetime import timedelta

from sqlalchemy import select

from reflexblue.core.database import connection_transaction, transaction, utcnow
from reflexblue.core.runtime import Runtime
from reflexblue.webhooks.models import Delivery
from reflexblue.webhooks.publishing import publish_event
from reflexblue.webhooks.queue_statements import (
    AttemptRow,
    DeliveryChange,
    QueueStatements,
    for_dialect,
)
from tests.delivery.conftest import subscribe


async def _queued_delivery(runtime: Runtime) -> str:
    await subscribe(runtime, "http://127.0.0.1:9/hook")
    async with transaction(runtime.sessions) as session:
        await publish_event(session, "webhook.test", {"n": 1})
        delivery_id: str | None = await session.scalar(select(Delivery.id))
    assert delivery_id is not None
    return delivery_id


async def _delivery(runtime: Runtime, delivery_id: str) -> Delivery:
    async with transaction(runtime.sessions) as session:
        found = await session.get(Delivery, delivery_id)
    assert found is not None
    return found


def _statements(runtime: Runtime) -> QueueStatements:
    return for_dialect(runtime.engine.dialect.name)


async def test_a_lease_reads_back_through_the_orm_as_written(runtime: Runtime) -> None:
    delivery_id = await _queued_delivery(runtime)
    lease_until = utcnow() + timedelta(seconds=35)

    async with connection_transaction(runtime.engine) as connection:
        claimed = await _statements(runtime).lease(connection, [delivery_id], lease_until)

    assert [row.delivery_id for row in claimed] == [delivery_id]
    assert (await _delivery(runtime, delivery_id)).locked_until == lease_until


async def test_a_claimed_delivery_is_due_no_more_until_its_lease_ends(runtime: Runtime) -> None:
    delivery_id = await _queued_delivery(runtime)
    now = utcnow()
    statements = _statements(runtime)

    async with connection_transaction(runtime.engine) as connection:
        due_before = await statements.due(connection, now, 10)
        await statements.lease(connection, [delivery_id], now + timedelta(seconds=35))
    async with connection_transaction(runtime.engine) as connection:
        due_during = await statements.due(connection, now + timedelta(seconds=1), 10)
        due_after = await statements.due(connection, now + timedelta(seconds=36), 10)

    assert [row.delivery_id for row in due_before] == [delivery_id]
    assert due_during == []
    assert [row.delivery_id for row in due_after] == [delivery_id]


async def test_an_outcome_under_a_lease_that_ran_out_changes_nothing(runtime: Runtime) -> None:
    delivery_id = await _queued_delivery(runtime)
    statements = _statements(runtime)
    first_lease = utcnow() + timedelta(seconds=35)
    second_lease = first_lease + timedelta(seconds=40)  # another worker's claim, made later
    async with connection_transaction(runtime.engine) as connection:
        await statements.lease(connection, [delivery_id], first_lease)
        await statements.lease(connection, [delivery_id], second_lease)

    async with connection_transaction(runtime.engine) as connection:
        attempt = AttemptRow("att_stale", delivery_id, utcnow(), 3, 204, "", None)
        stale = DeliveryChange("succeeded", 1, None, delivery_id, first_lease)
        await statements.record(connection, [attempt], [stale], utcnow())
    after_stale = await _delivery(runtime, delivery_id)

    async with connection_transaction(runtime.engine) as connection:
        attempt = AttemptRow("att_current", delivery_id, utcnow(), 3, 204, "", None)
        current = DeliveryChange("succeeded", 1, None, delivery_id, second_lease)
        await statements.record(connection, [attempt], [current], utcnow())
    after_current = await _delivery(runtime, delivery_id)

    assert (after_stale.status, after_stale.locked_until) == ("pending", second_lease)
    assert (after_current.status, after_current.locked_until) == ("succeeded", None)
