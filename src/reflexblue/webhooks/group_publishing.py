"""Publishing the events of many concurrent API requests in shared transactions.

Each request of `POST /api/management/events` publishes one event. Giving each its own
transaction makes the database's per-transaction work (taking SQLite's write lock, the
commit, on PostgreSQL a round trip per statement) the cost of every event. Here requests
queue their event; one task takes everything queued, writes it as one bulk publication in one
transaction, and answers each request once that transaction has committed. A lone request is
written at once, so nothing waits for company; under load, the events that arrive while one
transaction runs go together in the next.

Every request still gets exactly its own answer: an event refused (an unknown type, data
against its schema, an unknown integration) is refused alone, before anything of it is written,
and the others go on; a transaction that fails fails every request in it, and none of them
was stored.
"""

import asyncio
import logging
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reflexblue.core.database import transaction, utcnow
from reflexblue.core.errors import FieldError, NotFound, ValidationFailed
from reflexblue.integrations.service import get_integration_by_export_id
from reflexblue.webhooks.publishing import NewEvent, PublicationBatch, PublishedEvent

logger = logging.getLogger(__name__)

# Enough to take the cost of a transaction off each event; small enough that one transaction
# holds SQLite's write lock for a few milliseconds only.
EVENTS_PER_TRANSACTION_MAX = 500
TARGET_FIELD = "integration"


@dataclass
class _Publication:
    event: NewEvent
    export_id: str | None
    answer: asyncio.Future[PublishedEvent]


class GroupPublisher:
    """Publishes events from concurrent callers of one event loop, several per transaction."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], committed: asyncio.Event):
        self._sessions = sessions
        # Set after each transaction that queued deliveries, to wake this process's worker.
        self._committed = committed
        self._waiting: list[_Publication] = []
        self._writer: asyncio.Task[None] | None = None

    async def publish(self, event: NewEvent, export_id: str | None = None) -> PublishedEvent:
        """Publish `event`, for the integration with this Export ID when one is given; return
        once it is committed. Raises ValidationFailed when the event is refused."""
        answer = asyncio.get_running_loop().create_future()
        self._waiting.append(_Publication(event, export_id, answer))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_while_waiting())
        # A caller that gives up (its client went away) does not cancel the others' write.
        return await asyncio.shield(answer)

    async def close(self) -> None:
        """Wait for what was queued to be written."""
        if self._writer is not None:
            await self._writer

    async def _write_while_waiting(self) -> None:
        while self._waiting:
            group = self._waiting[:EVENTS_PER_TRANSACTION_MAX]
            del self._waiting[:EVENTS_PER_TRANSACTION_MAX]
            await self._write(group)

    async def _write(self, group: list[_Publication]) -> None:
        try:
            async with transaction(self._sessions) as session:
                outcomes = await _publish_each(session, group)
        except Exception as error:
            # Nothing of the group was stored: each of its callers gets the error to answer.
            logger.warning(
                "shared publishing transaction failed",
                extra={"events": len(group), "error": type(error).__name__},
            )
            for publication in group:
                _settle(publication.answer, error)
            return
        if any(isinstance(o, PublishedEvent) and o.deliveries and not o.replayed for o in outcomes):
            self._committed.set()
        for publication, outcome in zip(group, outcomes, strict=True):
            _settle(publication.answer, outcome)


async def _publish_each(
    session: AsyncSession, group: list[_Publication]
) -> list[PublishedEvent | ValidationFailed]:
    batch = PublicationBatch(session, utcnow(), request_id=None)
    targets: dict[str, str] = {}
    outcomes: list[PublishedEvent | ValidationFailed] = []
    for publication in group:
        try:
            integration_id = await _integration_of(session, publication.export_id, targets)
            event = replace(publication.event, integration_id=integration_id)
            outcomes.append(await batch.add(event))
        except ValidationFailed as refusal:
            outcomes.append(refusal)
    await batch.write()
    return outcomes


async def _integration_of(
    session: AsyncSession, export_id: str | None, known: dict[str, str]
) -> str | None:
    if export_id is None:
        return None
    if export_id not in known:
        known[export_id] = await integration_of_export_id(session, export_id)
    return known[export_id]


async def integration_of_export_id(session: AsyncSession, export_id: str) -> str:
    """The id of the integration an event names by Export ID, or a refusal of its field."""
    try:
        return (await get_integration_by_export_id(session, export_id)).id
    except NotFound as error:
        raise ValidationFailed(error.detail, [FieldError(TARGET_FIELD, error.detail)]) from None


def _settle(
    answer: asyncio.Future[PublishedEvent], outcome: PublishedEvent | BaseException
) -> None:
    if answer.done():
        return
    if isinstance(outcome, BaseException):
        answer.set_exception(outcome)
    else:
        answer.set_result(outcome)
