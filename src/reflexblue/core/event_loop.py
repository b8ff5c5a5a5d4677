"""Which event loop a long-running process runs on."""

import asyncio
from collections.abc import Callable

EventLoopFactory = Callable[[], asyncio.AbstractEventLoop]


def fast_event_loop_factory() -> EventLoopFactory | None:
    """uvloop's loop where it is installed (every platform but Windows), else None for the
    standard one. The worker spends a large share of its time in the loop's socket and
    callback handling, which uvloop does in C; `serve` gets it from uvicorn already."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - not installed on Windows
        return None
    return uvloop.new_event_loop
