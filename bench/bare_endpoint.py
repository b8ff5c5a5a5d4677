"""The ingest baseline: a bare Starlette POST endpoint, served by uvicorn with the settings
`reflexblue serve` uses. Run as `python -m bench.bare_endpoint PORT`.

It reads and parses the JSON body and answers 202 with a small JSON document, which is the
least any publishing endpoint does; authentication, validation and storage are what the product
adds on top.
"""

import itertools
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_numbers = itertools.count()


async def _publish(request: Request) -> Response:
    event = await request.json()
    return JSONResponse({"id": f"evt_{next(_numbers)}", "type": event["type"]}, status_code=202)


async def _healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/api/management/events", _publish, methods=["POST"]),
        Route("/healthz", _healthz, methods=["GET"]),
    ]
)

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_config=None,
        proxy_headers=False,
        access_log=False,
    )
