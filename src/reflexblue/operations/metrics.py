"""Prometheus metrics: what this process counted, and what the database holds right now.

The counters and histograms live in one registry of the product's own (not the client
library's global one), created once per process when this module is imported. A process is
what Prometheus scrapes: the web application and the worker running inside `serve` count into
the same objects and come out on one page. Applications built many times in one process (as
the tests do) reuse these objects instead of registering them twice.

The queue and the webhooks by state are read from the database when a scrape arrives, by the
process that answers it; nothing is cached, so every process reports the same shared figures.
"""

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from fastapi.telemetry import TelemetryConfig
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from reflexblue.core.database import utcnow
from reflexblue.webhooks.models import Delivery, DeliveryStatus, Webhook
from reflexblue.webhooks.sender import AttemptResult, ErrorClass

logger = logging.getLogger(__name__)

# A scrape answers even when the database hangs; Prometheus's own default timeout is 10 s.
DATABASE_READ_TIMEOUT_SECONDS = 5.0
UNMATCHED_ROUTE = "unmatched"
OTHER_METHOD = "other"
# Any other method a client invents is counted as "other", so labels stay a short list.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SUCCEEDED_RESULT = "2xx"
DELIVERY_OUTCOMES = ("succeeded", "retrying", "failed")
# FastAPI's own OpenTelemetry bridge, off in every application of the product: its metrics are
# these, and the bridge asks the environment on every request whether a provider has appeared.
FASTAPI_TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
# Attempts end within the delivery timeout (15 s by default, at most 300 s).
ATTEMPT_DURATION_BUCKETS_SECONDS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
)

# The `_created` series the library adds to every counter and histogram carry nothing a
# dashboard uses and double the output; Prometheus notices counter resets without them.
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry(auto_describe=True)
# The standard process figures (memory, CPU, open files, garbage collection), as every
# Prometheus client exposes them; the library registers them only on its global registry.
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

HTTP_REQUESTS = Counter(
    "reflexblue_http_requests_total",
    "HTTP requests answered, by route template, method and response status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_REQUEST_DURATION = Histogram(
    "reflexblue_http_request_duration_seconds",
    "Time from receiving an HTTP request to the end of its answer, by route template and method.",
    ["route", "method"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "reflexblue_deliveries_total",
    "Delivery attempts recorded by this process's worker, by what became of the delivery: "
    "succeeded, retrying (another attempt is scheduled) or failed (no attempt is left).",
    ["outcome"],
    registry=REGISTRY,
)
DELIVERY_ATTEMPTS = Counter(
    "reflexblue_delivery_attempts_total",
    "Delivery attempts made by this process's worker, by result: 2xx, or the error class "
    "(http_status, timeout, connection, dns, tls, blocked_target).",
    ["result"],
    registry=REGISTRY,
)
DELIVERY_ATTEMPT_DURATION = Histogram(
    "reflexblue_delivery_attempt_duration_seconds",
    "Duration of delivery attempts made by this process's worker.",
    buckets=ATTEMPT_DURATION_BUCKETS_SECONDS,
    registry=REGISTRY,
)

# Every known label value from the start, so a rate over a counter that has not moved yet is
# 0 rather than missing. The children are kept: `labels()` costs more than the count itself,
# and the worker counts every attempt.
_DELIVERIES_BY_OUTCOME = {outcome: DELIVERIES.labels(outcome) for outcome in DELIVERY_OUTCOMES}
_ATTEMPTS_BY_RESULT = {
    result: DELIVERY_ATTEMPTS.labels(result) for result in (SUCCEEDED_RESULT, *ErrorClass)
}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    method = method if method in HTTP_METHODS else OTHER_METHOD
    _requests_counted(route, method, status).inc()
    _request_durations(route, method).observe(seconds)


# The labelled series of each route, method and status, found once: `labels()` checks and
# joins its arguments under a lock on every call, which costs more than counting. Route
# labels are templates, so these stay as few as the routes times methods times statuses.
@lru_cache(maxsize=4096)
def _requests_counted(route: str, method: str, status: int) -> Counter:
    return HTTP_REQUESTS.labels(route, method, str(status))


@lru_cache(maxsize=1024)
def _request_durations(route: str, method: str) -> Histogram:
    return HTTP_REQUEST_DURATION.labels(route, method)


def observe_attempt(result: AttemptResult, delivery_status: str) -> None:
    """Count one recorded attempt and what it left its delivery as (a DeliveryStatus value)."""
    _ATTEMPTS_BY_RESULT[result.error.value if result.error else SUCCEEDED_RESULT].inc()
    DELIVERY_ATTEMPT_DURATION.observe(result.duration_ms / 1000)
    _DELIVERIES_BY_OUTCOME[_delivery_outcome(delivery_status)].inc()


def _delivery_outcome(delivery_status: str) -> str:
    if delivery_status == DeliveryStatus.PENDING.value:
        return "retrying"
    return delivery_status


async def render_metrics(engine: AsyncEngine, accept: str | None) -> tuple[bytes, str]:
    """The scrape's body and content type: Prometheus text, or OpenMetrics when accepted."""
    database = await database_metrics(engine)
    encode, content_type = choose_encoder(accept or "")
    return encode(_Scrape(database)), content_type


class _Scrape:
    """This process's registry plus the database's figures read for this one scrape."""

    def __init__(self, database: Sequence[Metric]) -> None:
        self._database = database

    def collect(self) -> Iterable[Metric]:
        yield from REGISTRY.collect()
        yield from self._database


@dataclass(frozen=True)
class _QueueFigures:
    due: int
    oldest_due_age_seconds: float
    healthy: int
    failing: int
    disabled: int


async def database_metrics(engine: AsyncEngine) -> list[Metric]:
    """Gauges read from the database now; without a database, only `database_up 0`."""
    up = GaugeMetricFamily(
        "reflexblue_database_up", "1 when the database answered this scrape's queries, else 0."
    )
    try:
        async with asyncio.timeout(DATABASE_READ_TIMEOUT_SECONDS):
            figures = await _read_queue_figures(engine)
    # Whatever the database does (refuses, hangs, drops the connection), the scrape answers.
    except Exception as error:
        logger.warning("metrics could not read the database", extra={"error": type(error).__name__})
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    return [up, *_queue_families(figures)]


async def _read_queue_figures(engine: AsyncEngine) -> _QueueFigures:
    now = utcnow()
    # Served by the (status, next_attempt_at) index; finished deliveries are never read.
    # Only enabled webhooks count, as only their deliveries can be sent.
    due = (
        select(func.count(), func.min(Delivery.next_attempt_at))
        .select_from(Delivery)
        .join(Webhook, Webhook.id == Delivery.webhook_id)
        .where(
            Delivery.status == DeliveryStatus.PENDING.value,
            Delivery.next_attempt_at <= now,
            Webhook.enabled.is_(True),
        )
    )
    # TODO: this counts the whole webhooks table on every scrape, fine for thousands of webhooks;
    # for millions, keep per-state counts up to date elsewhere instead.
    enabled = Webhook.enabled.is_(True)
    states = select(
        func.count().filter(enabled, Webhook.failing_since.is_(None)),
        func.count().filter(enabled, Webhook.failing_since.is_not(None)),
        func.count().filter(Webhook.enabled.is_(False)),
    )
    async with engine.connect() as connection:
        due_count, oldest_due = (await connection.execute(due)).one()
        healthy, failing, disabled = (await connection.execute(states)).one()
    age = max((now - oldest_due).total_seconds(), 0.0) if oldest_due is not None else 0.0
    return _QueueFigures(due_count, age, healthy, failing, disabled)


def _queue_families(figures: _QueueFigures) -> list[Metric]:
    depth = GaugeMetricFamily(
        "reflexblue_queue_depth",
        "Pending deliveries due now (or overdue) to enabled webhooks.",
        value=figures.due,
    )
    oldest = GaugeMetricFamily(
        "reflexblue_queue_oldest_due_age_seconds",
        "How long the longest-waiting due delivery has been due; 0 when none is due.",
        value=figures.oldest_due_age_seconds,
    )
    webhooks = GaugeMetricFamily(
        "reflexblue_webhooks",
        "Webhooks by state: healthy, failing (enabled, its recent attempts fail) or disabled.",
        labels=["state"],
    )
    webhooks.add_metric(["healthy"], figures.healthy)
    webhooks.add_metric(["failing"], figures.failing)
    webhooks.add_metric(["disabled"], figures.disabled)
    return [depth, oldest, webhooks]
