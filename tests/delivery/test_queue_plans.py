"""The claim queries read their indexes, whatever the size of the deliveries table."""

from datetime import timedelta

from reflexblue.core.database import transaction, utcnow
from reflexblue.core.runtime import Runtime
from reflexblue.webhooks.queue_statements import postgres_due_sql, sqlite_due_sql, sqlite_time


async def _plan(runtime: Runtime, *, retries_only: bool) -> str:
    """The database's own account of how it would run the claim query."""
    later = utcnow() + timedelta(hours=1)
    async with transaction(runtime.sessions) as session:
        connection = await session.connection()
        if runtime.engine.dialect.name == "postgresql":
            # The tables of a test are nearly empty; without this, a scan is cheapest.
            await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            rows = await connection.exec_driver_sql(
                "EXPLAIN " + postgres_due_sql(retries_only=retries_only), (later, 50)
            )
        else:
            at = sqlite_time(later)
            rows = await connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + sqlite_due_sql(retries_only=retries_only), (at, at, 50)
            )
        return "\n".join(str(row[-1]) for row in rows)


async def test_the_retry_lane_is_read_from_its_partial_index(runtime: Runtime) -> None:
    assert "ix_deliveries_retries_due" in await _plan(runtime, retries_only=True)


async def test_the_queue_is_read_from_its_index_by_status_and_due_time(runtime: Runtime) -> None:
    assert "ix_deliveries_status_next_attempt_at" in await _plan(runtime, retries_only=False)
