"""Standard Webhooks signatures: `v1,` + base64 HMAC-SHA256 of "id.timestamp.body"."""

import base64
import hmac
from binascii import b2a_base64
from functools import lru_cache

from reflexblue.core.crypto import SECRET_PREFIX

SIGNATURE_VERSION = "v1"
SIGNATURE_PREFIX = SIGNATURE_VERSION + ","
# Named rather than passed as `hashlib.sha256`: with a name, `hmac.digest` makes the whole
# HMAC in one OpenSSL call, which is most of what signing costs.
_DIGEST = "sha256"


@lru_cache(maxsize=4096)
def _signing_key(secret: str) -> bytes:
    # Decoding once per secret keeps the per-request cost to the HMAC alone.
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secrets: list[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: one signature per valid secret, space-separated."""
    signed_content = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    if len(secrets) == 1:  # every request but those of a rotation's grace period
        return _signature(secrets[0], signed_content)
    return " ".join([_signature(secret, signed_content) for secret in secrets])


def _signature(secret: str, signed_content: bytes) -> str:
    digest = hmac.digest(_signing_key(secret), signed_content, _DIGEST)
    return SIGNATURE_PREFIX + b2a_base64(digest, newline=False).decode()
