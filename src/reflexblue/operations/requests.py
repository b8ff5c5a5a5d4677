"""Every HTTP request gets an id, one access log line and its place in the metrics.

A pure ASGI middleware rather than Starlette's BaseHTTPMiddleware: it only watches the
messages go by, so streamed answers stay streamed and the lifespan passes untouched.
"""

import logging
import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reflexblue.core.request_ids import REQUEST_ID_HEADER, accept_request_id, bound_request_id
from reflexblue.operations.metrics import UNMATCHED_ROUTE, observe_request

access_logger = logging.getLogger("reflexblue.access")

SERVER_ERROR_STATUS = 500
# Where a middleware that answers before routing names the route a request is counted under.
ROUTE_LABEL_KEY = "reflexblue.route_label"


class RequestTracking:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        # The routers below write the matched route and their mount's prefix into this scope.
        application_root = scope.get("root_path", "")
        began = time.perf_counter()
        answer = _Answer(send, request_id)
        with bound_request_id(request_id):
            try:
                await self.app(scope, receive, answer.send)
            except Exception:
                await answer.fail_if_unanswered(scope, receive)
                raise
            finally:
                seconds = time.perf_counter() - began
                route = route_template(scope, application_root)
                observe_request(route, scope["method"], answer.status, seconds)
                # The flood gate's refusals are counted, not logged one by one: a flood would
                # write as many lines. The limits log when they start refusing an address.
                if ROUTE_LABEL_KEY not in scope:
                    _log_access(scope["method"], route, answer.status, seconds, request_id)


class _Answer:
    """Passes the response on with the request id among its headers, noting its status."""

    def __init__(self, send: Send, request_id: str) -> None:
        self._send = send
        self._request_id = request_id
        self.started = False
        self.status = SERVER_ERROR_STATUS

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            MutableHeaders(scope=message)[REQUEST_ID_HEADER] = self._request_id
        await self._send(message)

    async def fail_if_unanswered(self, scope: Scope, receive: Receive) -> None:
        # The server's own error page for an exception no handler took would be sent around
        # this middleware, without the id the operator needs to find the logged traceback.
        if not self.started:
            response = PlainTextResponse("Internal Server Error", SERVER_ERROR_STATUS)
            await response(scope, receive, self.send)


def route_template(scope: Scope, application_root: str) -> str:
    """The matched route as written in the code (`/webhooks/{webhook_id}`), never the path
    itself: paths hold ids, and a label value per id would grow without end.

    Read from what the routers leave in the scope: the route they chose (FastAPI's routes),
    or else the endpoint (plain routes and mounted applications such as static files).
    """
    label = scope.get(ROUTE_LABEL_KEY)
    if isinstance(label, str):
        return label
    prefix = str(scope.get("root_path", "")).removeprefix(application_root)
    route = scope.get("route")
    if isinstance(route, BaseRoute) and not isinstance(route, Mount):
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return prefix + path
    endpoint = scope.get("endpoint")
    # No endpoint, or a mounted application whose own routes matched nothing: a 404.
    if endpoint is None or hasattr(endpoint, "routes"):
        return UNMATCHED_ROUTE
    return prefix + (_plain_route_path(scope.get("app"), endpoint) or "/{path}")


def _plain_route_path(application: object, endpoint: object) -> str | None:
    for route in getattr(application, "routes", ()):
        if isinstance(route, Route) and route.endpoint is endpoint:
            return route.path
    return None


def _log_access(method: str, route: str, status: int, seconds: float, request_id: str) -> None:
    access_logger.info(
        "%s %s answered %s",
        method,
        route,
        status,
        extra={
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            "request_id": request_id,
        },
    )
