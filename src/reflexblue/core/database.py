"""The database engine, sessions and the column types every feature's models share."""

import asyncio
import enum
import json
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import DateTime, MetaData, TypeDecorator, event, text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from ulid import ULID

from reflexblue.core.sqlite_inline import inline_connector

SQLITE_BUSY_TIMEOUT_MILLISECONDS = 10_000
# asyncpg waits a minute by default for a server that accepts no connection or answers none.
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5.0

# Stable constraint names, so migrations can refer to them on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no time zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A prefixed, time-ordered identifier such as `int_01JF…`: readable in logs and URLs."""
    return f"{prefix}_{ULID()}"


def compact_json(value: Any) -> str:
    """How JSON columns are written: no spaces, characters as themselves. The worker puts an
    event's data into each request body as it is stored (webhooks.worker.request_body)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        path = make_url(url).database or ":memory:"
        connector = inline_connector(path, SQLITE_BUSY_TIMEOUT_MILLISECONDS / 1000)
        engine = create_async_engine(url, async_creator=connector, json_serializer=compact_json)
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        event.listen(engine.sync_engine, "begin", _begin_sqlite_immediately)
        return engine
    return _postgres_engine(url)


def _postgres_engine(url: str) -> AsyncEngine:
    # SQLAlchemy's asyncpg dialect opens each connection with `async_creator_fn`, given the
    # URL's own arguments; supplying it keeps those and only changes how failures surface.
    options = {"timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS, "async_creator_fn": _connect_postgres}
    # TODO: a server that stops answering in the middle of a statement (frozen, cut off by the
    # network) holds that request until TCP gives up. asyncpg's command_timeout would bound
    # it, but one figure for every statement would also cut off long migrations and prunes.
    return create_async_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args=options,
        json_serializer=compact_json,
    )


# The driver's class for "the database cannot be reached", which SQLAlchemy leaves untyped.
_DriverOperationalError: Any = AsyncAdapt_asyncpg_dbapi.OperationalError


async def _connect_postgres(*args: Any, **kwargs: Any) -> Any:
    """asyncpg.connect, failing the way every other driver does.

    asyncpg reports a server that refuses the connection or does not answer in time as a bare
    OSError (TimeoutError is one), which SQLAlchemy passes on unwrapped, unlike its own
    errors. Raised as the driver's OperationalError, it arrives as SQLAlchemy's instead.
    """
    try:
        return await asyncpg.connect(*args, **kwargs)
    except OSError as error:
        reason = f"PostgreSQL cannot be reached: {type(error).__name__}: {error}"
        raise _DriverOperationalError(reason, error) from error


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MILLISECONDS}")
    cursor.close()
    # The driver's own implicit BEGIN is turned off so that _begin_sqlite_immediately decides.
    dbapi_connection.isolation_level = None


def _begin_sqlite_immediately(connection: Any) -> None:
    # A deferred transaction that reads and then writes fails at once with "database is
    # locked" when another writer got in between; taking the write lock up front makes
    # SQLite queue writers behind busy_timeout instead.
    # TODO: read-only requests take the lock too; split reads off if that ever limits throughput.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class DatabaseFault(enum.Enum):
    """A failure of the database itself rather than of the statement sent to it."""

    UNAVAILABLE = "unavailable"  # away, starting, stopping, or too busy to take a connection
    DISK_FULL = "disk full"


# PostgreSQL's SQLSTATE codes: disk_full; connection exceptions, operator intervention (admin
# or crash shutdown, cannot connect now), too_many_connections.
_POSTGRES_DISK_FULL = "53100"
_POSTGRES_UNAVAILABLE_PREFIXES = ("08", "57P", "53300")


def database_fault(error: BaseException) -> DatabaseFault | None:
    """What an error from a database call says of the database, or None when the call
    itself failed (a broken statement, a violated constraint): a fault in the code."""
    if isinstance(error, PoolTimeout):  # every pooled connection stayed busy too long
        return DatabaseFault.UNAVAILABLE
    if not isinstance(error, DBAPIError):
        return None
    sqlstate = str(getattr(error.orig, "sqlstate", None) or "")
    if sqlstate == _POSTGRES_DISK_FULL or _is_sqlite_full(error.orig):
        return DatabaseFault.DISK_FULL
    if (
        error.connection_invalidated
        or isinstance(error, (OperationalError, InterfaceError))
        or sqlstate.startswith(_POSTGRES_UNAVAILABLE_PREFIXES)
    ):
        return DatabaseFault.UNAVAILABLE
    return None


def _is_sqlite_full(cause: BaseException | None) -> bool:
    # The low byte is the primary result code; extended codes only add detail above it.
    if not isinstance(cause, sqlite3.Error):
        return False
    return cause.sqlite_errorcode & 0xFF == sqlite3.SQLITE_FULL


# Any fixed number works; it only has to be the same in every process.
_FIRST_START_LOCK = 7_341_205_119


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: committed when the block ends, rolled back if it raises."""
    async with AsyncExitStack() as stack:
        engine = sessions.kw.get("bind")
        if isinstance(engine, AsyncEngine) and engine.dialect.name == "sqlite":
            await stack.enter_async_context(_sqlite_writer_turn(engine))
        session = await stack.enter_async_context(sessions())
        await stack.enter_async_context(session.begin())
        yield session


@asynccontextmanager
async def connection_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """`transaction` on a bare connection, for statements that need no ORM session: the
    worker's claims, where the session's own bookkeeping cost more than the statements."""
    async with AsyncExitStack() as stack:
        if engine.dialect.name == "sqlite":
            await stack.enter_async_context(_sqlite_writer_turn(engine))
        yield await stack.enter_async_context(engine.begin())


# One lock per SQLite engine: every transaction there takes SQLite's write lock (BEGIN
# IMMEDIATE), and tasks that queue for it here wake the moment it is free, where SQLite's own
# busy handler would have them sleep and poll, up to 100 ms at a time.
_WriterTurns = tuple[asyncio.AbstractEventLoop, asyncio.Lock]
_sqlite_writers: "weakref.WeakKeyDictionary[AsyncEngine, _WriterTurns]" = (
    weakref.WeakKeyDictionary()
)


@asynccontextmanager
async def _sqlite_writer_turn(engine: AsyncEngine) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    known = _sqlite_writers.get(engine)
    if known is None or known[0] is not loop:  # an asyncio lock serves one event loop
        known = _sqlite_writers[engine] = (loop, asyncio.Lock())
    lock = known[1]
    acquired = False
    try:
        async with asyncio.timeout(SQLITE_BUSY_TIMEOUT_MILLISECONDS / 1000):
            acquired = await lock.acquire()
    except TimeoutError:
        # One transaction held it that long: go on without a turn and let SQLite's busy
        # timeout decide, as it does between processes.
        pass
    try:
        yield
    finally:
        if acquired:
            lock.release()


async def serialise_first_start(session: AsyncSession) -> None:
    """Make nodes that start together on one PostgreSQL take their first-start steps (the key
    check, the first administrator) one at a time, until this transaction ends. SQLite
    already serialises every writing transaction."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _FIRST_START_LOCK})
