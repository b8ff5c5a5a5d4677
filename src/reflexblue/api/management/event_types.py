"""Management API: the event type catalogue."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel

from reflexblue.api.dependencies import AdminUser, CurrentUser, Sessions, actor_of
from reflexblue.api.json_bodies import StrictJsonRoute
from reflexblue.api.management.documentation import read_errors, write_errors
from reflexblue.core.database import transaction
from reflexblue.webhooks import event_types
from reflexblue.webhooks.listing import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX
from reflexblue.webhooks.schemas import EventTypeCreate, EventTypeRead

router = APIRouter(prefix="/event-types", tags=["event types"], route_class=StrictJsonRoute)


class EventTypePage(BaseModel):
    items: list[EventTypeRead]
    next_cursor: str | None


@router.get(
    "", operation_id="listEventTypes", response_model=EventTypePage, responses=read_errors()
)
async def list_event_types(
    _: CurrentUser,
    sessions: Sessions,
    limit: Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX)] = PAGE_SIZE_DEFAULT,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> EventTypePage:
    """The catalogue of event types, in order of name."""
    async with transaction(sessions) as session:
        page = await event_types.list_event_types(session, limit=limit, cursor=cursor)
        items = [EventTypeRead.model_validate(row) for row in page.items]
    return EventTypePage(items=items, next_cursor=page.next_cursor)


@router.post(
    "",
    operation_id="createEventType",
    status_code=status.HTTP_201_CREATED,
    response_model=EventTypeRead,
    responses=write_errors(409),
)
async def create_event_type(
    data: EventTypeCreate, user: AdminUser, sessions: Sessions, request: Request, response: Response
) -> EventTypeRead:
    """Add an event type, such as `order.created`, optionally with a JSON Schema that the
    payloads published as this type must satisfy."""
    async with transaction(sessions) as session:
        created = await event_types.create_event_type(session, data, actor_of(user))
        read = EventTypeRead.model_validate(created)
    response.headers["Location"] = str(request.url_for("list_event_types").path)
    return read
