"""Webhooks: an integration's subscriptions, each seen and changed by that integration only."""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.audit.service import Actor, apply_changes, record
from reflexblue.core.database import utcnow
from reflexblue.core.errors import NotFound, ValidationFailed
from reflexblue.core.paging import Page
from reflexblue.core.validation import unstorable
from reflexblue.integrations.models import Integration
from reflexblue.webhooks.event_types import require_known_types
from reflexblue.webhooks.listing import PAGE_SIZE_DEFAULT, page_by_key
from reflexblue.webhooks.models import Webhook
from reflexblue.webhooks.schemas import WebhookCreate, WebhookUpdate


async def create_webhook(
    session: AsyncSession,
    integration_id: str,
    data: WebhookCreate,
    actor: Actor,
    *,
    max_per_integration: int,
) -> Webhook:
    """Add a webhook. The URL's address is checked by the caller before the transaction, since
    resolving a name may take a while."""
    await _lock_integration(session, integration_id)
    await _require_room(session, integration_id, max_per_integration)
    await require_known_types(session, data.event_types)
    now = utcnow()
    webhook = Webhook(
        integration_id=integration_id,
        url=data.url,
        description=data.description,
        event_types=data.event_types,
        enabled=True,
        created_at=now,
        updated_at=now,
    )
    session.add(webhook)
    await session.flush()
    record(
        session,
        actor,
        "webhook.created",
        target_type="webhook",
        target_id=webhook.id,
        target_name=webhook.url,
        changes={field: {"to": value} for field, value in data.model_dump().items()},
    )
    return webhook


async def get_webhook(session: AsyncSession, integration_id: str, webhook_id: str) -> Webhook:
    """The integration's webhook. Another integration's webhook is answered like a missing one."""
    webhook = None if unstorable(webhook_id) else await session.get(Webhook, webhook_id)
    if webhook is None or webhook.integration_id != integration_id:
        raise NotFound(f"No webhook has the id {webhook_id!r}.")
    return webhook


async def list_webhooks(
    session: AsyncSession,
    integration_id: str,
    *,
    limit: int = PAGE_SIZE_DEFAULT,
    cursor: str | None = None,
) -> Page[Webhook]:
    """The integration's webhooks, oldest first."""
    query = select(Webhook).where(Webhook.integration_id == integration_id)
    return await page_by_key(
        session, query, Webhook.id, row_type=Webhook, order="asc", limit=limit, cursor=cursor
    )


async def update_webhook(
    session: AsyncSession, integration_id: str, webhook_id: str, data: WebhookUpdate, actor: Actor
) -> Webhook:
    webhook = await get_webhook(session, integration_id, webhook_id)
    if data.event_types is not None:
        await require_known_types(session, data.event_types)
    changes = apply_changes(webhook, data.changes())
    if not changes:
        return webhook
    if "enabled" in changes and webhook.enabled:
        webhook.disabled_reason = None
        webhook.failing_since = None
        webhook.failure_count = 0
    elif "enabled" in changes:
        webhook.disabled_reason = "Disabled through the External API."
    webhook.updated_at = utcnow()
    await session.flush()
    record(
        session,
        actor,
        "webhook.updated",
        target_type="webhook",
        target_id=webhook.id,
        target_name=webhook.url,
        changes=changes,
    )
    return webhook


async def delete_webhook(
    session: AsyncSession, integration_id: str, webhook_id: str, actor: Actor
) -> None:
    """Remove a webhook with its deliveries and their attempts."""
    webhook = await get_webhook(session, integration_id, webhook_id)
    await session.delete(webhook)
    await session.flush()
    record(
        session,
        actor,
        "webhook.deleted",
        target_type="webhook",
        target_id=webhook.id,
        target_name=webhook.url,
    )


async def _lock_integration(session: AsyncSession, integration_id: str) -> None:
    # Two creates at once must not both pass the limit check: on PostgreSQL the integration's
    # row lock queues them; SQLite already runs one writing transaction at a time.
    query = select(Integration.id).where(Integration.id == integration_id).with_for_update()
    if await session.scalar(query) is None:
        raise NotFound(f"No integration has the id {integration_id!r}.")


async def _require_room(session: AsyncSession, integration_id: str, limit: int) -> None:
    count_query = select(func.count()).where(Webhook.integration_id == integration_id)
    count = await session.scalar(count_query) or 0
    if count >= limit:
        message = (
            f"An integration may have at most {limit} webhooks and this one has {count}; "
            "delete one it no longer needs first."
        )
        raise ValidationFailed(message)
