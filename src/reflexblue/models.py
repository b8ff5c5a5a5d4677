"""Every table of the product, imported in one place for migrations and schema checks."""

from reflexblue.accounts.models import ConsoleSession, User, UserToken
from reflexblue.audit.models import AuditEvent
from reflexblue.core.database import Base
from reflexblue.core.keyring import SystemValue
from reflexblue.integrations.models import Integration

__all__ = [
    "AuditEvent",
    "Base",
    "ConsoleSession",
    "Integration",
    "SystemValue",
    "User",
    "UserToken",
]
