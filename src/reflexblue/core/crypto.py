"""Secrets at rest (AES-GCM under the master key), token hashing and secret generation."""

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reflexblue.core.errors import MasterKeyError

MASTER_KEY_BYTES = 32
NONCE_BYTES = 12
SECRET_BYTES = 32
SECRET_PREFIX = "whsec_"  # noqa: S105 - a public prefix, not a secret
# A fixed plaintext sealed once per database, so a wrong key is noticed at start-up
# rather than when the first webhook is signed.
_KEY_CHECK_PLAINTEXT = b"reflexblue master key check v1"
_KEY_CHECK_CONTEXT = "master-key-check"


class SecretBox:
    """Seals and opens small secrets with AES-GCM; the context binds a ciphertext to its row."""

    def __init__(self, key: bytes) -> None:
        if len(key) != MASTER_KEY_BYTES:
            raise MasterKeyError(f"the master key must be {MASTER_KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, ciphertext, context.encode())
        except InvalidTag:
            raise MasterKeyError("a stored secret does not open with this master key") from None

    def make_key_check(self) -> bytes:
        return self.seal(_KEY_CHECK_PLAINTEXT, _KEY_CHECK_CONTEXT)

    def verify_key_check(self, sealed: bytes) -> None:
        try:
            plaintext = self.open(sealed, _KEY_CHECK_CONTEXT)
        except MasterKeyError:
            raise MasterKeyError(
                "the master key does not match the one this database was created with; "
                "set REFLEXBLUE_MASTER_KEY (or restore the data dir's master.key) to the "
                "original key"
            ) from None
        if plaintext != _KEY_CHECK_PLAINTEXT:
            raise MasterKeyError("the master key check holds an unexpected value")


def decode_master_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError("REFLEXBLUE_MASTER_KEY is not valid base64") from None
    if len(key) != MASTER_KEY_BYTES:
        raise MasterKeyError(
            f"REFLEXBLUE_MASTER_KEY must be the base64 of {MASTER_KEY_BYTES} bytes, not {len(key)}"
        )
    return key


def read_master_key_file(path: Path) -> bytes:
    try:
        return decode_master_key(path.read_text())
    except MasterKeyError as error:
        raise MasterKeyError(f"{path}: {error}") from None


def write_new_master_key_file(path: Path) -> bytes:
    """Create a fresh key file readable by its owner only; never overwrite one."""
    key = secrets.token_bytes(MASTER_KEY_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(base64.b64encode(key).decode() + "\n")
    return key


def new_webhook_secret() -> str:
    """A signing secret in the Standard Webhooks form: `whsec_` and base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_token(prefix: str) -> str:
    """A bearer credential such as an API key: a readable prefix and 32 random bytes."""
    return prefix + secrets.token_urlsafe(SECRET_BYTES)


def hash_token(token: str) -> str:
    """Tokens carry 256 random bits, so one SHA-256 is enough; a slow hash would add nothing."""
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_equal(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())
