"""The bodies every benchmark sends: JSON of the product's webhook shape, about 1 KiB each."""

import base64
import hashlib
import hmac
import json
import time
from typing import Any

BODY_BYTES = 1024
EVENT_TYPE = "bench.event"
# The length of the timestamp the product writes into a webhook body, e.g.
# "2026-12-03T19:43:29.123456Z"; the benchmark's own bodies use one of the same length.
_TIMESTAMP = "2026-12-03T00:00:00.000000Z"


def event_data(index: int, body_bytes: int = BODY_BYTES) -> dict[str, Any]:
    """Event data whose webhook body (type, timestamp, data) comes to `body_bytes`."""
    data: dict[str, Any] = {"order": index, "note": ""}
    padding = body_bytes - len(webhook_body(data))
    data["note"] = "x" * max(padding, 0)
    return data


def webhook_body(data: dict[str, Any]) -> bytes:
    """The body as the product's worker writes it for an event of this data."""
    payload = {"type": EVENT_TYPE, "timestamp": _TIMESTAMP, "data": data}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def standard_webhook_headers(key: bytes, message_id: str, body: bytes) -> dict[str, str]:
    """Headers of one signed request, built afresh for it as any sender must."""
    timestamp = int(time.time())
    signed_content = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    signature = base64.b64encode(hmac.digest(key, signed_content, hashlib.sha256)).decode()
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{signature}",
    }
