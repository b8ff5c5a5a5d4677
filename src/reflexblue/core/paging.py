"""Keyset (cursor) paging: pages stay correct while rows come and go between requests."""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from reflexblue.core.errors import FieldError, ValidationFailed

T = TypeVar("T")
Direction = Literal["next", "prev"]
Order = Literal["asc", "desc"]


@dataclass(frozen=True)
class Cursor:
    """The sort key of the row a page ended (or started) at, and which way to go from it."""

    sort: str
    order: Order
    value: str | None
    id: str
    direction: Direction = "next"

    def encode(self) -> str:
        raw = json.dumps([self.sort, self.order, self.value, self.id, self.direction])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, *, sort: str, order: Order) -> "Cursor":
        try:
            padded = text + "=" * (-len(text) % 4)
            parts = json.loads(base64.urlsafe_b64decode(padded.encode()))
            cursor = cls(*parts)
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
            raise _bad_cursor("The cursor is not one this API handed out.") from None
        if not cursor._well_formed():
            raise _bad_cursor("The cursor is not one this API handed out.")
        if (cursor.sort, cursor.order) != (sort, order):
            raise _bad_cursor("The cursor belongs to another sort order; start again without it.")
        return cursor

    def _well_formed(self) -> bool:
        # The cursor comes back from the client, so its parts reach the database only when
        # they have the types and characters a cursor of ours can hold.
        texts = [self.sort, self.order, self.id] + ([] if self.value is None else [self.value])
        return (
            self.direction in ("next", "prev")
            and all(isinstance(text, str) for text in texts)
            and not any(_unstorable(text) for text in texts)
        )


def _unstorable(text: str) -> bool:
    return "\x00" in text or any("\ud800" <= char <= "\udfff" for char in text)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    prev_cursor: str | None


def cursor_value(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _bad_cursor(message: str) -> ValidationFailed:
    return ValidationFailed(message, [FieldError("cursor", message)])
