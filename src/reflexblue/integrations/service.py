"""Integrations: create, read, list, change and delete them, and keep their secret keys."""

from datetime import datetime, timedelta
from typing import Any, Literal, TypeVarTuple

from sqlalchemy import ColumnElement, Row, Select, String, literal, or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from reflexblue.audit.service import Actor, apply_changes, record
from reflexblue.core.crypto import SecretBox, new_webhook_secret
from reflexblue.core.database import new_id, utcnow
from reflexblue.core.errors import (
    Conflict,
    FieldError,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from reflexblue.core.paging import Cursor, Order, Page, cursor_value
from reflexblue.core.validation import unstorable
from reflexblue.integrations.models import Integration
from reflexblue.integrations.schemas import IntegrationCreate, IntegrationUpdate, SecretRead

SortField = Literal["name", "external_id", "export_id", "created_at", "updated_at"]
SORT_FIELDS: tuple[SortField, ...] = (
    "name",
    "external_id",
    "export_id",
    "created_at",
    "updated_at",
)
PAGE_SIZE_MAX = 200
_SEARCHED_COLUMNS = (Integration.name, Integration.external_id, Integration.export_id)
Columns = TypeVarTuple("Columns")
# What a list shows of each integration: every column but the sealed secrets, read as plain
# rows. Building ORM objects took most of the time a page of 50 spent in SQLAlchemy.
_LISTED_COLUMNS = (
    Integration.id,
    Integration.name,
    Integration.description,
    Integration.external_id,
    Integration.export_id,
    Integration.created_at,
    Integration.updated_at,
    Integration.version,
)
# A listed integration: its columns by the same names as Integration's attributes.
ListedIntegration = Row[str, str, str, str, str, datetime, datetime, int]


async def create_integration(
    session: AsyncSession, box: SecretBox, data: IntegrationCreate, actor: Actor
) -> Integration:
    integration_id = new_id("int")
    now = utcnow()
    integration = Integration(
        id=integration_id,
        name=data.name,
        description=data.description,
        external_id=data.external_id,
        export_id=data.export_id,
        export_id_key=data.export_id.lower(),
        secret_sealed=box.seal(new_webhook_secret().encode(), _secret_context(integration_id)),
        # One clock reading for both, so a new integration has not been modified since created.
        created_at=now,
        updated_at=now,
    )
    session.add(integration)
    await _flush_or_conflict(session, data.export_id)
    record(
        session,
        actor,
        "integration.created",
        target_type="integration",
        target_id=integration.id,
        target_name=integration.name,
        changes={field: {"to": value} for field, value in data.model_dump().items()},
    )
    return integration


async def get_integration(session: AsyncSession, integration_id: str) -> Integration:
    found = None if unstorable(integration_id) else await session.get(Integration, integration_id)
    if found is None:
        raise NotFound(f"No integration has the id {integration_id!r}.")
    return found


async def get_integration_by_export_id(session: AsyncSession, export_id: str) -> Integration:
    key = export_id.strip().lower()
    found = None
    if key.isascii() and all(char.isalnum() or char == "_" for char in key):
        found = await session.scalar(select(Integration).where(Integration.export_id_key == key))
    if found is None:
        raise NotFound(f"No integration has the Export ID {export_id!r}.")
    return found


async def list_integrations(
    session: AsyncSession,
    *,
    sort: SortField = "name",
    order: Order = "asc",
    q: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[ListedIntegration]:
    """One page in the given order; the cursors lead to the pages after and before it."""
    if sort not in SORT_FIELDS:
        raise _invalid("sort", f"Sort by one of: {', '.join(SORT_FIELDS)}.")
    if not 1 <= limit <= PAGE_SIZE_MAX:
        raise _invalid("limit", f"Must be between 1 and {PAGE_SIZE_MAX}.")
    if q is not None and unstorable(q):
        raise _invalid("q", "Search text may not contain control characters.")

    position = Cursor.decode(cursor, sort=sort, order=order) if cursor else None
    backwards = position is not None and position.direction == "prev"
    query = _search(select(*_LISTED_COLUMNS), q, session.get_bind().dialect.name)
    if position is not None:
        query = query.where(_beyond(sort, order, position))
    walk_order: Order = _reverse(order) if backwards else order
    query = query.order_by(*_ordering(sort, walk_order)).limit(limit + 1)

    rows: list[ListedIntegration] = list(await session.execute(query))
    has_more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    return _page(rows, sort, order, position, has_more=has_more, backwards=backwards)


async def update_integration(
    session: AsyncSession,
    integration_id: str,
    data: IntegrationUpdate,
    actor: Actor,
    *,
    expected_version: int | None = None,
) -> Integration:
    integration = await get_integration(session, integration_id)
    _check_version(integration, expected_version)

    changes = apply_changes(integration, data.changes())
    if not changes:
        return integration
    integration.export_id_key = integration.export_id.lower()
    integration.updated_at = utcnow()
    await _flush_or_conflict(session, integration.export_id)
    record(
        session,
        actor,
        "integration.updated",
        target_type="integration",
        target_id=integration.id,
        target_name=integration.name,
        changes=changes,
    )
    return integration


async def delete_integration(
    session: AsyncSession,
    integration_id: str,
    actor: Actor,
    *,
    expected_version: int | None = None,
) -> None:
    integration = await get_integration(session, integration_id)
    _check_version(integration, expected_version)
    await session.delete(integration)
    record(
        session,
        actor,
        "integration.deleted",
        target_type="integration",
        target_id=integration.id,
        target_name=integration.name,
        changes={"export_id": {"from": integration.export_id}},
    )
    await _flush_or_stale(session)


async def reveal_secret(
    session: AsyncSession, box: SecretBox, integration_id: str, actor: Actor
) -> SecretRead:
    """The secret in plain text, for the administrator to pass on; every reveal is audited."""
    integration = await get_integration(session, integration_id)
    record(
        session,
        actor,
        "integration.secret_revealed",
        target_type="integration",
        target_id=integration.id,
        target_name=integration.name,
    )
    return _secret_read(box, integration, utcnow())


async def rotate_secret(
    session: AsyncSession,
    box: SecretBox,
    integration_id: str,
    actor: Actor,
    *,
    grace_period_seconds: int,
) -> SecretRead:
    """A new secret signs from now on; the current one keeps signing for the grace period."""
    integration = await get_integration(session, integration_id)
    now = utcnow()
    integration.previous_secret_sealed = integration.secret_sealed
    integration.previous_secret_expires_at = now + timedelta(seconds=grace_period_seconds)
    integration.secret_sealed = box.seal(
        new_webhook_secret().encode(), _secret_context(integration.id)
    )
    integration.updated_at = now
    record(
        session,
        actor,
        "integration.secret_rotated",
        target_type="integration",
        target_id=integration.id,
        target_name=integration.name,
        changes={
            "previous_secret_expires_at": {
                "to": cursor_value(integration.previous_secret_expires_at)
            }
        },
    )
    await _flush_or_stale(session)
    return _secret_read(box, integration, now)


def signing_secrets(box: SecretBox, integration: Integration, now: datetime) -> list[str]:
    """The secrets a webhook request is signed with now: the current one, and the previous
    one while its grace period lasts."""
    previous = previous_in_grace(
        integration.previous_secret_sealed, integration.previous_secret_expires_at, now
    )
    return open_signing_secrets(box, integration.id, integration.secret_sealed, previous)


def open_signing_secrets(
    box: SecretBox, integration_id: str, sealed: bytes, previous_sealed: bytes | None
) -> list[str]:
    """`signing_secrets` from the sealed columns, the previous one already checked with
    `previous_in_grace`."""
    secrets = [box.open(sealed, _secret_context(integration_id)).decode()]
    if previous_sealed is not None:
        secrets.append(box.open(previous_sealed, _secret_context(integration_id)).decode())
    return secrets


def previous_in_grace(
    sealed: bytes | None, expires_at: datetime | None, now: datetime
) -> bytes | None:
    """The sealed previous secret while its grace period lasts, else None."""
    if sealed is None or expires_at is None or expires_at <= now:
        return None
    return sealed


def _secret_read(box: SecretBox, integration: Integration, now: datetime) -> SecretRead:
    previous = _previous_secret(box, integration, now)
    return SecretRead(
        secret=box.open(integration.secret_sealed, _secret_context(integration.id)).decode(),
        previous_secret=previous,
        previous_secret_expires_at=integration.previous_secret_expires_at if previous else None,
    )


def _previous_secret(box: SecretBox, integration: Integration, now: datetime) -> str | None:
    sealed = previous_in_grace(
        integration.previous_secret_sealed, integration.previous_secret_expires_at, now
    )
    if sealed is None:
        return None
    return box.open(sealed, _secret_context(integration.id)).decode()


def _secret_context(integration_id: str) -> str:
    # Binding each ciphertext to its row means a sealed secret copied onto another
    # integration's row does not open.
    return f"integration:{integration_id}:secret"


def _check_version(integration: Integration, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != integration.version:
        raise PreconditionFailed(
            f"The integration changed meanwhile (version {integration.version}, "
            f"not {expected_version}); reload it and apply your change again."
        )


async def _flush_or_conflict(session: AsyncSession, export_id: str) -> None:
    try:
        await session.flush()
    except IntegrityError:
        message = f"An integration with the Export ID {export_id!r} already exists."
        raise Conflict(message, [FieldError("export_id", message)]) from None
    except StaleDataError:
        raise _changed_meanwhile() from None


async def _flush_or_stale(session: AsyncSession) -> None:
    try:
        await session.flush()
    except StaleDataError:
        raise _changed_meanwhile() from None


def _changed_meanwhile() -> PreconditionFailed:
    return PreconditionFailed(
        "The integration changed meanwhile; reload it and apply your change again."
    )


def _search(query: Select[*Columns], q: str | None, dialect: str) -> Select[*Columns]:
    text = (q or "").strip()
    if not text:
        return query
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    if dialect == "sqlite":
        # SQLite's LIKE already ignores the case of ASCII letters; ILIKE would wrap every
        # value in lower(), which costs about twice as much over a full scan.
        return query.where(or_(*(c.like(pattern, escape="\\") for c in _SEARCHED_COLUMNS)))
    return query.where(or_(*(c.ilike(pattern, escape="\\") for c in _SEARCHED_COLUMNS)))


def _ordering(sort: SortField, order: Order) -> list[ColumnElement[Any]]:
    column, tie_breaker = getattr(Integration, sort), Integration.id
    if order == "desc":
        return [column.desc(), tie_breaker.desc()]
    return [column.asc(), tie_breaker.asc()]


def _beyond(sort: SortField, order: Order, position: Cursor) -> ColumnElement[bool]:
    """Rows strictly after the cursor in the walking direction, as an index range."""
    column = getattr(Integration, sort)
    value: Any = position.value
    if sort in ("created_at", "updated_at") and value is not None:
        value = _parse_timestamp(value)
    key = tuple_(column, Integration.id)
    bound = tuple_(literal(value, column.type), literal(position.id, String()))
    walking_up = (order == "asc") != (position.direction == "prev")
    return key > bound if walking_up else key < bound


def _page(
    rows: list[ListedIntegration],
    sort: SortField,
    order: Order,
    position: Cursor | None,
    *,
    has_more: bool,
    backwards: bool,
) -> Page[ListedIntegration]:
    if not rows:
        return Page(items=[], next_cursor=None, prev_cursor=None)
    more_after = has_more if not backwards else True
    more_before = has_more if backwards else position is not None

    def at(row: ListedIntegration, direction: Literal["next", "prev"]) -> str:
        return Cursor(sort, order, cursor_value(getattr(row, sort)), row.id, direction).encode()

    return Page(
        items=rows,
        next_cursor=at(rows[-1], "next") if more_after else None,
        prev_cursor=at(rows[0], "prev") if more_before else None,
    )


def _parse_timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    # Cursors of ours carry aware UTC times; a naive one would only fail later, in the database.
    if parsed is None or parsed.utcoffset() is None:
        raise _invalid("cursor", "The cursor is not one this API handed out.")
    return parsed


def _reverse(order: Order) -> Order:
    return "desc" if order == "asc" else "asc"


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, [FieldError(field, message)])
