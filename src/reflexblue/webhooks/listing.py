"""Forward cursor paging over one unique, ordered key (an id or a name)."""

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from reflexblue.core.errors import FieldError, ValidationFailed
from reflexblue.core.paging import Cursor, Order, Page

RowT = TypeVar("RowT")

PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 200


async def page_by_key(
    session: AsyncSession,
    query: Select[Any],
    key: InstrumentedAttribute[str],
    *,
    row_type: type[RowT],
    order: Order,
    limit: int,
    cursor: str | None,
) -> Page[RowT]:
    """One page of the query in key order; `next_cursor` leads on from its last row."""
    if not 1 <= limit <= PAGE_SIZE_MAX:
        message = f"Must be between 1 and {PAGE_SIZE_MAX}."
        raise ValidationFailed(message, [FieldError("limit", message)])
    sort = key.key
    if cursor:
        after = Cursor.decode(cursor, sort=sort, order=order).id
        query = query.where(key > after if order == "asc" else key < after)
    ordering: Any = key.asc() if order == "asc" else key.desc()
    rows: list[RowT] = list(await session.scalars(query.order_by(ordering).limit(limit + 1)))
    if len(rows) <= limit:
        return Page(items=rows, next_cursor=None, prev_cursor=None)
    last_key: str = getattr(rows[limit - 1], sort)
    next_cursor = Cursor(sort, order, None, last_key).encode()
    return Page(items=rows[:limit], next_cursor=next_cursor, prev_cursor=None)
