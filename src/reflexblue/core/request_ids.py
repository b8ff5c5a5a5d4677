"""The id of the HTTP request being handled, for log lines and for the events it publishes.

The web application binds it for the length of each request; code that runs on behalf of a
request (a service, a log call) reads it without having it passed down.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ulid import ULID

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_MAX_LENGTH = 64

_current: ContextVar[str | None] = ContextVar("reflexblue_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request this code runs for, or None outside a request."""
    return _current.get()


@contextmanager
def bound_request_id(request_id: str) -> Iterator[None]:
    token = _current.set(request_id)
    try:
        yield
    finally:
        _current.reset(token)


def accept_request_id(given: str | None) -> str:
    """The caller's id when it is fit to be logged and stored, else a new one.

    Fit means 1 to 64 visible ASCII characters: no spaces or control characters that could
    forge or split a log line, and short enough for the events table's column.
    """
    if given and len(given) <= REQUEST_ID_MAX_LENGTH and all("!" <= c <= "~" for c in given):
        return given
    return new_request_id()


def new_request_id() -> str:
    return str(ULID())
