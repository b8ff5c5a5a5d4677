"""The event type catalogue: what webhooks may subscribe to and events may be published as."""

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.audit.service import Actor, record
from reflexblue.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from reflexblue.core.paging import Page
from reflexblue.core.validation import unstorable
from reflexblue.webhooks.listing import PAGE_SIZE_DEFAULT, page_by_key
from reflexblue.webhooks.models import EventType
from reflexblue.webhooks.schemas import ALL_EVENT_TYPES, EventTypeCreate


async def list_event_types(
    session: AsyncSession, *, limit: int = PAGE_SIZE_DEFAULT, cursor: str | None = None
) -> Page[EventType]:
    """The catalogue in order of name."""
    return await page_by_key(
        session,
        select(EventType),
        EventType.name,
        row_type=EventType,
        order="asc",
        limit=limit,
        cursor=cursor,
    )


async def get_event_type(session: AsyncSession, name: str) -> EventType:
    found = None if unstorable(name) else await session.get(EventType, name)
    if found is None:
        raise NotFound(f"No event type is named {name!r}.")
    return found


async def create_event_type(
    session: AsyncSession, data: EventTypeCreate, actor: Actor
) -> EventType:
    event_type = EventType(name=data.name, description=data.description, schema=data.schema_)
    session.add(event_type)
    try:
        await session.flush()
    except IntegrityError:
        message = f"An event type named {data.name!r} already exists."
        raise Conflict(message, [FieldError("name", message)]) from None
    record(
        session,
        actor,
        "event_type.created",
        target_type="event_type",
        target_id=event_type.name[:40],
        target_name=event_type.name,
        changes={"description": {"to": event_type.description}},
    )
    return event_type


async def require_known_types(session: AsyncSession, names: Iterable[str]) -> None:
    """Every name must be in the catalogue, or the list must be exactly ["*"]."""
    wanted = {name for name in names if name != ALL_EVENT_TYPES}
    if not wanted:
        return
    query = select(EventType.name).where(EventType.name.in_(wanted))
    unknown = sorted(wanted - set(await session.scalars(query)))
    if unknown:
        message = (
            f"Unknown event type(s): {', '.join(unknown)}. "
            "GET /event-types lists the ones that exist."
        )
        raise ValidationFailed(message, [FieldError("event_types", message)])
