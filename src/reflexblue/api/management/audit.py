"""Management API: the audit log."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from reflexblue.api.dependencies import CurrentUser, Sessions
from reflexblue.api.json_bodies import StrictJsonRoute
from reflexblue.api.management.documentation import read_errors
from reflexblue.audit import service
from reflexblue.core.database import transaction

router = APIRouter(prefix="/audit-log", tags=["audit log"], route_class=StrictJsonRoute)


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    target_name: str
    changes: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditEventRead]
    next_cursor: str | None


@router.get("", response_model=AuditPage, responses=read_errors())
async def list_audit_events(
    _: CurrentUser,
    sessions: Sessions,
    limit: Annotated[int, Query(ge=1, le=service.AUDIT_PAGE_MAX)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,18}$")] = None,
) -> AuditPage:
    """Who changed what and when, newest first, including every reveal of a secret key."""
    async with transaction(sessions) as session:
        events, next_before = await service.list_events(
            session, limit=limit, before=int(cursor) if cursor else None
        )
        items = [AuditEventRead.model_validate(event) for event in events]
    return AuditPage(items=items, next_cursor=str(next_before) if next_before else None)
