"""Pruning finished deliveries (with their attempts) once they are older than the retention."""

import logging
from datetime import datetime

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from reflexblue.core.database import transaction
from reflexblue.webhooks.models import Attempt, Delivery, DeliveryStatus, Event

logger = logging.getLogger(__name__)

PRUNE_BATCH_SIZE = 1000
_FINISHED = (DeliveryStatus.SUCCEEDED.value, DeliveryStatus.FAILED.value)


async def prune_finished_deliveries(
    sessions: async_sessionmaker[AsyncSession], finished_before: datetime
) -> int:
    """Delete finished deliveries last changed before the cutoff, a batch per transaction so
    no long transaction holds the queue table; then the events left without deliveries."""
    pruned = 0
    while True:
        async with transaction(sessions) as session:
            removed = await _prune_batch(session, finished_before)
        pruned += removed
        if removed < PRUNE_BATCH_SIZE:
            break
    async with transaction(sessions) as session:
        await _prune_orphaned_events(session, finished_before)
    if pruned:
        logger.info("pruned finished deliveries", extra={"deliveries": pruned})
    return pruned


async def _prune_batch(session: AsyncSession, finished_before: datetime) -> int:
    ids = list(
        await session.scalars(
            select(Delivery.id)
            .where(Delivery.status.in_(_FINISHED), Delivery.updated_at < finished_before)
            .limit(PRUNE_BATCH_SIZE)
        )
    )
    if not ids:
        return 0
    await session.execute(delete(Attempt).where(Attempt.delivery_id.in_(ids)))
    await session.execute(delete(Delivery).where(Delivery.id.in_(ids)))
    return len(ids)


async def _prune_orphaned_events(session: AsyncSession, created_before: datetime) -> None:
    has_delivery = exists().where(Delivery.event_id == Event.id)
    await session.execute(delete(Event).where(Event.created_at < created_before, ~has_delivery))
