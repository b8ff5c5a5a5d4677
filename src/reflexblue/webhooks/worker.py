"""The delivery worker: claims due deliveries from the queue table, sends them, records results.

Claims and results are written in batches, since one transaction per delivery caps
throughput far below what the network allows. A claim is a lease (`locked_until`): when a
worker dies, its deliveries become due again once the lease runs out. Delivery is therefore at
least once; the `webhook-id` header lets receivers drop repeats.
"""

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import math
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from reflexblue.core.crypto import SecretBox
from reflexblue.core.database import (
    POSTGRES_CONNECT_TIMEOUT_SECONDS,
    connection_transaction,
    new_id,
    transaction,
    utcnow,
)
from reflexblue.core.runtime import Runtime
from reflexblue.integrations.service import open_signing_secrets, previous_in_grace
from reflexblue.operations.metrics import observe_attempt
from reflexblue.webhooks.models import Delivery, DeliveryStatus, Webhook
from reflexblue.webhooks.operator import (
    is_operator_webhook,
    operator_signing_secrets,
    queue_disabled_events,
    sync_operator_webhook,
)
from reflexblue.webhooks.publishing import NOTIFY_CHANNEL
from reflexblue.webhooks.queue_statements import (
    AttemptRow,
    ClaimedRow,
    DeliveryChange,
    DueDelivery,
    for_dialect,
)
from reflexblue.webhooks.recovery import RECOVERY_BATCH_SIZE, RecoveryRunner
from reflexblue.webhooks.retention import prune_finished_deliveries
from reflexblue.webhooks.retry import RetryPolicy
from reflexblue.webhooks.sender import AttemptResult, Sender
from reflexblue.webhooks.signing import sign
from reflexblue.webhooks.targets import address_allowed

logger = logging.getLogger(__name__)


GONE_STATUS = 410
LEASE_MARGIN_SECONDS = 5.0
RESTART_DELAY_SECONDS = 1.0
PRUNE_INTERVAL_SECONDS = 600.0
IDLE_FLOOR_SECONDS = 0.02
DATABASE_BACKOFF_MAX_SECONDS = 5.0
# Beyond this many, the due times of the worker's own retries are not kept: those retries are
# then found by the look for retries once a poll interval.
RETRIES_TRACKED_MAX = 100_000
# Integrations whose opened signing secrets a worker keeps.
SIGNING_SECRETS_KEPT = 10_000
# Webhooks a worker remembers as proven (see WorkerConfig); beyond this it starts afresh and
# each webhook proves itself again with one answer.
PROVEN_WEBHOOKS_KEPT = 100_000


@dataclass(frozen=True)
class WorkerConfig:
    batch_size: int = 50
    max_in_flight: int = 64
    per_webhook_in_flight: int = 16
    # The share of a webhook not proven: one this worker has not yet seen answer promptly
    # (with any HTTP status, within half the delivery timeout), or whose latest attempt did
    # not (a timeout, a connection reset, something that is not HTTP, a body that trickled).
    # A receiver that hangs or trickles then holds this many slots for the whole timeout
    # rather than a full share; one prompt answer, even an error, which frees its slot as
    # soon as a success would, gives the webhook its full share.
    unproven_in_flight: int = 4
    # The share of a webhook whose latest attempt succeeded, while no other webhook has
    # deliveries due: the idle slots are lent to its backlog, all but the max_in_flight less
    # this, which stay free so that a newcomer's delivery goes out at once. Several such
    # webhooks split it.
    alone_in_flight: int = 48
    # An attempt in flight for longer than this is stalled: its webhook's share still counts
    # it, but max_in_flight no longer does, so that receivers that hang or trickle do not take
    # the pool from the others. At most stalled_in_flight attempts are set aside so; past
    # that, stalled ones count against max_in_flight again, which bounds the connections.
    stalled_after_seconds: float = 1.0
    stalled_in_flight: int = 64
    poll_interval_seconds: float = 1.0
    ack_batch_size: int = 50
    # At most this long an outcome waits for others to share its write (see _record_outcomes).
    ack_interval_seconds: float = 0.02
    shutdown_grace_seconds: float = 10.0
    recovery_batch_size: int = RECOVERY_BATCH_SIZE
    # At most this long a claim waits for more attempts to end (see _gather_freed_slots).
    claim_gather_seconds: float = 0.02


@dataclass(frozen=True)
class ClaimedDelivery:
    delivery_id: str
    webhook_id: str
    event_id: str
    url: str
    body: bytes
    secrets: list[str]
    attempts_made: int
    lease_until: datetime
    # The API request that published the event, for the log line of each attempt.
    request_id: str | None = None
    # Whether the webhook was failing when claimed: a success must then make it healthy.
    webhook_failing: bool = False


@dataclass(frozen=True)
class Outcome:
    claim: ClaimedDelivery
    attempted_at: datetime
    result: AttemptResult


@dataclass
class _Flight:
    """Attempts under way: how many per webhook, the claim behind each task, and when each
    started (`time.monotonic`), oldest first."""

    per_webhook: Counter[str] = field(default_factory=Counter)
    tasks: dict[asyncio.Task[None], ClaimedDelivery] = field(default_factory=dict)
    started: dict[asyncio.Task[None], float] = field(default_factory=dict)


class DeliveryWorker:
    def __init__(self, runtime: Runtime, config: WorkerConfig | None = None) -> None:
        self._runtime = runtime
        self._settings = runtime.settings
        self._config = config or WorkerConfig()
        self._policy = RetryPolicy(self._settings.retry_schedule_seconds)
        self._queue = for_dialect(runtime.engine.dialect.name)
        self._secrets = _SigningSecrets(runtime.box)
        self._flight = _Flight()
        self._outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        # Set when a whole batch of outcomes waits to be written.
        self._outcomes_batched = asyncio.Event()
        self._recoveries = RecoveryRunner(runtime, batch_size=self._config.recovery_batch_size)
        # Rung by publishers, NOTIFY and wake(): there may be new due deliveries.
        self._doorbell = runtime.delivery_doorbell
        # Set when an attempt ends: a slot, and maybe a webhook's share, is free again.
        self._slot_freed = asyncio.Event()
        # Attempts ended since the last claim began.
        self._freed_since_claim = 0
        self._looked_past_busy_at = 0.0
        # When the retries this worker set fall due (a heap), and when it last looked for
        # retries at all: others' retries, manual and bulk ones, are looked for once a poll
        # interval, so that a claim with no retry due costs no query for them.
        self._own_retries_due: list[datetime] = []
        self._looked_for_retries_at = 0.0
        # Whether the last claim left due deliveries behind for want of a webhook's share.
        self._due_left = False
        # Webhooks this worker saw fail and not yet succeed since.
        self._failing: set[str] = set()
        # Webhooks whose latest attempt by this worker got a prompt HTTP answer, and whether
        # that was a success: they get the full share, those that succeeded may borrow slots.
        self._proven: dict[str, bool] = {}
        self._prompt_within_ms = self._settings.delivery_timeout * 1000 / 2
        # Shares above the full one, lent to webhooks that succeed and have a backlog while
        # nobody else has deliveries due; taken back on news, or after a poll interval.
        self._lent: dict[str, int] = {}
        self._lent_until = 0.0
        # Cleared while outcomes cannot be written (a database away, a full disk). Claiming
        # more then would only pile up results that cannot be recorded, and send each of them
        # again once its lease ran out.
        self._recording = asyncio.Event()
        self._recording.set()
        # Long enough for one attempt and the writing of its outcome; when a worker dies, its
        # claims are due again after this.
        self._lease = timedelta(seconds=self._settings.delivery_timeout * 2 + LEASE_MARGIN_SECONDS)

    def wake(self) -> None:
        """Ask the worker to look for due deliveries now (for example after a publish)."""
        self._doorbell.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then finish or release what is in flight."""
        await sync_operator_webhook(self._runtime)
        allowed = partial(address_allowed, allow_private=self._settings.allow_private_targets)
        sender = Sender(
            timeout_seconds=self._settings.delivery_timeout,
            allowed=allowed,
            pool_size=self._config.max_in_flight + self._config.stalled_in_flight,
        )
        listener = _PostgresListener(self._settings.database_url, self.wake)
        async with sender:
            recorder = asyncio.create_task(self._record_outcomes(stop))
            pruner = asyncio.create_task(self._prune_periodically(stop))
            logger.info("delivery worker started", extra={"in_flight": self._config.max_in_flight})
            try:
                await self._claim_until(stop, sender, listener)
            finally:
                await self._wind_down(recorder)
                await self._stop_pruner(pruner, stop)
                await listener.close()
        logger.info("delivery worker stopped")

    async def _claim_until(
        self, stop: asyncio.Event, sender: Sender, listener: "_PostgresListener"
    ) -> None:
        backoff = 0.0
        while not stop.is_set():
            if not self._recording.is_set():
                await _first_of(self._recording, stop)
                continue
            await listener.ensure_listening()
            try:
                claimed = await self._claim()
                await self._recoveries.step_when_due()
                backoff = 0.0
            except DBAPIError as error:
                backoff = min(max(backoff * 2, 0.1), DATABASE_BACKOFF_MAX_SECONDS)
                logger.warning(
                    "claiming deliveries failed; retrying",
                    extra={"error": type(error).__name__, "retry_in_seconds": backoff},
                )
                await _wait(stop, backoff)
                continue
            for claim in claimed:
                self._start(claim, sender)
            if len(claimed) < self._config.batch_size or self._free_slots() == 0:
                await self._idle(stop)

    def _start(self, claim: ClaimedDelivery, sender: Sender) -> None:
        self._flight.per_webhook[claim.webhook_id] += 1
        task = asyncio.create_task(self._attempt(claim, sender))
        self._flight.tasks[task] = claim
        self._flight.started[task] = time.monotonic()
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        webhook_id = self._flight.tasks.pop(task).webhook_id
        del self._flight.started[task]
        self._flight.per_webhook[webhook_id] -= 1
        if self._flight.per_webhook[webhook_id] <= 0:
            del self._flight.per_webhook[webhook_id]
        self._freed_since_claim += 1
        self._slot_freed.set()

    async def _attempt(self, claim: ClaimedDelivery, sender: Sender) -> None:
        attempted_at = utcnow()
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": claim.event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(claim.secrets, claim.event_id, timestamp, claim.body),
        }
        result = await sender.send(claim.url, headers, claim.body)
        # Before the slot frees, so that the claim it lets in already sees the webhook's share.
        self._note_proof(claim.webhook_id, result)
        self._outcomes.put_nowait(Outcome(claim, attempted_at, result))
        # Less one: the recorder holds the first outcome of the batch it waits to fill.
        if self._outcomes.qsize() >= self._config.ack_batch_size - 1:
            self._outcomes_batched.set()

    def _note_proof(self, webhook_id: str, result: AttemptResult) -> None:
        if result.response_status is None or result.duration_ms >= self._prompt_within_ms:
            self._proven.pop(webhook_id, None)
            return
        if len(self._proven) >= PROVEN_WEBHOOKS_KEPT and webhook_id not in self._proven:
            self._proven.clear()
        self._proven[webhook_id] = result.succeeded

    def _share_of(self, webhook_id: str) -> int:
        """How many attempts to this webhook may be in flight at once."""
        succeeding = self._proven.get(webhook_id)
        if succeeding is None:
            return min(self._config.unproven_in_flight, self._config.per_webhook_in_flight)
        if succeeding:
            return self._lent.get(webhook_id, self._config.per_webhook_in_flight)
        return self._config.per_webhook_in_flight

    def _free_slots(self) -> int:
        return self._config.max_in_flight - len(self._flight.tasks) + self._stalled()

    def _stalled(self) -> int:
        """Attempts in flight for longer than `stalled_after_seconds`, up to
        `stalled_in_flight`: the oldest, at the front of the start times."""
        cutoff = time.monotonic() - self._config.stalled_after_seconds
        count = 0
        for started in self._flight.started.values():
            if started > cutoff or count >= self._config.stalled_in_flight:
                break
            count += 1
        return count

    def _seconds_until_a_stall(self) -> float:
        """When the oldest attempt not yet stalled will be, if one more may be."""
        stalled = self._stalled()
        if stalled >= self._config.stalled_in_flight:
            return math.inf
        started = next(itertools.islice(self._flight.started.values(), stalled, None), None)
        if started is None:
            return math.inf
        return started + self._config.stalled_after_seconds - time.monotonic()

    async def _idle(self, stop: asyncio.Event) -> None:
        """Sleep until woken, a slot frees, or the next delivery falls due.

        When the last claim left due deliveries behind, a freed slot is what lets them go, so
        there is no need to ask the database when the next one falls due.
        """
        timeout = self._config.poll_interval_seconds
        if self._free_slots() > 0 and not self._due_left:
            with contextlib.suppress(DBAPIError):
                timeout = min(timeout, await self._seconds_until_next_due())
        elif self._free_slots() == 0:  # a stall frees a slot too
            timeout = min(timeout, self._seconds_until_a_stall())
        waiters = [
            asyncio.create_task(self._doorbell.wait()),
            asyncio.create_task(self._slot_freed.wait()),
            asyncio.create_task(stop.wait()),
        ]
        # The floor keeps a due delivery that cannot be claimed yet (another worker's lease)
        # from turning this wait into a busy loop.
        timeout = max(timeout, IDLE_FLOOR_SECONDS)
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        if self._slot_freed.is_set() and not (self._doorbell.is_set() or stop.is_set()):
            await self._gather_freed_slots(stop)

    async def _gather_freed_slots(self, stop: asyncio.Event) -> None:
        """Wait a little, while attempts keep ending, until enough slots are free for a claim
        worth its statements: a claim costs about as much for one delivery as for fifty, and
        refilling each slot the moment it frees made claims most of the worker's work.

        Enough is a quarter of the slots, or of a webhook's share when the last claim left
        deliveries behind for want of it; news or the time limit end the wait sooner."""
        share = self._config.max_in_flight
        if self._due_left:
            share = max(self._lent.values(), default=self._config.per_webhook_in_flight)
        enough = max(1, share // 4)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.claim_gather_seconds
        while self._freed_since_claim < enough and not (self._doorbell.is_set() or stop.is_set()):
            remaining = deadline - loop.time()
            if remaining <= 0 or not self._flight.tasks:
                return
            self._slot_freed.clear()
            await _first_of(self._slot_freed, self._doorbell, stop, within_seconds=remaining)

    async def _seconds_until_next_due(self) -> float:
        async with connection_transaction(self._runtime.engine) as connection:
            next_due = await self._queue.next_due_at(connection)
        if next_due is None:
            return self._config.poll_interval_seconds
        return (next_due - utcnow()).total_seconds()

    # --- claiming ------------------------------------------------------------------------

    async def _claim(self) -> list[ClaimedDelivery]:
        wanted = min(self._config.batch_size, self._free_slots())
        if wanted <= 0:
            return []
        # Cleared before looking, so that a ring or a freed slot during the claim is not lost
        # but ends the idle wait after it at once.
        news = self._doorbell.is_set()
        self._doorbell.clear()
        self._slot_freed.clear()
        self._freed_since_claim = 0
        async with connection_transaction(self._runtime.engine) as connection:
            now = utcnow()
            picked = await self._pick_due(connection, now, wanted, news)
            if not picked:
                return []
            lease_until = now + self._lease
            rows = await self._queue.lease(connection, picked, lease_until)
            return self._claims_of(rows, lease_until, now)

    async def _pick_due(
        self, connection: AsyncConnection, now: datetime, wanted: int, news: bool
    ) -> list[str]:
        """The oldest due deliveries, no webhook beyond its share of attempts in flight.

        Due retries come first, up to half of the claim: in due order alone, a retry would
        wait behind every first attempt due before it, which in a backlog is all of them.

        When the oldest ones all belong to webhooks already at their share (one webhook with a
        big backlog), a second look skips those webhooks so that the others are not starved.
        That look scans past the backlog, so it is made after news or once per poll interval.
        When neither look finds anybody else's delivery, the idle slots are lent.
        """
        if news or time.monotonic() >= self._lent_until:
            self._lent.clear()
        in_flight = Counter(self._flight.per_webhook)
        picked: list[str] = []
        if self._retries_may_be_due(now):
            retries = await self._queue.due(connection, now, wanted * 2, retries_only=True)
            picked = self._pick_fairly(retries, max(1, wanted // 2), in_flight)
            if len(retries) > len(picked):  # some left for want of room: look again next claim
                heapq.heappush(self._own_retries_due, now)
        wanted -= len(picked)
        if wanted == 0:
            self._due_left = True
            return picked
        window = wanted * 4
        rows = await self._queue.due(connection, now, window)
        taken = set(picked)
        candidates = [row for row in rows if row.delivery_id not in taken]
        first_look = self._pick_fairly(candidates, wanted, in_flight)
        picked += first_look
        self._due_left = len(candidates) > len(first_look)
        if len(first_look) == wanted:
            return picked
        wanted -= len(first_look)
        if len(rows) == window:  # more may be due beyond the window
            if not self._may_look_past(news):
                return picked
            busy = [w for w, n in in_flight.items() if n >= self._share_of(w)]
            more = await self._queue.due(connection, now, wanted * 4, skipping=busy)
            taken.update(picked)
            more = [row for row in more if row.delivery_id not in taken]
            if more:
                return picked + self._pick_fairly(more, wanted, in_flight)
        taken.update(picked)
        left = [row for row in candidates if row.delivery_id not in taken]
        lent = self._lend_idle_slots(left, wanted, in_flight)
        self._due_left = len(left) > len(lent)
        return picked + lent

    def _lend_idle_slots(
        self, backlog: list[DueDelivery], wanted: int, in_flight: Counter[str]
    ) -> list[str]:
        """Picks from the backlog of webhooks at their share, when nobody else has a delivery
        due: those whose latest attempt succeeded split `alone_in_flight` while that is more
        than a full share. A webhook not proven borrows nothing, since it may hold what it gets
        for the whole timeout, and nor does one that answers with errors."""
        backlogged = {row.webhook_id for row in backlog if self._proven.get(row.webhook_id)}
        if not backlogged:
            return []
        share = self._config.alone_in_flight // len(backlogged)
        if share <= self._config.per_webhook_in_flight:
            return []
        self._lent = dict.fromkeys(backlogged, share)
        self._lent_until = time.monotonic() + self._config.poll_interval_seconds
        return self._pick_fairly(backlog, wanted, in_flight)

    def _retries_may_be_due(self, now: datetime) -> bool:
        due = False
        while self._own_retries_due and self._own_retries_due[0] <= now:
            heapq.heappop(self._own_retries_due)
            due = True
        moment = time.monotonic()
        if due or moment - self._looked_for_retries_at >= self._config.poll_interval_seconds:
            self._looked_for_retries_at = moment
            return True
        return False

    def _may_look_past(self, news: bool) -> bool:
        now = time.monotonic()
        if not news and now - self._looked_past_busy_at < self._config.poll_interval_seconds:
            return False
        self._looked_past_busy_at = now
        return True

    def _pick_fairly(
        self, candidates: list[DueDelivery], wanted: int, in_flight: Counter[str]
    ) -> list[str]:
        """Candidates in order, counting each pick into `in_flight`, skipping full webhooks."""
        picked: list[str] = []
        for delivery_id, webhook_id in candidates:
            if in_flight[webhook_id] >= self._share_of(webhook_id):
                continue
            in_flight[webhook_id] += 1
            picked.append(delivery_id)
            if len(picked) == wanted:
                break
        return picked

    def _claims_of(
        self, rows: list[ClaimedRow], lease_until: datetime, now: datetime
    ) -> list[ClaimedDelivery]:
        bodies: dict[str, bytes] = {}
        claims = []
        for row in rows:
            body = bodies.get(row.event_id)
            if body is None:
                body = bodies[row.event_id] = request_body(
                    row.event_type, row.event_created_at, row.event_data
                )
            claims.append(
                ClaimedDelivery(
                    delivery_id=row.delivery_id,
                    webhook_id=row.webhook_id,
                    event_id=row.event_id,
                    url=row.url,
                    body=body,
                    secrets=self._secrets_of(row, now),
                    attempts_made=row.attempt_count,
                    lease_until=lease_until,
                    request_id=row.request_id,
                    webhook_failing=row.webhook_failing,
                )
            )
        return claims

    def _secrets_of(self, row: ClaimedRow, now: datetime) -> list[str]:
        if row.integration_id is None:  # the operator's webhook has no integration
            return operator_signing_secrets(self._settings)
        return self._secrets.of(row, now)

    # --- recording outcomes --------------------------------------------------------------

    async def _record_outcomes(self, stop: asyncio.Event) -> None:
        """Write outcomes in batches; a failed write is retried, never dropped.

        A write costs about as much for one outcome as for fifty, so the first outcome waits
        for others, up to the interval, or less once a whole batch is there."""
        pending: list[Outcome] = []
        backoff = 0.0
        while True:
            if not pending:
                pending.append(await self._outcomes.get())
            if self._outcomes.qsize() + len(pending) < self._config.ack_batch_size:
                self._outcomes_batched.clear()
                await _first_of(
                    self._outcomes_batched, within_seconds=self._config.ack_interval_seconds
                )
            while not self._outcomes.empty() and len(pending) < self._config.ack_batch_size:
                pending.append(self._outcomes.get_nowait())
            try:
                await self._write_outcomes(pending)
                for _ in pending:
                    self._outcomes.task_done()
                pending = []
                backoff = 0.0
                self._recording.set()
            except Exception as error:  # a lost outcome would mean a lost attempt: keep trying
                self._recording.clear()
                backoff = min(max(backoff * 2, 0.1), DATABASE_BACKOFF_MAX_SECONDS)
                logger.warning(
                    "recording delivery outcomes failed; retrying",
                    extra={"error": type(error).__name__, "outcomes": len(pending)},
                    exc_info=not isinstance(error, DBAPIError),
                )
                await asyncio.sleep(backoff)

    async def _write_outcomes(self, outcomes: list[Outcome]) -> None:
        """Record attempts and settle their deliveries. Each change is guarded by its lease:
        when a claim ran out and another worker took the delivery over, a stale outcome
        changes nothing."""
        now = utcnow()
        to_update = self._webhooks_to_update(outcomes)
        notices = 0
        if to_update:
            changes, notices = await self._write_with_health(outcomes, to_update, now)
        else:  # the common case: successes of healthy webhooks, which need no ORM session
            changes = [self._delivery_change(o, None, now) for o in outcomes]
            async with connection_transaction(self._runtime.engine) as connection:
                await self._queue.record(connection, _attempt_rows(outcomes), changes, now)
        for outcome, change in zip(outcomes, changes, strict=True):
            _log_outcome(outcome)
            observe_attempt(outcome.result, change.status)
            retry_at = change.next_attempt_at
            if retry_at is not None and len(self._own_retries_due) < RETRIES_TRACKED_MAX:
                heapq.heappush(self._own_retries_due, retry_at)
        if notices:
            self._doorbell.set()  # the operator's webhook.disabled events are due now

    async def _write_with_health(
        self, outcomes: list[Outcome], to_update: set[str], now: datetime
    ) -> tuple[list[DeliveryChange], int]:
        """Outcomes that change their webhooks' health: those are read and written through
        the ORM, and a webhook this disables queues the operator's notice."""
        async with transaction(self._runtime.sessions) as session:
            connection = await session.connection()
            webhooks = await _webhooks_by_id(session, to_update)
            enabled_before = {webhook.id for webhook in webhooks.values() if webhook.enabled}
            changes = [
                self._delivery_change(o, webhooks.get(o.claim.webhook_id), now) for o in outcomes
            ]
            disabled = [w for w in webhooks.values() if w.id in enabled_before and not w.enabled]
            notices = await queue_disabled_events(session, disabled, self._settings, now)
            await session.flush()
            await self._queue.record(connection, _attempt_rows(outcomes), changes, now)
        return changes, notices

    def _webhooks_to_update(self, outcomes: list[Outcome]) -> set[str]:
        """The webhooks whose health these outcomes change: those with a failure, and those
        that were failing and now have a success. A healthy webhook's success changes nothing,
        so the common case reads no webhook at all."""
        return {
            o.claim.webhook_id
            for o in outcomes
            if not o.result.succeeded
            or o.claim.webhook_failing
            or o.claim.webhook_id in self._failing
        }

    def _delivery_change(
        self, outcome: Outcome, webhook: Webhook | None, now: datetime
    ) -> DeliveryChange:
        result, claim = outcome.result, outcome.claim
        attempts_made = claim.attempts_made + 1
        status, next_at = DeliveryStatus.SUCCEEDED.value, None
        if result.succeeded:
            self._failing.discard(claim.webhook_id)
            if webhook is not None:
                webhook.failing_since = None
                webhook.failure_count = 0
        else:
            self._failing.add(claim.webhook_id)
            next_at = self._policy.next_attempt_at(
                now,
                attempts_made,
                response_status=result.response_status,
                retry_after_seconds=result.retry_after_seconds,
            )
            status = DeliveryStatus.PENDING.value if next_at else DeliveryStatus.FAILED.value
            if webhook is not None:  # None when the webhook was deleted in the meantime
                self._note_failure(webhook, outcome, now)
            if result.response_status == GONE_STATUS:
                status, next_at = DeliveryStatus.FAILED.value, None
        return DeliveryChange(status, attempts_made, next_at, claim.delivery_id, claim.lease_until)

    def _note_failure(self, webhook: Webhook, outcome: Outcome, now: datetime) -> None:
        webhook.failure_count += 1
        if webhook.failing_since is None:
            webhook.failing_since = outcome.attempted_at
        reason = None
        if outcome.result.response_status == GONE_STATUS:
            reason = "The receiver answered 410 Gone."
        elif (now - webhook.failing_since).total_seconds() >= self._settings.disable_after:
            reason = (
                f"Every attempt failed since {webhook.failing_since.isoformat()}, "
                f"longer than {self._settings.disable_after} seconds."
            )
        if reason and is_operator_webhook(webhook):
            # Disabling it would silence the news of every later disabling; keep trying.
            logger.warning("operator webhook failing", extra={"reason": reason})
        elif reason and webhook.enabled:
            webhook.enabled = False
            webhook.disabled_reason = reason
            webhook.updated_at = now
            logger.warning("webhook disabled", extra={"webhook_id": webhook.id, "reason": reason})

    async def _prune_periodically(self, stop: asyncio.Event) -> None:
        retention = timedelta(days=self._settings.delivery_retention_days)
        while True:
            await _wait(stop, PRUNE_INTERVAL_SECONDS)
            if stop.is_set():
                return
            try:
                await prune_finished_deliveries(self._runtime.sessions, utcnow() - retention)
            except DBAPIError as error:
                logger.warning("pruning deliveries failed", extra={"error": type(error).__name__})

    @staticmethod
    async def _stop_pruner(pruner: asyncio.Task[None], stop: asyncio.Event) -> None:
        # Cancelling a task in the middle of a database call can leave the driver's connection
        # unusable, so a stopping worker lets a prune under way finish instead.
        if not stop.is_set():
            pruner.cancel()
        await asyncio.gather(pruner, return_exceptions=True)

    # --- stopping ------------------------------------------------------------------------

    async def _wind_down(self, recorder: asyncio.Task[None]) -> None:
        """Let attempts in flight finish for a bounded time; release the rest of the claims."""
        unfinished: set[asyncio.Task[None]] = set()
        if self._flight.tasks:
            _, unfinished = await asyncio.wait(
                set(self._flight.tasks), timeout=self._config.shutdown_grace_seconds
            )
        released = [self._flight.tasks[task].delivery_id for task in unfinished]
        for task in unfinished:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self._outcomes.join(), timeout=self._config.shutdown_grace_seconds
            )
        recorder.cancel()
        await asyncio.gather(recorder, return_exceptions=True)
        await self._release(released)

    async def _release(self, delivery_ids: list[str]) -> None:
        """Claims not attempted to the end become due again at once, for any worker."""
        if not delivery_ids:
            return
        try:
            async with transaction(self._runtime.sessions) as session:
                await session.execute(
                    update(Delivery)
                    .where(
                        Delivery.id.in_(delivery_ids),
                        Delivery.status == DeliveryStatus.PENDING.value,
                    )
                    .values(locked_until=None)
                )
        except DBAPIError:
            logger.warning("could not release claims; they return when their lease ends")


async def run_supervised(runtime: Runtime, stop: asyncio.Event) -> None:
    """Run a worker until `stop`; an unexpected error is logged and the worker started anew."""
    while not stop.is_set():
        try:
            await DeliveryWorker(runtime).run(stop)
        except Exception:
            logger.exception("delivery worker failed; starting it again")
            await _wait(stop, RESTART_DELAY_SECONDS)


async def run_until_signalled(runtime: Runtime) -> None:
    """The standalone `reflexblue worker`: SIGTERM or SIGINT stop claiming and wind down."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    await run_supervised(runtime, stop)


def request_body(event_type: str, created_at: datetime, data_json: str) -> bytes:
    """The JSON body every webhook request of an event carries, around the event's data as it
    is stored: reading and writing the data again for every event was a tenth of a claim."""
    timestamp = created_at.isoformat().replace("+00:00", "Z")
    head = json.dumps(event_type, ensure_ascii=False)
    return f'{{"type":{head},"timestamp":"{timestamp}","data":{data_json}}}'.encode()


def _attempt_rows(outcomes: list[Outcome]) -> list[AttemptRow]:
    return [_attempt_row(outcome) for outcome in outcomes]


def _attempt_row(outcome: Outcome) -> AttemptRow:
    result = outcome.result
    return AttemptRow(
        new_id("att"),
        outcome.claim.delivery_id,
        outcome.attempted_at,
        result.duration_ms,
        result.response_status,
        result.response_body,
        result.error.value if result.error else None,
    )


class _SigningSecrets:
    """Integrations' signing secrets, opened once per sealed value.

    A claim reads the sealed columns every time, so a rotation is seen at once; only the
    opening (AES-GCM, once per integration and claim) is kept, which was a visible share of
    claiming when a batch spans many integrations."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self._opened: dict[tuple[str, bytes, bytes | None], list[str]] = {}

    def of(self, row: ClaimedRow, now: datetime) -> list[str]:
        assert row.integration_id is not None
        assert row.secret_sealed is not None
        previous = previous_in_grace(
            row.previous_secret_sealed, row.previous_secret_expires_at, now
        )
        key = (row.integration_id, row.secret_sealed, previous)
        secrets = self._opened.get(key)
        if secrets is None:
            secrets = open_signing_secrets(
                self._box, row.integration_id, row.secret_sealed, previous
            )
            if len(self._opened) >= SIGNING_SECRETS_KEPT:
                self._opened.clear()
            self._opened[key] = secrets
        return secrets


async def _webhooks_by_id(session: AsyncSession, ids: set[str]) -> dict[str, Webhook]:
    if not ids:
        return {}
    rows = await session.scalars(select(Webhook).where(Webhook.id.in_(ids)))
    return {webhook.id: webhook for webhook in rows}


def _log_outcome(outcome: Outcome) -> None:
    # Asked first: the fields would otherwise be gathered for every attempt, logged or not.
    if not logger.isEnabledFor(logging.INFO):
        return
    result = outcome.result
    logger.info(
        "delivery attempt %s",
        "succeeded" if result.succeeded else "failed",
        extra={
            "delivery_id": outcome.claim.delivery_id,
            "webhook_id": outcome.claim.webhook_id,
            "event_id": outcome.claim.event_id,
            "request_id": outcome.claim.request_id,
            "status": result.response_status,
            "error": result.error.value if result.error else None,
            "duration_ms": result.duration_ms,
        },
    )


async def _first_of(*events: asyncio.Event, within_seconds: float | None = None) -> None:
    waiters = [asyncio.create_task(each.wait()) for each in events]
    await asyncio.wait(waiters, timeout=within_seconds, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class _PostgresListener:
    """Wakes the worker on NOTIFY from any process that publishes; polling covers the gaps."""

    RECONNECT_INTERVAL_SECONDS = 5.0

    def __init__(self, database_url: str | None, on_notify: Callable[[], None]) -> None:
        self._url = database_url if database_url and database_url.startswith("postgres") else None
        self._on_notify = on_notify
        self._connection: Any = None
        self._next_try = 0.0

    async def ensure_listening(self) -> None:
        if self._url is None or (self._connection is not None and not self._connection.is_closed()):
            return
        if time.monotonic() < self._next_try:
            return
        self._next_try = time.monotonic() + self.RECONNECT_INTERVAL_SECONDS
        import asyncpg  # type: ignore[import-untyped]

        try:
            self._connection = await asyncpg.connect(
                self._url.replace("+asyncpg", ""), timeout=POSTGRES_CONNECT_TIMEOUT_SECONDS
            )
            await self._connection.add_listener(NOTIFY_CHANNEL, lambda *_: self._on_notify())
        except (OSError, asyncpg.PostgresError) as error:
            self._connection = None
            logger.warning("cannot listen for notifications", extra={"error": type(error).__name__})

    async def close(self) -> None:
        if self._connection is not None and not self._connection.is_closed():
            await self._connection.close()
