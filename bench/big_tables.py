"""Big tables: a database already holding many finished deliveries and many integrations.

Three figures. The drain rate over that database against the same drain on an empty one (one
after the other, in each round). And the Management API's list page and the console's overview
page, sorted by name and searched, each timed request by request (one at a time, so that the
figure is the page's own latency) against a bare Starlette endpoint that returns the same 50 rows
from memory under the same uvicorn settings.

The seeded rows are written with bulk inserts of the product's own tables, not through its API:
a million deliveries published one by one would take the benchmark hours. Each integration has
its own sealed secret, as the product would have made it.
"""

import asyncio
import json
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select

from bench.context import Context, progress
from bench.drain import (
    DrainCase,
    DrainRun,
    DrainSetting,
    Ledger,
    queue_case,
    run_drain,
    run_worker,
    tally,
)
from bench.ingest import ADMIN_NAME, ADMIN_PASSWORD
from bench.latency import percentile
from bench.payload import EVENT_TYPE
from bench.processes import free_port, running
from bench.report import Figure, Target
from reflexblue.accounts.models import Role
from reflexblue.accounts.schemas import UserCreate
from reflexblue.accounts.service import create_token, create_user
from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.crypto import new_webhook_secret
from reflexblue.core.database import new_id, transaction, utcnow
from reflexblue.core.runtime import Runtime, start_runtime
from reflexblue.integrations.models import Integration
from reflexblue.webhooks.models import Attempt, Delivery, DeliveryStatus, Event, Webhook

ROWS_PER_INSERT = 5_000
PAGE_ROWS = 50
# About one integration in ten has this in its name, so a searched page is a real filter.
SEARCH_TERM = "north"
LIST_PATH = f"/api/management/integrations?sort=name&order=asc&q={SEARCH_TERM}&limit={PAGE_ROWS}"
OVERVIEW_PATH = f"/management/general/integrations?sort=name&order=asc&q={SEARCH_TERM}"
BARE_ROWS_PATH = "/rows"
WARMUP_REQUESTS = 20
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
# The drain over the big database uses the case with several webhooks, the most common shape.
_DRAIN_CASE = DrainCase("big_tables", "Drain over big tables", webhooks=16, fan_out=1)
_PAGE_TARGET = Target("p99 ≤ 3 × bare", ratio_at_most=3.0)


def big_table_figures() -> list[Figure]:
    return [
        Figure(
            "big_tables_drain",
            "Drain, big tables ÷ empty",
            "deliveries/s",
            Target("≥ 0.90 × empty", ratio_at_least=0.90),
        ),
        Figure("big_tables_list_p99", "List page p99, big tables", "ms", _PAGE_TARGET),
        Figure("big_tables_overview_p99", "Console overview p99, big tables", "ms", _PAGE_TARGET),
    ]


@dataclass(frozen=True)
class PageTimes:
    list_p99: float
    overview_p99: float
    bare_p99: float


def run_big_tables_benchmark(context: Context) -> None:
    report = context.report
    sizes = context.options.sizes
    for round_number in range(context.options.rounds):
        empty = run_drain(_DRAIN_CASE, context.setting(), context.received)
        big_setting = context.setting()
        progress(f"big tables: seeding round {round_number + 1}")
        big = _drain_over_big_tables(big_setting, context, sizes.seeded_integrations)
        for run in (empty, big):
            report.add_run("big_tables_drains", run)
            if not run.ledger.balanced:
                report.void.append(f"big tables drain: the ledger does not balance: {run.ledger}")
        figure = report.figure("big_tables_drain")
        figure.baseline.append(empty.deliveries_per_second)
        figure.product.append(big.deliveries_per_second)
        times = time_pages(big_setting, sizes.page_requests)
        report.add_run("big_tables_pages", times)
        for key, p99 in (
            ("big_tables_list_p99", times.list_p99),
            ("big_tables_overview_p99", times.overview_p99),
        ):
            report.figure(key).product.append(p99)
            report.figure(key).baseline.append(times.bare_p99)
        progress(
            f"big tables: drain {big.deliveries_per_second:,.0f}/s "
            f"(empty {empty.deliveries_per_second:,.0f}/s), list p99 {times.list_p99:.1f} ms, "
            f"overview p99 {times.overview_p99:.1f} ms, bare p99 {times.bare_p99:.1f} ms"
        )


def _drain_over_big_tables(setting: DrainSetting, context: Context, integrations: int) -> DrainRun:
    """The drain of `run_drain` on a database seeded first; seeded rows are left out of the
    rate and the ledger."""
    settings = setting.settings()
    published = asyncio.run(queue_case(settings, _DRAIN_CASE, setting))
    seeded = context.options.sizes.seeded_deliveries
    started = asyncio.run(seed(setting, integrations, seeded))
    run = run_worker(setting, context.received)
    attempts, seconds, (succeeded, failed, pending) = asyncio.run(tally(settings, since=started))
    ledger = Ledger(published, succeeded - seeded, failed, pending, received=run.received)
    return DrainRun(
        _DRAIN_CASE.key,
        attempts,
        seconds,
        run.complete,
        run.peak_rss_bytes,
        ledger,
        run.cpu_seconds,
    )


async def seed(setting: DrainSetting, integrations: int, deliveries: int) -> datetime:
    """Integrations, finished deliveries (each with its attempt) of the first webhook, and an
    administrator; the moment after the seeded rows' times."""
    runtime = await start_runtime(setting.settings())
    try:
        async with transaction(runtime.sessions) as session:
            webhook_id = await session.scalar(select(Webhook.id).order_by(Webhook.id).limit(1))
            user = UserCreate(username=ADMIN_NAME, password=ADMIN_PASSWORD, role=Role.ADMIN)
            await create_user(session, user, CLI_ACTOR)
        if webhook_id is None:
            raise RuntimeError("the drain's webhooks must exist before seeding")
        await _insert_integrations(runtime, integrations)
        finished = utcnow() - timedelta(hours=1)
        await _insert_finished_deliveries(runtime, webhook_id, deliveries, finished)
        return finished + timedelta(seconds=1)
    finally:
        await runtime.close()


async def _insert_integrations(runtime: Runtime, count: int) -> None:
    now = utcnow()
    for first in range(0, count, ROWS_PER_INSERT):
        numbers = range(first, min(first + ROWS_PER_INSERT, count))
        rows = [_integration_row(runtime, number, now) for number in numbers]
        async with transaction(runtime.sessions) as session:
            await session.execute(insert(Integration), rows)


def _integration_row(runtime: Runtime, number: int, now: datetime) -> dict[str, Any]:
    region = SEARCH_TERM if number % 10 == 0 else ("south", "east", "west")[number % 3]
    integration_id = new_id("int")
    export_id = f"SEED_{number}"
    secret = new_webhook_secret().encode()
    return {
        "id": integration_id,
        "name": f"Shop {number:06d} {region}",
        "description": "",
        "external_id": f"ext-{number}",
        "export_id": export_id,
        "export_id_key": export_id.lower(),
        # As the product seals each integration's secret: bound to its row.
        "secret_sealed": runtime.box.seal(secret, f"integration:{integration_id}:secret"),
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }


async def _insert_finished_deliveries(
    runtime: Runtime, webhook_id: str, count: int, finished: datetime
) -> None:
    for first in range(0, count, ROWS_PER_INSERT):
        size = min(ROWS_PER_INSERT, count - first)
        events = [_event_row(finished) for _ in range(size)]
        deliveries = [_delivery_row(event["id"], webhook_id, finished) for event in events]
        attempts = [_attempt_row(delivery["id"], finished) for delivery in deliveries]
        async with transaction(runtime.sessions) as session:
            await session.execute(insert(Event), events)
            await session.execute(insert(Delivery), deliveries)
            await session.execute(insert(Attempt), attempts)


def _event_row(at: datetime) -> dict[str, Any]:
    return {"id": new_id("evt"), "type": EVENT_TYPE, "data": {"seeded": True}, "created_at": at}


def _delivery_row(event_id: str, webhook_id: str, at: datetime) -> dict[str, Any]:
    return {
        "id": new_id("dlv"),
        "event_id": event_id,
        "webhook_id": webhook_id,
        "status": DeliveryStatus.SUCCEEDED.value,
        "attempt_count": 1,
        "next_attempt_at": None,
        "locked_until": None,
        "created_at": at,
        "updated_at": at,
    }


def _attempt_row(delivery_id: str, at: datetime) -> dict[str, Any]:
    return {
        "id": new_id("att"),
        "delivery_id": delivery_id,
        "attempted_at": at,
        "duration_ms": 3,
        "response_status": 204,
        "response_body": "",
        "error": None,
    }


def time_pages(setting: DrainSetting, requests: int) -> PageTimes:
    """p99 of the list page, the overview page and the bare endpoint, request by request,
    the three taking turns so that drift touches each alike."""
    with _page_servers(setting) as (product_url, bare_url, token):
        api = httpx.Client(base_url=product_url, headers={"Authorization": f"Bearer {token}"})
        console = httpx.Client(base_url=product_url)
        bare = httpx.Client(base_url=bare_url)
        with api, console, bare:
            _sign_in(console)
            timings: dict[str, list[float]] = {"list": [], "overview": [], "bare": []}
            for number in range(WARMUP_REQUESTS + requests):
                for name, client, path in (
                    ("bare", bare, BARE_ROWS_PATH),
                    ("list", api, LIST_PATH),
                    ("overview", console, OVERVIEW_PATH),
                ):
                    elapsed = _timed_get(client, path)
                    if number >= WARMUP_REQUESTS:
                        timings[name].append(elapsed)
    return PageTimes(
        list_p99=percentile(sorted(timings["list"]), 0.99),
        overview_p99=percentile(sorted(timings["overview"]), 0.99),
        bare_p99=percentile(sorted(timings["bare"]), 0.99),
    )


@contextmanager
def _page_servers(setting: DrainSetting) -> Iterator[tuple[str, str, str]]:
    token = asyncio.run(_admin_token(setting))
    product_port, bare_port = free_port(), free_port()
    product_url, bare_url = f"http://127.0.0.1:{product_port}", f"http://127.0.0.1:{bare_port}"
    serve = ["reflexblue", "serve", "--no-worker", "--port", str(product_port)]
    with ExitStack() as stack:
        stack.enter_context(
            running(serve, setting.worker_environment(), ready_url=f"{product_url}/healthz")
        )
        rows = stack.enter_context(_first_page_file(product_url, token))
        bare = ["bench.bare_endpoint", str(bare_port), str(rows)]
        stack.enter_context(running(bare, {}, ready_url=f"{bare_url}/healthz"))
        yield product_url, bare_url, token


async def _admin_token(setting: DrainSetting) -> str:
    runtime = await start_runtime(setting.settings())
    try:
        async with transaction(runtime.sessions) as session:
            _, token = await create_token(session, ADMIN_NAME, "bench pages", CLI_ACTOR)
        return token
    finally:
        await runtime.close()


@contextmanager
def _first_page_file(product_url: str, token: str) -> Iterator[Path]:
    """The rows of the product's list page, in a file the bare endpoint serves from memory."""
    answer = httpx.get(product_url + LIST_PATH, headers={"Authorization": f"Bearer {token}"})
    answer.raise_for_status()
    items = answer.json()["items"]
    if len(items) != PAGE_ROWS:
        raise RuntimeError(f"the searched list page has {len(items)} rows, not {PAGE_ROWS}")
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="reflexblue-rows-") as file:
        json.dump(items, file)
        file.flush()
        yield Path(file.name)


def _sign_in(console: httpx.Client) -> None:
    form = console.get("/login")
    found = _CSRF_FIELD.search(form.text)
    if found is None:
        raise RuntimeError("the sign-in page has no CSRF field")
    answer = console.post(
        "/login",
        data={"csrf_token": found.group(1), "username": ADMIN_NAME, "password": ADMIN_PASSWORD},
    )
    if answer.status_code != 303:
        raise RuntimeError(f"signing in to the console answered {answer.status_code}")


def _timed_get(client: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    answer = client.get(path)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise RuntimeError(f"GET {path} answered {answer.status_code}")
    return elapsed_ms
