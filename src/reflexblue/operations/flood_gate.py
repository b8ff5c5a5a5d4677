"""Requests refused before routing: those from client addresses a limit is already refusing.

A refusal made by the application proper costs routing, every middleware, the dependencies,
and for a sign-in the reading of the form: a flood of requests from a refused address would
still take most of the process. The gate asks each feature's check, from the path, headers
and client address alone, whether the request would be refused anyway, and if so sends that
answer at once. Every other request passes on untouched.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from reflexblue.operations.requests import ROUTE_LABEL_KEY

# The address of a request that came without one (a Unix socket, a test transport).
UNKNOWN_ADDRESS = "unknown"


@dataclass(frozen=True)
class Refused:
    """A request the gate answers itself: the route it is counted under, and the answer."""

    route: str
    response: Response


# A feature's check: the answer for a request that its limits refuse, None for any other.
Refusal = Callable[[Scope], Refused | None]


class FloodGate:
    """Pure ASGI middleware that sends a feature's refusal without calling the application."""

    def __init__(self, app: ASGIApp, refusals: Sequence[Refusal]) -> None:
        self.app = app
        self._refusals = tuple(refusals)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for refusal in self._refusals:
                refused = refusal(scope)
                if refused is not None:
                    scope[ROUTE_LABEL_KEY] = refused.route
                    await refused.response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def client_address(scope: Scope) -> str:
    """The address of the connection's other end, as the server saw it. Headers such as
    X-Forwarded-For are not read: any client can write them."""
    client = scope.get("client")
    return str(client[0]) if client else UNKNOWN_ADDRESS
