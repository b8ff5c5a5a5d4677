"""Request bodies read as strict JSON (RFC 8259): UTF-8 without a byte order mark, each name
once per object, and only numbers a double can hold. Python's own parser is more lenient: it
guesses UTF-16, keeps the last of repeated names and reads NaN and 1e999 as numbers no
database column or receiver can take back."""

import json
import math
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

_BYTE_ORDER_MARK = b"\xef\xbb\xbf"


class _Refusal(ValueError):
    """Valid JSON syntax, but not JSON this API accepts."""


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """A route whose JSON body is read by `parse_json`; FastAPI answers its refusals with 400."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler


def parse_json(body: bytes) -> Any:
    """The JSON value of the body; JSONDecodeError says what is wrong with it."""
    if body.startswith(_BYTE_ORDER_MARK):
        raise json.JSONDecodeError("it begins with a byte order mark", "", 0)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise json.JSONDecodeError(f"byte {error.start} is not UTF-8", "", 0) from None
    try:
        return json.loads(
            text,
            object_pairs_hook=_unique_names,
            parse_constant=_no_constant,
            parse_float=_finite_float,
        )
    except json.JSONDecodeError:
        raise
    except _Refusal as refusal:
        raise json.JSONDecodeError(str(refusal), text, 0) from None
    except RecursionError:
        raise json.JSONDecodeError("it nests arrays or objects too deeply", text, 0) from None
    except ValueError:
        # The only other refusal: an integer of more digits than Python converts.
        raise json.JSONDecodeError("a number has too many digits", text, 0) from None


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        counts = Counter(name for name, _ in pairs)
        repeated = next(name for name, count in counts.items() if count > 1)
        raise _Refusal(f"the name {repeated!r} appears more than once in one object")
    return found


def _no_constant(name: str) -> Any:
    raise _Refusal(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _Refusal(f"the number {text[:20]} is beyond the range of a double")
    return number
