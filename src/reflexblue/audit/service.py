"""Recording and reading the audit log."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.audit.models import AuditEvent
from reflexblue.core.errors import ValidationFailed

AUDIT_PAGE_MAX = 200


@dataclass(frozen=True)
class Actor:
    """Who acts: a signed-in user, a user's API token, or the operator's command line."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


CLI_ACTOR = Actor("cli", "operator")


Changes = dict[str, dict[str, Any]]


def apply_changes(target: object, wanted: dict[str, Any]) -> Changes:
    """Set the wanted values that differ from the target's, and return them as the audit log
    records them: `{field: {"from": old, "to": new}}`, empty when nothing changed."""
    changes = {
        field: {"from": getattr(target, field), "to": value}
        for field, value in wanted.items()
        if getattr(target, field) != value
    }
    for field, change in changes.items():
        setattr(target, field, change["to"])
    return changes


def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    *,
    target_type: str,
    target_id: str,
    target_name: str = "",
    changes: dict[str, Any] | None = None,
) -> None:
    """Add one entry to the caller's transaction, so it commits or rolls back with the change."""
    session.add(
        AuditEvent(
            actor=str(actor),
            action=action,
            target_type=target_type,
            target_id=target_id,
            target_name=target_name[:200],
            changes=changes or {},
        )
    )


async def list_events(
    session: AsyncSession, *, limit: int = 50, before: int | None = None
) -> tuple[list[AuditEvent], int | None]:
    """Newest first; `before` is the id of the last entry of the previous page."""
    if not 1 <= limit <= AUDIT_PAGE_MAX:
        raise ValidationFailed(f"limit must be between 1 and {AUDIT_PAGE_MAX}.")
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    events = list(await session.scalars(query))
    next_before = events[limit - 1].id if len(events) > limit else None
    return events[:limit], next_before
