"""Every table of the product, imported in one place for migrations and schema checks."""

from reflexblue.accounts.models import ConsoleSession, User, UserToken
from reflexblue.audit.models import AuditEvent
from reflexblue.core.database import Base
from reflexblue.core.keyring import SystemValue
from reflexblue.integrations.models import ApiKey, Integration
from reflexblue.webhooks.models import (
    Attempt,
    Delivery,
    Event,
    EventType,
    IdempotencyRecord,
    Recovery,
    Webhook,
)

__all__ = [
    "ApiKey",
    "Attempt",
    "AuditEvent",
    "Base",
    "ConsoleSession",
    "Delivery",
    "Event",
    "EventType",
    "IdempotencyRecord",
    "Integration",
    "Recovery",
    "SystemValue",
    "User",
    "UserToken",
    "Webhook",
]
