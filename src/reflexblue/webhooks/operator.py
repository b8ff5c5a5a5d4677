"""The operator's webhook: where `webhook.disabled` events go when a webhook is disabled
automatically, so the people running ReflexBlue hear of it.

It is an ordinary row of the webhooks table without an integration, so its events travel the
same queue, retries and attempt log as every other delivery. Its requests are signed with
`REFLEXBLUE_OPERATOR_WEBHOOK_SECRET` instead of an integration's secret. It subscribes to no
event type, so published events never reach it: only the worker queues deliveries for it.
"""

import logging
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.core.database import new_id, transaction, utcnow
from reflexblue.core.runtime import Runtime
from reflexblue.core.settings import Settings
from reflexblue.integrations.models import Integration
from reflexblue.webhooks.models import Delivery, DeliveryStatus, Event, Webhook
from reflexblue.webhooks.publishing import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

OPERATOR_WEBHOOK_ID = "wh_operator"
DISABLED_EVENT_TYPE = "webhook.disabled"
_DESCRIPTION = "The operator's webhook (REFLEXBLUE_OPERATOR_WEBHOOK_URL)."
_TURNED_OFF = "REFLEXBLUE_OPERATOR_WEBHOOK_URL is not set."


def is_operator_webhook(webhook: Webhook) -> bool:
    return webhook.integration_id is None


def operator_signing_secrets(settings: Settings) -> list[str]:
    secret = settings.operator_webhook_secret
    return [secret.get_secret_value()] if secret is not None else []


async def sync_operator_webhook(runtime: Runtime) -> None:
    """Make the operator's webhook row match the configuration: created or moved to the
    configured URL, or disabled (keeping its queued events) when the URL was removed."""
    try:
        await _sync(runtime)
    except IntegrityError:
        # Another worker starting at the same moment inserted the row first; it is in place.
        await _sync(runtime)


async def _sync(runtime: Runtime) -> None:
    url = runtime.settings.operator_webhook_url
    async with transaction(runtime.sessions) as session:
        webhook = await session.get(Webhook, OPERATOR_WEBHOOK_ID, with_for_update=True)
        now = utcnow()
        if webhook is None and url:
            session.add(_new_operator_webhook(url, now))
            await session.flush()
            logger.info("operator webhook configured", extra={"webhook_id": OPERATOR_WEBHOOK_ID})
        elif webhook is not None and url and (webhook.url != url or not webhook.enabled):
            webhook.url, webhook.enabled, webhook.disabled_reason = url, True, None
            webhook.updated_at = now
        elif webhook is not None and not url and webhook.enabled:
            webhook.enabled, webhook.disabled_reason, webhook.updated_at = False, _TURNED_OFF, now


def _new_operator_webhook(url: str, now: datetime) -> Webhook:
    return Webhook(
        id=OPERATOR_WEBHOOK_ID,
        integration_id=None,
        url=url,
        description=_DESCRIPTION,
        event_types=[],
        enabled=True,
        failure_count=0,
        created_at=now,
        updated_at=now,
    )


async def queue_disabled_events(
    session: AsyncSession, disabled: list[Webhook], settings: Settings, now: datetime
) -> int:
    """A `webhook.disabled` event to the operator's webhook for each webhook just disabled, in
    the caller's transaction; the number queued."""
    # The operator's own webhook is never reported about: that could only loop.
    reported = [webhook for webhook in disabled if not is_operator_webhook(webhook)]
    if not reported or not settings.operator_webhook_url:
        return 0
    operator = await session.get(Webhook, OPERATOR_WEBHOOK_ID)
    if operator is None or not operator.enabled:
        logger.warning("operator webhook missing; webhook.disabled not queued")
        return 0
    export_ids = await _export_ids(session, {webhook.integration_id for webhook in reported})
    events = [_disabled_event(webhook, export_ids, now) for webhook in reported]
    session.add_all(events)
    await session.flush()
    session.add_all(_operator_delivery(event.id, now) for event in events)
    await session.flush()
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
    return len(events)


async def _export_ids(session: AsyncSession, integration_ids: set[str | None]) -> dict[str, str]:
    query = select(Integration.id, Integration.export_id).where(
        Integration.id.in_([each for each in integration_ids if each is not None])
    )
    return {integration_id: export_id for integration_id, export_id in await session.execute(query)}


def _disabled_event(webhook: Webhook, export_ids: dict[str, str], now: datetime) -> Event:
    integration_id = webhook.integration_id or ""
    data = {
        "webhook_id": webhook.id,
        "integration_id": integration_id,
        "export_id": export_ids.get(integration_id, ""),
        "url": webhook.url,
        "reason": webhook.disabled_reason or "",
        "disabled_at": now.isoformat().replace("+00:00", "Z"),
    }
    # No integration on the event: deleting the integration must not take the news with it.
    return Event(id=new_id("evt"), type=DISABLED_EVENT_TYPE, data=data, created_at=now)


def _operator_delivery(event_id: str, now: datetime) -> Delivery:
    return Delivery(
        id=new_id("dlv"),
        event_id=event_id,
        webhook_id=OPERATOR_WEBHOOK_ID,
        status=DeliveryStatus.PENDING.value,
        attempt_count=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
