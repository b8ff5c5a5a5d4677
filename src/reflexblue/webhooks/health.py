"""How the webhooks of many integrations fare, counted for a screen of integrations at once."""

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Integer, and_, func, not_, select
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.webhooks.models import Webhook


@dataclass(frozen=True)
class WebhookTrouble:
    """An integration's webhooks that are failing (still enabled) or disabled."""

    failing: int
    disabled: int

    @property
    def in_words(self) -> str:
        parts = []
        if self.failing:
            parts.append(f"{self.failing} failing")
        if self.disabled:
            parts.append(f"{self.disabled} disabled")
        return ", ".join(parts)


async def webhook_trouble(
    session: AsyncSession, integration_ids: Collection[str]
) -> dict[str, WebhookTrouble]:
    """For each of these integrations with a failing or disabled webhook, how many; one grouped
    query over the given integrations only (their webhooks are found by index)."""
    if not integration_ids:
        return {}
    failing = and_(Webhook.enabled.is_(True), Webhook.failing_since.is_not(None))
    query = (
        select(
            Webhook.integration_id,
            func.sum(failing.cast(Integer)),
            func.sum(not_(Webhook.enabled).cast(Integer)),
        )
        .where(Webhook.integration_id.in_(list(integration_ids)))
        .where(failing | not_(Webhook.enabled))
        .group_by(Webhook.integration_id)
    )
    found = {}
    for integration_id, failing_count, disabled_count in await session.execute(query):
        if integration_id is not None:
            found[integration_id] = WebhookTrouble(int(failing_count), int(disabled_count))
    return found
