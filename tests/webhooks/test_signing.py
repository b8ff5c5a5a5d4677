import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from reflexblue.core.crypto import new_webhook_secret
from reflexblue.webhooks.signing import sign

BODY = b'{"type":"order.created","timestamp":"2026-12-03T10:00:00Z","data":{"id":7}}'


def _headers(message_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_signature_verifies_with_the_standard_webhooks_library() -> None:
    secret, now = new_webhook_secret(), int(time.time())

    signature = sign([secret], "evt_1", now, BODY)

    assert Webhook(secret).verify(BODY, _headers("evt_1", now, signature)) == {
        "type": "order.created",
        "timestamp": "2026-12-03T10:00:00Z",
        "data": {"id": 7},
    }


def test_each_secret_of_a_rotation_verifies_the_same_request() -> None:
    current, previous, now = new_webhook_secret(), new_webhook_secret(), int(time.time())

    signature = sign([current, previous], "evt_2", now, BODY)

    assert len(signature.split(" ")) == 2
    for secret in (current, previous):
        Webhook(secret).verify(BODY, _headers("evt_2", now, signature))


@pytest.mark.parametrize("tampered", ["body", "id", "timestamp"])
def test_a_changed_request_fails_verification(tampered: str) -> None:
    secret, now = new_webhook_secret(), int(time.time())
    signature = sign([secret], "evt_3", now, BODY)
    body, message_id, timestamp = BODY, "evt_3", now
    if tampered == "body":
        body = BODY.replace(b"7", b"8")
    elif tampered == "id":
        message_id = "evt_4"
    else:
        timestamp = now + 1

    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, _headers(message_id, timestamp, signature))


def test_another_secret_does_not_verify() -> None:
    now = int(time.time())

    signature = sign([new_webhook_secret()], "evt_5", now, BODY)

    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(BODY, _headers("evt_5", now, signature))
