"""Recovery: sending a webhook's failed deliveries of a time window again, after its receiver
was fixed.

A request is stored as a recovery and answered at once; the workers carry it out in batches,
each in its own short transaction, so no size of backlog holds a transaction open or a request
waiting. A recovered delivery keeps its event, so the receiver sees the same `webhook-id`, and
keeps its attempts, which go on being logged after them.

The window is on the deliveries' `created_at`: when the event was published for the webhook.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.audit.service import Actor, record
from reflexblue.core.database import transaction, utcnow
from reflexblue.core.errors import FieldError, NotFound, ValidationFailed
from reflexblue.core.runtime import Runtime
from reflexblue.core.validation import unstorable
from reflexblue.webhooks.models import Delivery, DeliveryStatus, Recovery, RecoveryStatus, Webhook
from reflexblue.webhooks.publishing import NOTIFY_CHANNEL
from reflexblue.webhooks.schemas import RecoveryCreate, RecoveryPreview, RecoveryRead
from reflexblue.webhooks.service import get_webhook

logger = logging.getLogger(__name__)

RECOVERY_BATCH_SIZE = 500
# While no recovery runs, a worker looks for new ones this often (it also looks when woken).
RECOVERY_LOOK_INTERVAL_SECONDS = 1.0
RECOVERIES_SHOWN = 10


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime


def window_of(request: RecoveryCreate, now: datetime) -> Window:
    """The window asked for, checked: `since` not in the future, `until` after it. An `until`
    left out or later than now is now: deliveries created later are not failed ones yet."""
    if request.since > now:
        message = "Must not be in the future."
        raise ValidationFailed(f"since: {message}", [FieldError("since", message)])
    until = now if request.until is None or request.until > now else request.until
    if until <= request.since:
        message = "Must be after since."
        raise ValidationFailed(f"until: {message}", [FieldError("until", message)])
    return Window(request.since, until)


async def preview_recovery(
    session: AsyncSession, integration_id: str, webhook_id: str, request: RecoveryCreate
) -> RecoveryPreview:
    """How many failed deliveries a recovery with this window would send again."""
    webhook = await get_webhook(session, integration_id, webhook_id)
    window = window_of(request, utcnow())
    count = await _count_failed(session, webhook.id, window)
    return RecoveryPreview(since=window.since, until=window.until, deliveries=count)


async def request_recovery(
    session: AsyncSession,
    integration_id: str,
    webhook_id: str,
    request: RecoveryCreate,
    actor: Actor,
) -> RecoveryRead:
    """Store a recovery for the workers to carry out; ring the doorbell after the commit."""
    webhook = await get_webhook(session, integration_id, webhook_id)
    now = utcnow()
    window = window_of(request, now)
    recovery = Recovery(
        webhook_id=webhook.id,
        since=window.since,
        until=window.until,
        status=RecoveryStatus.RUNNING.value,
        total=await _count_failed(session, webhook.id, window),
        requeued=0,
        requested_by=str(actor)[:120],
        created_at=now,
    )
    session.add(recovery)
    await session.flush()
    record(
        session,
        actor,
        "webhook.recovery_requested",
        target_type="webhook",
        target_id=webhook.id,
        target_name=webhook.url,
        changes={
            "recovery": {"to": recovery.id},
            "since": {"to": window.since.isoformat()},
            "until": {"to": window.until.isoformat()},
            "total": {"to": recovery.total},
        },
    )
    await _wake_workers(session)
    logger.info(
        "recovery requested",
        extra={"recovery_id": recovery.id, "webhook_id": webhook.id, "total": recovery.total},
    )
    return RecoveryRead.model_validate(recovery)


async def get_recovery(
    session: AsyncSession, integration_id: str, recovery_id: str
) -> RecoveryRead:
    """One recovery of the integration's webhooks; another integration's is answered as missing."""
    if unstorable(recovery_id):
        raise NotFound(f"No recovery has the id {recovery_id!r}.")
    recovery = await session.scalar(
        select(Recovery)
        .join(Webhook, Webhook.id == Recovery.webhook_id)
        .where(Recovery.id == recovery_id, Webhook.integration_id == integration_id)
    )
    if recovery is None:
        raise NotFound(f"No recovery has the id {recovery_id!r}.")
    return RecoveryRead.model_validate(recovery)


async def recent_recoveries(
    session: AsyncSession, integration_id: str, webhook_id: str, limit: int = RECOVERIES_SHOWN
) -> list[RecoveryRead]:
    """The webhook's last recoveries, newest first."""
    webhook = await get_webhook(session, integration_id, webhook_id)
    rows = await session.scalars(
        select(Recovery)
        .where(Recovery.webhook_id == webhook.id)
        .order_by(Recovery.created_at.desc(), Recovery.id.desc())
        .limit(limit)
    )
    return [RecoveryRead.model_validate(row) for row in rows]


# --- carrying recoveries out (the worker's part) --------------------------------------------


async def step_recovery(runtime: Runtime, *, batch_size: int = RECOVERY_BATCH_SIZE) -> bool:
    """Send the next batch of the oldest running recovery back to the queue; False when no
    recovery was running. A batch smaller than `batch_size` is the last one."""
    async with transaction(runtime.sessions) as session:
        recovery = await session.scalar(_next_running(runtime))
        if recovery is None:
            return False
        ids = list(await session.scalars(_next_batch(recovery, batch_size)))
        now = utcnow()
        if ids:
            recovery.requeued += await _requeue(session, ids, now)
            recovery.cursor = ids[-1]
            await _wake_workers(session)
        if len(ids) < batch_size:
            recovery.status = RecoveryStatus.DONE.value
            recovery.finished_at = now
    _log_step(recovery, len(ids))
    return True


def _next_running(runtime: Runtime) -> Select[Recovery]:
    query = (
        select(Recovery)
        .where(Recovery.status == RecoveryStatus.RUNNING.value)
        .order_by(Recovery.created_at, Recovery.id)
        .limit(1)
    )
    # Two workers never step one recovery at once: the second skips the locked row. SQLite
    # runs one writing transaction at a time, so there the question does not arise.
    if runtime.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return query


def _next_batch(recovery: Recovery, batch_size: int) -> Select[str]:
    # Walks the (webhook_id, id) index from the cursor, so each batch starts where the last
    # ended however many deliveries the webhook has.
    query = (
        select(Delivery.id)
        .where(
            Delivery.webhook_id == recovery.webhook_id,
            Delivery.status == DeliveryStatus.FAILED.value,
            Delivery.created_at >= recovery.since,
            Delivery.created_at < recovery.until,
        )
        .order_by(Delivery.id)
        .limit(batch_size)
    )
    if recovery.cursor is not None:
        query = query.where(Delivery.id > recovery.cursor)
    return query


async def _requeue(session: AsyncSession, ids: list[str], now: datetime) -> int:
    # Only deliveries still failed: one retried by hand meanwhile is not sent twice.
    result = await session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids), Delivery.status == DeliveryStatus.FAILED.value)
        .values(
            status=DeliveryStatus.PENDING.value,
            next_attempt_at=now,
            locked_until=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def _count_failed(session: AsyncSession, webhook_id: str, window: Window) -> int:
    query = select(func.count()).where(
        Delivery.webhook_id == webhook_id,
        Delivery.status == DeliveryStatus.FAILED.value,
        Delivery.created_at >= window.since,
        Delivery.created_at < window.until,
    )
    return int(await session.scalar(query) or 0)


async def _wake_workers(session: AsyncSession) -> None:
    # PostgreSQL hands the notification to listening workers when the transaction commits.
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


def _log_step(recovery: Recovery, batch: int) -> None:
    logger.info(
        "recovery batch requeued",
        extra={
            "recovery_id": recovery.id,
            "webhook_id": recovery.webhook_id,
            "batch": batch,
            "requeued": recovery.requeued,
            "status": recovery.status,
        },
    )


class RecoveryRunner:
    """The worker's side: between claims, step running recoveries; look for new ones at most
    once per interval while there are none, so an idle product adds one small query a second."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        batch_size: int = RECOVERY_BATCH_SIZE,
        look_interval_seconds: float = RECOVERY_LOOK_INTERVAL_SECONDS,
    ) -> None:
        self._runtime = runtime
        self._batch_size = batch_size
        self._look_interval = look_interval_seconds
        self._next_look = 0.0

    async def step_when_due(self) -> None:
        now = time.monotonic()
        if now < self._next_look:
            return
        if await step_recovery(self._runtime, batch_size=self._batch_size):
            # Requeued deliveries are due now, and the recovery may have more batches.
            self._runtime.delivery_doorbell.set()
            self._next_look = 0.0
        else:
            self._next_look = now + self._look_interval
