"""A webhook receiver that misbehaves on purpose, one behaviour per path, for fault tests.

It speaks raw TCP rather than HTTP through a framework, since most of what it does (a status
line sent one byte a second, a reset, bytes that are not HTTP) no HTTP server would do. It
counts what it does, so that a test can see an attempt still in flight and how far a 100 MB
answer got before the sender stopped reading it.

The benchmark in bench/hostile.py runs a receiver of the same kind as a separate process; this
one runs in the test's own event loop and reports to it.
"""

import asyncio
import contextlib
import socket
import struct
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum

from tests.support.postgres import free_port

TRICKLE_INTERVAL_SECONDS = 1.0
HUGE_BODY_BYTES = 100 * 1024 * 1024
# The start of every chunk of the huge body is text a test can recognise; the rest is bytes no
# text column takes as they are (NUL, and bytes that are not UTF-8).
HUGE_MARKER = b"HUGE-BODY "
_HUGE_CHUNK = (HUGE_MARKER + bytes(range(256)) * 255)[:65536]
_HEAD_LIMIT_BYTES = 64 * 1024
_TRICKLED_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
_NOT_HTTP = b"SSH-2.0-OpenSSH_9.2\r\n\x00\xff\xfe not a status line \r\n\r\n"
_READY = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Behaviour(StrEnum):
    """What the receiver does with a request to each path."""

    HANG = "/hang"  # reads the request, never answers, keeps the connection open
    TRICKLE = "/trickle"  # sends its answer one byte a second, from the status line on
    HUGE = "/huge"  # answers 200 with a 100 MB body, as fast as the sender reads it
    RESET = "/reset"  # resets the connection (RST) instead of answering
    INVALID = "/invalid"  # answers with bytes that are not HTTP, then closes


@dataclass
class HostileReceiver:
    url: str
    # Requests read so far, connections held open now and the most held at once, by path.
    arrived: Counter[str] = field(default_factory=Counter)
    open_now: Counter[str] = field(default_factory=Counter)
    most_open: Counter[str] = field(default_factory=Counter)
    # For each huge answer that ended, the bytes of its body that went out.
    huge_bytes_sent: list[int] = field(default_factory=list)

    def url_of(self, behaviour: Behaviour) -> str:
        return f"{self.url}{behaviour.value}"


Answer = Callable[[HostileReceiver, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _hang(_: HostileReceiver, reader: asyncio.StreamReader, __: asyncio.StreamWriter) -> None:
    await reader.read()  # returns only when the sender gives up and closes


async def _trickle(
    _: HostileReceiver, __: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    for byte in _TRICKLED_ANSWER:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(TRICKLE_INTERVAL_SECONDS)


async def _huge(
    receiver: HostileReceiver, _: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % HUGE_BODY_BYTES)
    sent = 0
    try:
        while sent < HUGE_BODY_BYTES:
            chunk = _HUGE_CHUNK[: HUGE_BODY_BYTES - sent]
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
    finally:
        receiver.huge_bytes_sent.append(sent)


async def _reset(
    _: HostileReceiver, __: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    connection = writer.get_extra_info("socket")
    # Lingering for zero seconds makes closing the socket send RST instead of FIN.
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _invalid(
    _: HostileReceiver, __: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.write(_NOT_HTTP)
    await writer.drain()


_ANSWERS: dict[str, Answer] = {
    Behaviour.HANG.value: _hang,
    Behaviour.TRICKLE.value: _trickle,
    Behaviour.HUGE.value: _huge,
    Behaviour.RESET.value: _reset,
    Behaviour.INVALID.value: _invalid,
}


async def _read_request_path(reader: asyncio.StreamReader) -> str:
    """Read one request's head and body; its path."""
    head = await reader.readuntil(b"\r\n\r\n")
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    length = 0
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return parts[1] if len(parts) > 1 else "/"


@asynccontextmanager
async def running_hostile_receiver() -> AsyncIterator[HostileReceiver]:
    """Listen on a free loopback port until the block ends, then drop every connection."""
    port = free_port()
    receiver = HostileReceiver(url=f"http://127.0.0.1:{port}")
    handlers: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        handlers.add(handler)
        try:
            await _serve_connection(receiver, reader, writer)
        finally:
            handlers.discard(handler)

    server = await asyncio.start_server(serve, "127.0.0.1", port, limit=_HEAD_LIMIT_BYTES)
    try:
        yield receiver
    finally:
        server.close()
        for handler in list(handlers):
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def _serve_connection(
    receiver: HostileReceiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        path = await _read_request_path(reader)
        answer = _ANSWERS.get(path)
        if answer is None:
            writer.write(_READY)
            return
        receiver.arrived[path] += 1
        receiver.open_now[path] += 1
        receiver.most_open[path] = max(receiver.most_open[path], receiver.open_now[path])
        try:
            await answer(receiver, reader, writer)
        finally:
            receiver.open_now[path] -= 1
    except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass  # the sender gave up on us, which is what this receiver is for
    finally:
        with contextlib.suppress(OSError):
            writer.close()
