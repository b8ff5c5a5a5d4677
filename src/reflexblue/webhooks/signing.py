"""Standard Webhooks signatures: `v1,` + base64 HMAC-SHA256 of "id.timestamp.body"."""

import base64
import hashlib
import hmac
from functools import lru_cache

from reflexblue.core.crypto import SECRET_PREFIX

SIGNATURE_VERSION = "v1"


@lru_cache(maxsize=4096)
def _signing_key(secret: str) -> bytes:
    # Decoding once per secret keeps the per-request cost to the HMAC alone.
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secrets: list[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: one signature per valid secret, space-separated."""
    signed_content = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    return " ".join(
        f"{SIGNATURE_VERSION},"
        + base64.b64encode(
            hmac.digest(_signing_key(secret), signed_content, hashlib.sha256)
        ).decode()
        for secret in secrets
    )
