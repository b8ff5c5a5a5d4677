"""External API: the calling integration, and the event types it can subscribe to."""

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from reflexblue.api.dependencies import Sessions
from reflexblue.api.external.caller import CallerDep
from reflexblue.api.external.documentation import read_errors
from reflexblue.api.json_bodies import StrictJsonRoute
from reflexblue.core.database import transaction
from reflexblue.integrations.schemas import IntegrationRead
from reflexblue.integrations.service import get_integration
from reflexblue.webhooks import event_types
from reflexblue.webhooks.listing import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX
from reflexblue.webhooks.schemas import EventTypeRead

router = APIRouter(route_class=StrictJsonRoute)

Limit = Annotated[
    int, Query(ge=1, le=PAGE_SIZE_MAX, description="How many items one page holds at most.")
]
PageCursor = Annotated[
    str | None,
    Query(max_length=1000, description="The `next_cursor` of the previous page."),
]


class EventTypePage(BaseModel):
    items: list[EventTypeRead]
    next_cursor: str | None


@router.get(
    "/integration",
    operation_id="getIntegration",
    tags=["integration"],
    response_model=IntegrationRead,
    responses=read_errors(),
)
async def read_integration(caller: CallerDep, sessions: Sessions) -> IntegrationRead:
    """The integration the API key belongs to. Its secret key is never part of it."""
    async with transaction(sessions) as session:
        integration = await get_integration(session, caller.integration_id)
        return IntegrationRead.model_validate(integration)


@router.get(
    "/event-types",
    operation_id="listEventTypes",
    tags=["event types"],
    response_model=EventTypePage,
    responses=read_errors(),
)
async def list_event_types(
    _: CallerDep,
    sessions: Sessions,
    limit: Limit = PAGE_SIZE_DEFAULT,
    cursor: PageCursor = None,
) -> EventTypePage:
    """The event types webhooks can subscribe to, in order of name."""
    async with transaction(sessions) as session:
        page = await event_types.list_event_types(session, limit=limit, cursor=cursor)
        items = [EventTypeRead.model_validate(row) for row in page.items]
    return EventTypePage(items=items, next_cursor=page.next_cursor)
