"""The hostile receiver process: a raw TCP server that misbehaves on purpose, by path.

Run as `python -m bench.hostile_receiver PORT`. Each POST is read whole, then answered by the
path's behaviour:
- `/hang`: never answers; the connection stays open until the sender gives up.
- `/trickle`: promises a 1 MB answer and sends one byte every half second.
- `/huge`: sends a 100 MB answer as fast as the sender takes it.
- `/reset`: resets the connection (RST) without a word.
- `/invalid`: answers with bytes that are not HTTP, then closes.
`GET /ready` answers 200, so the harness can tell it is up.
"""

import asyncio
import contextlib
import socket
import struct
import sys

import uvloop

TRICKLE_INTERVAL_SECONDS = 0.5
HUGE_BYTES = 100 * 1024 * 1024
CHUNK = b"\0" * 65536
READY = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
HEADERS_LIMIT = 65536


async def _read_request(reader: asyncio.StreamReader) -> str:
    """The request's path, after reading its headers and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > HEADERS_LIMIT:
        raise ValueError("headers too long")
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return path


async def _hang(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
    await reader.read()  # until the sender closes


async def _trickle(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
    while True:
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(TRICKLE_INTERVAL_SECONDS)


async def _huge(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % HUGE_BYTES)
    for _chunk in range(HUGE_BYTES // len(CHUNK)):
        writer.write(CHUNK)
        await writer.drain()


async def _reset(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # A zero linger turns the close into a reset.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _invalid(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"THIS IS NOT HTTP\r\n\x00\x01\x02\r\n\r\n")
    await writer.drain()


BEHAVIOURS = {
    "/hang": _hang,
    "/trickle": _trickle,
    "/huge": _huge,
    "/reset": _reset,
    "/invalid": _invalid,
}


async def _serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        path = await _read_request(reader)
        behaviour = BEHAVIOURS.get(path)
        if behaviour is None:
            writer.write(READY)
            await writer.drain()
        else:
            await behaviour(reader, writer)
    except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass  # the sender gave up, which is what a hostile receiver is for
    finally:
        with contextlib.suppress(OSError):
            writer.close()


async def serve(port: int) -> None:
    server = await asyncio.start_server(_serve_one, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
