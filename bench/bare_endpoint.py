"""The ingest baseline: a bare Starlette POST endpoint, served by uvicorn with the settings
`reflexblue serve` uses. Run as `python -m bench.bare_endpoint PORT [ROWS_FILE]`.

It reads and parses the JSON body and answers 202 with a small JSON document, which is the
least any publishing endpoint does; authentication, validation and storage are what the product
adds on top. With a JSON file of rows, `GET /rows` answers them from memory: the least a list
page does.
"""

import itertools
import json
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_numbers = itertools.count()
_rows: list[object] = []


async def _publish(request: Request) -> Response:
    event = await request.json()
    return JSONResponse({"id": f"evt_{next(_numbers)}", "type": event["type"]}, status_code=202)


async def _list_rows(_: Request) -> Response:
    return JSONResponse({"items": _rows, "next_cursor": None, "prev_cursor": None})


async def _healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/api/management/events", _publish, methods=["POST"]),
        Route("/rows", _list_rows, methods=["GET"]),
        Route("/healthz", _healthz, methods=["GET"]),
    ]
)

if __name__ == "__main__":
    if len(sys.argv) > 2:
        _rows.extend(json.loads(Path(sys.argv[2]).read_text()))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_config=None,
        proxy_headers=False,
        access_log=False,
    )
