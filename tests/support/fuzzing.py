"""Generated requests, as the fuzzing tests send them."""

from typing import Any

from schemathesis import Case

# Headers that frame the HTTP message itself. uvicorn's parser answers a malformed one (an
# empty `Transfer-Encoding`, say) with its own plain-text 400 before any application code
# runs, while the OpenAPI documents describe the applications: generated values for these
# headers test the HTTP server, not the API, and are left out.
FRAMING_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "host", "expect", "upgrade", "te"}
)


def without_framing_headers(case: Case[Any]) -> Case[Any]:
    if case.headers:
        for name in [name for name in case.headers if name.lower() in FRAMING_HEADERS]:
            del case.headers[name]
    return case
