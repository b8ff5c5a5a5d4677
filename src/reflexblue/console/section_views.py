"""What the detail screen shows below the secret key: the integration's API keys and webhooks,
read into plain values the templates print."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.core.database import utcnow
from reflexblue.integrations import api_keys
from reflexblue.integrations.models import ApiKey
from reflexblue.webhooks import service as webhooks
from reflexblue.webhooks.models import Webhook

KeyState = Literal["active", "revoked", "expired"]
# The detail screen lists this many webhooks; an integration rarely has more.
WEBHOOKS_SHOWN = 100


@dataclass(frozen=True)
class KeyRow:
    key: ApiKey
    state: KeyState


@dataclass(frozen=True)
class WebhookRow:
    webhook: Webhook
    state: str
    healthy: bool


@dataclass(frozen=True)
class Sections:
    keys: list[KeyRow]
    webhooks: list[WebhookRow]
    more_webhooks: bool


def key_state(key: ApiKey, now: datetime) -> KeyState:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def webhook_state(webhook: Webhook) -> str:
    """In words: Healthy, Failing since <time>, or Disabled: <reason>."""
    if not webhook.enabled:
        return f"Disabled: {webhook.disabled_reason}" if webhook.disabled_reason else "Disabled"
    if webhook.failing_since is not None:
        since = webhook.failing_since.strftime("%d %b %Y, %H:%M UTC")
        return f"Failing since {since} ({failures_in_words(webhook.failure_count)})"
    return "Healthy"


def failures_in_words(count: int) -> str:
    return "1 failed attempt in a row" if count == 1 else f"{count} failed attempts in a row"


def webhook_row(webhook: Webhook) -> WebhookRow:
    healthy = webhook.enabled and webhook.failing_since is None
    return WebhookRow(webhook=webhook, state=webhook_state(webhook), healthy=healthy)


async def load_sections(session: AsyncSession, integration_id: str) -> Sections:
    now = utcnow()
    keys = await api_keys.list_api_keys(session, integration_id)
    page = await webhooks.list_webhooks(session, integration_id, limit=WEBHOOKS_SHOWN)
    return Sections(
        keys=[KeyRow(key=key, state=key_state(key, now)) for key in keys],
        webhooks=[webhook_row(webhook) for webhook in page.items],
        more_webhooks=page.next_cursor is not None,
    )


# What a finished action says on the screen it returns to (POST, redirect, GET with ?done=).
SECTION_NOTICES = {
    "key-revoked": "The API key was revoked; it no longer opens the External API.",
    "test-queued": "A test event is on its way; its delivery is listed below.",
    "retried": "The delivery is queued again and is sent at once.",
    "recovery-started": "The recovery started: its failed deliveries are queued again in "
    "batches, and its progress is listed below.",
}
