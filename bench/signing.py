"""The signing micro-benchmark: the product's `sign` on a 1 KiB body against a bare HMAC."""

import base64
import hashlib
import hmac
import timeit
from dataclasses import dataclass

from bench.payload import event_data, webhook_body
from reflexblue.core.crypto import SECRET_PREFIX, new_webhook_secret
from reflexblue.webhooks.signing import sign

MESSAGE_ID = "evt_01JBENCHMARK0000000000000"
TIMESTAMP = 1_796_000_000


@dataclass(frozen=True)
class SigningRound:
    product_microseconds: float
    bare_microseconds: float


def run_signing_round(loops: int) -> SigningRound:
    """Microseconds per call of each, the bare one first."""
    secret = new_webhook_secret()
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    body = webhook_body(event_data(0))

    def bare() -> bytes:
        content = b"%s.%d.%s" % (MESSAGE_ID.encode(), TIMESTAMP, body)
        return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest())

    def product() -> str:
        return sign([secret], MESSAGE_ID, TIMESTAMP, body)

    bare_seconds = timeit.timeit(bare, number=loops)
    product_seconds = timeit.timeit(product, number=loops)
    return SigningRound(product_seconds / loops * 1e6, bare_seconds / loops * 1e6)
