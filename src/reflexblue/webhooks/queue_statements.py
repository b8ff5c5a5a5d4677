"""The worker's hot statements, written in each database's own SQL.

A drain runs these for every batch of claims and outcomes. Built with SQLAlchemy's statement
objects, each cost more Python than the database took to run it: building the statement, its
cache key, the ORM's execution path and a type conversion for every value. As text run with
`exec_driver_sql` they keep the caller's transaction and skip all of that.

Values are converted here exactly as the models' column types would store them (`UTCDateTime`:
naive UTC text `YYYY-MM-DD HH:MM:SS.ffffff` on SQLite, aware timestamps on PostgreSQL), so
that what these statements write compares equal to what the ORM writes, and the other way
round: the lease guard on an outcome depends on it.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncConnection

from reflexblue.webhooks.models import RETRY_LANE


class DueDelivery(NamedTuple):
    delivery_id: str
    webhook_id: str


class ClaimedRow(NamedTuple):
    """What a claim reads of one delivery, its event, its webhook and its integration."""

    delivery_id: str
    attempt_count: int
    webhook_id: str
    url: str
    integration_id: str | None
    webhook_failing: bool
    event_id: str
    event_type: str
    event_created_at: datetime
    event_data: str  # the stored JSON text
    request_id: str | None
    secret_sealed: bytes | None
    previous_secret_sealed: bytes | None
    previous_secret_expires_at: datetime | None


class AttemptRow(NamedTuple):
    attempt_id: str
    delivery_id: str
    attempted_at: datetime
    duration_ms: int
    response_status: int | None
    response_body: str
    error: str | None


class DeliveryChange(NamedTuple):
    """What an outcome makes of its delivery, written only while the claim's lease holds."""

    status: str
    attempts_made: int
    next_attempt_at: datetime | None
    delivery_id: str
    lease_until: datetime


# The event's JSON as its stored text on both databases (asyncpg would decode it).
_CLAIMED_COLUMNS = """
    deliveries.id, deliveries.attempt_count,
    webhooks.id, webhooks.url, webhooks.integration_id,
    webhooks.failing_since IS NOT NULL OR webhooks.failure_count > 0,
    events.id, events.type, events.created_at, {event_data}, events.request_id,
    integrations.secret_sealed, integrations.previous_secret_sealed,
    integrations.previous_secret_expires_at
"""


class QueueStatements:
    """The statements for one database; `for_dialect` picks the subclass."""

    async def due(
        self,
        connection: AsyncConnection,
        now: datetime,
        limit: int,
        *,
        skipping: Sequence[str] = (),
        retries_only: bool = False,
    ) -> list[DueDelivery]:
        """Due, unclaimed deliveries of enabled webhooks in due order: only retries, or
        skipping some webhooks, when asked."""
        raise NotImplementedError

    async def lease(
        self, connection: AsyncConnection, delivery_ids: Sequence[str], lease_until: datetime
    ) -> list[ClaimedRow]:
        """Claim these deliveries until `lease_until`; what each attempt needs to be sent."""
        raise NotImplementedError

    async def next_due_at(self, connection: AsyncConnection) -> datetime | None:
        """When the first pending delivery of an enabled webhook falls due."""
        raise NotImplementedError

    async def record(
        self,
        connection: AsyncConnection,
        attempts: Sequence[AttemptRow],
        changes: Sequence[DeliveryChange],
        now: datetime,
    ) -> None:
        """Insert the attempts and settle their deliveries; a change whose lease ran out (the
        delivery was claimed again since) changes nothing."""
        raise NotImplementedError


_QUEUE = "deliveries.status = 'pending'"
# models.RETRY_LANE with its columns named by table, for queries that join others. Written out
# rather than bound: both databases use a partial index only for a condition that implies it.
_RETRY_LANE = " AND ".join(f"deliveries.{part}" for part in RETRY_LANE.split(" AND "))


def for_dialect(dialect_name: str) -> QueueStatements:
    if dialect_name == "sqlite":
        return SqliteQueueStatements()
    if dialect_name == "postgresql":
        return PostgresQueueStatements()
    raise ValueError(f"no queue statements for {dialect_name}")


_CLAIMED_JOINS = """
    JOIN events ON events.id = deliveries.event_id
    JOIN webhooks ON webhooks.id = deliveries.webhook_id
    LEFT JOIN integrations ON integrations.id = webhooks.integration_id
"""


# --- SQLite --------------------------------------------------------------------------------


def sqlite_time(moment: datetime) -> str:
    """An aware datetime as SQLAlchemy's SQLite DATETIME stores it after UTCDateTime."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_time_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else sqlite_time(moment)


def _from_sqlite_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


_SQLITE_CLAIMED = (
    "SELECT "  # noqa: S608 - the text is all constants
    + _CLAIMED_COLUMNS.format(event_data="events.data")
    + " FROM deliveries"
    + _CLAIMED_JOINS
)


def _placeholders(count: int) -> str:
    return ", ".join("?" * count)


# Without statistics SQLite would read the queue's index for the retries and pass over every
# first attempt due earlier, the whole backlog, on every claim; INDEXED BY makes it read the
# retry lane's own index (which PostgreSQL takes by itself).
_SQLITE_DUE = """
    SELECT deliveries.id, deliveries.webhook_id
    FROM deliveries {index}
    JOIN webhooks ON webhooks.id = deliveries.webhook_id
    WHERE {lane}
      AND deliveries.next_attempt_at <= ?
      AND (deliveries.locked_until IS NULL OR deliveries.locked_until < ?)
      AND webhooks.enabled = 1 {skipping}
    ORDER BY deliveries.next_attempt_at
    LIMIT ?
"""


class SqliteQueueStatements(QueueStatements):
    async def due(
        self,
        connection: AsyncConnection,
        now: datetime,
        limit: int,
        *,
        skipping: Sequence[str] = (),
        retries_only: bool = False,
    ) -> list[DueDelivery]:
        sql = sqlite_due_sql(skipping=len(skipping), retries_only=retries_only)
        at = sqlite_time(now)
        rows = await connection.exec_driver_sql(sql, (at, at, *skipping, limit))
        return [DueDelivery._make(row) for row in rows]

    async def lease(
        self, connection: AsyncConnection, delivery_ids: Sequence[str], lease_until: datetime
    ) -> list[ClaimedRow]:
        # SQLite's RETURNING may not name the tables an UPDATE joins, hence two statements.
        placeholders = _placeholders(len(delivery_ids))
        sql = f"UPDATE deliveries SET locked_until = ? WHERE id IN ({placeholders})"  # noqa: S608
        await connection.exec_driver_sql(sql, (sqlite_time(lease_until), *delivery_ids))
        sql = f"{_SQLITE_CLAIMED} WHERE deliveries.id IN ({placeholders})"
        rows = await connection.exec_driver_sql(sql, tuple(delivery_ids))
        return [_claimed_from_sqlite(row) for row in rows]

    async def next_due_at(self, connection: AsyncConnection) -> datetime | None:
        found = await connection.exec_driver_sql(
            "SELECT min(deliveries.next_attempt_at) FROM deliveries "
            "JOIN webhooks ON webhooks.id = deliveries.webhook_id "
            "WHERE deliveries.status = 'pending' AND webhooks.enabled = 1"
        )
        text = found.scalar()
        return None if text is None else _from_sqlite_time(text)

    async def record(
        self,
        connection: AsyncConnection,
        attempts: Sequence[AttemptRow],
        changes: Sequence[DeliveryChange],
        now: datetime,
    ) -> None:
        await connection.exec_driver_sql(
            "INSERT INTO attempts (id, delivery_id, attempted_at, duration_ms, response_status,"
            " response_body, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(a.attempt_id, a.delivery_id, sqlite_time(a.attempted_at), *a[3:]) for a in attempts],
        )
        settled_at = sqlite_time(now)
        await connection.exec_driver_sql(
            "UPDATE deliveries SET status = ?, attempt_count = ?, next_attempt_at = ?,"
            " locked_until = NULL, updated_at = ? WHERE id = ? AND locked_until = ?",
            [
                (
                    c.status,
                    c.attempts_made,
                    _sqlite_time_or_none(c.next_attempt_at),
                    settled_at,
                    c.delivery_id,
                    sqlite_time(c.lease_until),
                )
                for c in changes
            ],
        )


def sqlite_due_sql(*, skipping: int = 0, retries_only: bool = False) -> str:
    """The claim's look for due deliveries on SQLite (public for the query plan tests)."""
    index = "INDEXED BY ix_deliveries_retries_due" if retries_only else ""
    lane = _RETRY_LANE if retries_only else _QUEUE
    skip = f"AND deliveries.webhook_id NOT IN ({_placeholders(skipping)})" if skipping else ""
    return _SQLITE_DUE.format(index=index, lane=lane, skipping=skip)


def _claimed_from_sqlite(row: Any) -> ClaimedRow:
    values = list(row)
    values[5] = bool(values[5])  # SQLite answers 0 or 1
    values[8] = _from_sqlite_time(values[8])
    if values[13] is not None:
        values[13] = _from_sqlite_time(values[13])
    return ClaimedRow._make(values)


# --- PostgreSQL ----------------------------------------------------------------------------

_POSTGRES_CLAIMED_COLUMNS = _CLAIMED_COLUMNS.format(event_data="events.data::text")
# One statement where SQLite needs two: the lease written and the claim read in one round trip.
_POSTGRES_LEASE = f"""
    UPDATE deliveries SET locked_until = $1
    FROM events, webhooks LEFT JOIN integrations ON integrations.id = webhooks.integration_id
    WHERE deliveries.id = ANY($2::varchar[])
      AND events.id = deliveries.event_id AND webhooks.id = deliveries.webhook_id
    RETURNING {_POSTGRES_CLAIMED_COLUMNS}
"""  # noqa: S608 - the text is all constants

# SKIP LOCKED: rows another worker is claiming right now are passed over, not waited for.
_POSTGRES_DUE = """
    SELECT deliveries.id, deliveries.webhook_id
    FROM deliveries
    JOIN webhooks ON webhooks.id = deliveries.webhook_id
    WHERE {lane}
      AND deliveries.next_attempt_at <= $1
      AND (deliveries.locked_until IS NULL OR deliveries.locked_until < $1)
      AND webhooks.enabled IS true {skipping}
    ORDER BY deliveries.next_attempt_at
    LIMIT $2
    FOR UPDATE OF deliveries SKIP LOCKED
"""


def postgres_due_sql(*, skipping: bool = False, retries_only: bool = False) -> str:
    """The claim's look for due deliveries on PostgreSQL (public for the query plan tests);
    with `skipping`, a third parameter holds the webhooks to skip."""
    skip = "AND deliveries.webhook_id <> ALL($3::varchar[])" if skipping else ""
    return _POSTGRES_DUE.format(lane=_RETRY_LANE if retries_only else _QUEUE, skipping=skip)


class PostgresQueueStatements(QueueStatements):
    async def due(
        self,
        connection: AsyncConnection,
        now: datetime,
        limit: int,
        *,
        skipping: Sequence[str] = (),
        retries_only: bool = False,
    ) -> list[DueDelivery]:
        sql = postgres_due_sql(skipping=bool(skipping), retries_only=retries_only)
        parameters: tuple[Any, ...] = (now, limit, list(skipping)) if skipping else (now, limit)
        rows = await connection.exec_driver_sql(sql, parameters)
        return [DueDelivery._make(row) for row in rows]

    async def lease(
        self, connection: AsyncConnection, delivery_ids: Sequence[str], lease_until: datetime
    ) -> list[ClaimedRow]:
        rows = await connection.exec_driver_sql(_POSTGRES_LEASE, (lease_until, list(delivery_ids)))
        return [ClaimedRow._make(row) for row in rows]

    async def next_due_at(self, connection: AsyncConnection) -> datetime | None:
        found = await connection.exec_driver_sql(
            "SELECT min(deliveries.next_attempt_at) FROM deliveries "
            "JOIN webhooks ON webhooks.id = deliveries.webhook_id "
            "WHERE deliveries.status = 'pending' AND webhooks.enabled IS true"
        )
        next_due: datetime | None = found.scalar()
        return next_due

    async def record(
        self,
        connection: AsyncConnection,
        attempts: Sequence[AttemptRow],
        changes: Sequence[DeliveryChange],
        now: datetime,
    ) -> None:
        await connection.exec_driver_sql(
            "INSERT INTO attempts (id, delivery_id, attempted_at, duration_ms, response_status,"
            " response_body, error) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            list(attempts),
        )
        await connection.exec_driver_sql(
            "UPDATE deliveries SET status = $1, attempt_count = $2, next_attempt_at = $3,"
            " locked_until = NULL, updated_at = $4 WHERE id = $5 AND locked_until = $6",
            [(c.status, c.attempts_made, c.next_attempt_at, now, *c[3:]) for c in changes],
        )
