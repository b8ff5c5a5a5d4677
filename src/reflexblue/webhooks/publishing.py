"""Publishing events: the event and one delivery per matching webhook, in the caller's transaction.

Nothing is sent here. The deliveries are rows in the queue table, committed (or rolled back)
together with whatever else the caller's transaction changes; the worker sends them.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator
from referencing.exceptions import Unresolvable
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.core.database import Base, new_id, utcnow
from reflexblue.core.errors import FieldError, NotFound, ValidationFailed
from reflexblue.webhooks.event_types import get_event_type
from reflexblue.webhooks.models import Delivery, DeliveryStatus, Event, Webhook
from reflexblue.webhooks.schemas import ALL_EVENT_TYPES, local_schema_registry

NOTIFY_CHANNEL = "reflexblue_deliveries"
_EVENTS = Base.metadata.tables["events"]
_DELIVERIES = Base.metadata.tables["deliveries"]
IDEMPOTENCY_KEY_FIELD = "idempotency_key"


@dataclass(frozen=True)
class NewEvent:
    """One event to publish: its type and data, optionally the one integration it is for and
    the publisher's key for publishing it only once."""

    type: str
    data: dict[str, Any]
    integration_id: str | None = None
    idempotency_key: str | None = None
    # The API request that published it, when not the one the whole batch came with.
    request_id: str | None = None


@dataclass(frozen=True)
class PublishedEvent:
    id: str
    deliveries: int
    # True when the idempotency key had already published this event: nothing new was written.
    replayed: bool = False


class EventRefused(ValidationFailed):
    """One event of several was refused; `index` says which."""

    def __init__(self, index: int, refusal: ValidationFailed) -> None:
        super().__init__(refusal.detail, refusal.errors)
        self.index = index


async def publish_event(
    session: AsyncSession,
    event_type: str,
    data: dict[str, Any],
    *,
    integration_id: str | None = None,
    idempotency_key: str | None = None,
    request_id: str | None = None,
) -> PublishedEvent:
    """Record an event for every enabled webhook subscribed to its type.

    With `integration_id`, only that integration's webhooks receive it. With an
    `idempotency_key`, publishing the same content again under the key returns the event of the
    first time instead of a new one, for as long as that event is kept; other content under the
    key is refused. Call the worker's `wake()` (or ring the runtime's doorbell) after the
    transaction commits.
    """
    new = NewEvent(event_type, data, integration_id, idempotency_key)
    try:
        [published] = await publish_events(session, [new], request_id=request_id)
    except EventRefused as refused:
        raise ValidationFailed(refused.detail, refused.errors) from None
    return published


async def publish_events(
    session: AsyncSession, events: Sequence[NewEvent], *, request_id: str | None = None
) -> list[PublishedEvent]:
    """Publish several events in the caller's transaction by the rules of `publish_event`,
    writing the rows of those without an idempotency key in bulk. Raises EventRefused for the
    first refused one; the caller's transaction should then roll back."""
    batch = PublicationBatch(session, utcnow(), request_id)
    published = []
    for index, new in enumerate(events):
        try:
            published.append(await batch.add(new))
        except ValidationFailed as refusal:
            raise EventRefused(index, refusal) from None
    await batch.write()
    return published


class PublicationBatch:
    """The rows of one bulk write, and what was looked up for them along the way.

    `add` refuses an event (ValidationFailed) before writing anything of it, so a caller may
    go on adding others after a refusal; `write` then writes the rows of those accepted.
    """

    def __init__(self, session: AsyncSession, now: datetime, request_id: str | None) -> None:
        self._session = session
        self._now = now
        self._request_id = request_id
        self._schemas: dict[str, dict[str, Any] | None] = {}
        self._subscribers: dict[str | None, list[tuple[str, list[str]]]] = {}
        self._events: list[dict[str, Any]] = []
        self._deliveries: list[dict[str, Any]] = []
        self._queued_any = False

    async def add(self, new: NewEvent) -> PublishedEvent:
        if new.idempotency_key is not None:
            return await self._add_once(new, new.idempotency_key)
        await self._check(new)
        event_id = new_id("evt")
        webhook_ids = await self._subscribed(new.type, new.integration_id)
        self._events.append(self._event_row(event_id, new))
        self._deliveries.extend(_delivery_row(event_id, w, self._now) for w in webhook_ids)
        return PublishedEvent(id=event_id, deliveries=len(webhook_ids))

    async def write(self) -> None:
        # Into the tables rather than through the ORM's bulk insert: the rows are complete
        # already, and the ORM's per-row bookkeeping cost more than the statement.
        if self._events:
            await self._session.execute(insert(_EVENTS), self._events)
        if self._deliveries:
            await self._session.execute(insert(_DELIVERIES), self._deliveries)
            self._queued_any = True
        if self._queued_any and self._session.get_bind().dialect.name == "postgresql":
            # Delivered to listening workers when (and only if) the transaction commits.
            await self._session.execute(
                text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL}
            )

    async def _add_once(self, new: NewEvent, key: str) -> PublishedEvent:
        fingerprint = _fingerprint(new.type, new.data, new.integration_id)
        earlier = await _event_published_under(self._session, key)
        if earlier is not None:
            return await _replay(self._session, earlier, fingerprint)
        await self._check(new)
        event = Event(**{**self._event_row(new_id("evt"), new), "fingerprint": fingerprint})
        concurrent = await _insert_unless_key_taken(self._session, event, key)
        if concurrent is not None:
            return await _replay(self._session, concurrent, fingerprint)
        webhook_ids = await self._subscribed(new.type, new.integration_id)
        self._session.add_all(
            Delivery(**_delivery_row(event.id, w, self._now)) for w in webhook_ids
        )
        await self._session.flush()
        self._queued_any = self._queued_any or bool(webhook_ids)
        return PublishedEvent(id=event.id, deliveries=len(webhook_ids))

    async def _check(self, new: NewEvent) -> None:
        if new.type not in self._schemas:
            try:
                self._schemas[new.type] = (await get_event_type(self._session, new.type)).schema
            except NotFound:
                message = f"No event type is named {new.type!r}; create it first."
                raise ValidationFailed(message, [FieldError("type", message)]) from None
        schema = self._schemas[new.type]
        if schema is not None:
            _check_against_schema(schema, new.data)

    async def _subscribed(self, event_type: str, integration_id: str | None) -> list[str]:
        """Ids of the enabled webhooks taking this type, looked up once per target."""
        if integration_id not in self._subscribers:
            query = select(Webhook.id, Webhook.event_types).where(Webhook.enabled.is_(True))
            if integration_id is not None:
                query = query.where(Webhook.integration_id == integration_id)
            rows = await self._session.execute(query)
            self._subscribers[integration_id] = [(row.id, row.event_types) for row in rows]
        # TODO: event types are a JSON list, matched here rather than in SQL; a subscription
        # table would let the database do it once webhooks number in the hundreds of thousands.
        return [
            webhook_id
            for webhook_id, types in self._subscribers[integration_id]
            if ALL_EVENT_TYPES in types or event_type in types
        ]

    def _event_row(self, event_id: str, new: NewEvent) -> dict[str, Any]:
        return {
            "id": event_id,
            "type": new.type,
            "data": new.data,
            "integration_id": new.integration_id,
            "created_at": self._now,
            "idempotency_key": new.idempotency_key,
            "fingerprint": None,
            "request_id": new.request_id or self._request_id,
        }


async def _event_published_under(session: AsyncSession, idempotency_key: str) -> Event | None:
    found: Event | None = await session.scalar(
        select(Event).where(Event.idempotency_key == idempotency_key)
    )
    return found


async def _insert_unless_key_taken(
    session: AsyncSession, event: Event, idempotency_key: str
) -> Event | None:
    """Insert the event, or return the one a concurrent transaction committed under the key.

    On PostgreSQL the unique index makes the second of two concurrent inserts wait for the
    first and then fail; the savepoint keeps the caller's transaction usable after that. (On
    SQLite writers are serialised from their first statement, so the lookup already saw it.)
    """
    try:
        async with session.begin_nested():
            session.add(event)
            await session.flush()
    except IntegrityError:
        concurrent = await _event_published_under(session, idempotency_key)
        if concurrent is None:
            raise
        return concurrent
    return None


async def _replay(session: AsyncSession, earlier: Event, fingerprint: str) -> PublishedEvent:
    if earlier.fingerprint != fingerprint:
        message = (
            "This idempotency key already published another event; use a new key for new content."
        )
        raise ValidationFailed(message, [FieldError(IDEMPOTENCY_KEY_FIELD, message)])
    deliveries = await session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.event_id == earlier.id)
    )
    return PublishedEvent(id=earlier.id, deliveries=deliveries or 0, replayed=True)


def _fingerprint(event_type: str, data: dict[str, Any], integration_id: str | None) -> str:
    """What makes two publications the same: type, data (key order aside) and target."""
    canonical = json.dumps(
        [event_type, data, integration_id], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _delivery_row(event_id: str, webhook_id: str, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id("dlv"),
        "event_id": event_id,
        "webhook_id": webhook_id,
        "status": DeliveryStatus.PENDING.value,
        "attempt_count": 0,
        "next_attempt_at": now,
        "locked_until": None,
        "created_at": now,
        "updated_at": now,
    }


def _check_against_schema(schema: dict[str, Any], data: dict[str, Any]) -> None:
    validator = Draft202012Validator(schema, registry=local_schema_registry(schema))
    try:
        problems = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
    except (Unresolvable, RecursionError):
        # A reference stored before references were checked, or one that leads back to
        # itself (`{"$ref": "#"}`) and so never reaches a verdict.
        message = "The event type's schema cannot be applied; ask an administrator to fix it."
        raise ValidationFailed(message, [FieldError("type", message)]) from None
    if not problems:
        return
    errors = [
        FieldError(
            "data." + ".".join(str(p) for p in problem.path) if problem.path else "data",
            problem.message,
        )
        for problem in problems[:20]
    ]
    raise ValidationFailed("The data does not match the event type's schema.", errors)
