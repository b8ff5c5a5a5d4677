"""SQLite calls made on the event loop's own thread.

aiosqlite hands every call (cursor, execute, fetch, commit) to a thread of its own and back.
SQLite answers this product's statements in microseconds, far less than the two thread
wake-ups of each hand-off, so a transaction of a few statements spent most of its time, and
most of its CPU, passing work between threads: about 2 ms against 0.7 ms inline, measured on
the 2-core machine of docs/benchmarks.md.

So the connection keeps aiosqlite's interface, which SQLAlchemy's aiosqlite dialect drives,
and runs each call at once instead. The price is that a call blocks the event loop while it
runs. Within one process nothing waits on SQLite's lock (core.database queues writers on an
asyncio lock first); a call waits only when another process holds the write lock, for as long
as that process's transaction lasts, a few milliseconds for every transaction this product
makes.
"""

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import aiosqlite

# Rows fetched per step when iterating a cursor; aiosqlite's own default.
_ITERATION_CHUNK = 64


class _RunAtOnce:
    """Stands in for the queue aiosqlite feeds its thread: each (future, call) put on it is
    run there and then. SQLAlchemy's dialect puts some calls on that queue directly."""

    def put_nowait(self, item: tuple["asyncio.Future[Any] | None", Callable[[], Any]]) -> None:
        future, call = item
        try:
            result = call()
        except BaseException as error:
            if future is not None and not future.done():
                future.set_exception(error)
            return
        if future is not None and not future.done():
            future.set_result(result)


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection without its thread: every call of aiosqlite's connection and
    cursor goes through `_execute` or the queue, and both simply call."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        self._tx = _RunAtOnce()  # type: ignore[assignment]

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._open().__await__()

    async def _open(self) -> aiosqlite.Connection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        self.stop()


def inline_connector(
    path: str, busy_timeout_seconds: float
) -> Callable[[], Awaitable[InlineConnection]]:
    """What `create_async_engine(async_creator=…)` calls for each new pooled connection."""

    def connect() -> sqlite3.Connection:
        # Autocommit at the driver: core.database issues BEGIN IMMEDIATE itself. The pool may
        # close a connection from the garbage collector's thread, hence check_same_thread.
        return sqlite3.connect(
            path, timeout=busy_timeout_seconds, isolation_level=None, check_same_thread=False
        )

    async def create() -> InlineConnection:
        connection = InlineConnection(connect, _ITERATION_CHUNK)
        await connection._open()
        return connection

    return create
