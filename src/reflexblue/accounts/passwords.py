"""Password hashing with argon2id."""

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


@cache
def _unknown_user_hash() -> str:
    """Checked against when the user does not exist, so that a wrong name costs as much time as
    a wrong password and response times do not tell which names exist. Made on first use, so
    that commands which check no password do not pay for it."""
    return _hasher.hash("no user has this password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    checked_hash = password_hash or _unknown_user_hash()
    try:
        return _hasher.verify(checked_hash, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
