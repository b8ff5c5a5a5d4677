"""One set of input rules for console, APIs and CLI, and one translation of their failures."""

import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from reflexblue.core.errors import FieldError, ValidationFailed

ModelT = TypeVar("ModelT", bound=BaseModel)

# Line breaks and tabs are allowed in long free text only.
_MULTILINE_ALLOWED = frozenset("\n\r\t")
# Free-form JSON (event data, JSON Schemas) nests at most this deep: far more than any payload
# needs, and far from the depth at which encoding it or checking it against a schema would
# exhaust the interpreter's stack.
JSON_MAX_DEPTH = 32
_RFC3339_START = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def text_rule(*, max_length: int, required: bool, multiline: bool = False) -> Callable[[str], str]:
    """Trim, then check presence, length and characters, in the order a person fixes them."""

    def check(value: str) -> str:
        value = value.strip()
        if required and not value:
            raise PydanticCustomError("blank", "This field is required and may not be blank.")
        if len(value) > max_length:
            raise PydanticCustomError(
                "too_long",
                "Use at most {max_length} characters (this has {length}).",
                {"max_length": max_length, "length": len(value)},
            )
        allowed = _MULTILINE_ALLOWED if multiline else frozenset()
        if any(unicodedata.category(char) == "Cc" and char not in allowed for char in value):
            raise PydanticCustomError(
                "control_character", "Control characters (such as NUL) are not allowed."
            )
        # JSON can smuggle in half of a surrogate pair (`"\ud800"`); it is no character, and
        # no database can store it as UTF-8.
        if any(unicodedata.category(char) == "Cs" for char in value):
            raise PydanticCustomError(
                "surrogate", "Contains an incomplete character (a lone UTF-16 surrogate)."
            )
        return value

    return check


def identifier_rule(value: str) -> str:
    """Only ASCII letters, digits and `_`, as the Export ID rule says."""
    if not value.isascii() or not all(char.isalnum() or char == "_" for char in value):
        raise PydanticCustomError(
            "identifier_characters",
            "Use only letters (A–Z, a–z), digits (0–9) and the underscore (_).",
        )
    return value


def unstorable(text: str) -> bool:
    """No stored name or id holds a control character or a lone surrogate, and PostgreSQL
    refuses NUL in a query outright, so such text can only be refused, never looked up."""
    return any(unicodedata.category(char) in ("Cc", "Cs") for char in text)


def json_value_rule(value: Any) -> Any:
    """Free-form JSON that every database can store and every receiver can parse: nested at
    most JSON_MAX_DEPTH levels, finite numbers only, and no lone surrogate in any string."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list) and depth > JSON_MAX_DEPTH:
            raise PydanticCustomError(
                "json_depth",
                "Nest objects and arrays at most {max_depth} levels deep.",
                {"max_depth": JSON_MAX_DEPTH},
            )
        if isinstance(item, dict):
            pending.extend((key, depth) for key in item)
            pending.extend((each, depth + 1) for each in item.values())
        elif isinstance(item, list):
            pending.extend((each, depth + 1) for each in item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise PydanticCustomError("json_number", "Numbers must be finite.")
        elif isinstance(item, str) and _has_lone_surrogate(item):
            raise PydanticCustomError(
                "surrogate", "Contains an incomplete character (a lone UTF-16 surrogate)."
            )
    return value


def _has_lone_surrogate(text: str) -> bool:
    # A surrogate is the one code point UTF-8 cannot encode: asking the codec (in C) is much
    # faster than looking at each character in Python.
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _timestamp_text(value: object) -> object:
    # Lax parsing would take a number (or a string of digits) for Unix seconds; the APIs
    # promise RFC 3339, date and time.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339_START.match(value):
        raise PydanticCustomError(
            "timestamp_type", "Use an RFC 3339 timestamp such as 2026-12-01T08:00:00Z."
        )
    return value


def _in_utc(value: datetime) -> datetime:
    # 9999-12-31T23:59:59-23:59 parses, but lies beyond the last instant a datetime holds.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError("timestamp_range", "This time is out of range.") from None


Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp_text), AfterValidator(_in_utc)]


def reject_null(value: object) -> object:
    """For partial updates: a field may be left out, but not set to null."""
    if value is None:
        raise PydanticCustomError("null", "May not be null; leave the field out to keep its value.")
    return value


def parse(model: type[ModelT], data: Mapping[str, Any]) -> ModelT:
    """Validate input from any door; failures become ValidationFailed with per-field messages."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_failed(error.errors()) from None


def validation_failed(details: list[ErrorDetails] | Any) -> ValidationFailed:
    errors = [FieldError(field=_field_name(detail), message=_message(detail)) for detail in details]
    fields = ", ".join(sorted({error.field for error in errors}))
    return ValidationFailed(f"Some fields are not valid: {fields}.", errors)


def _field_name(detail: Mapping[str, Any]) -> str:
    location = [str(part) for part in detail.get("loc", ()) if part not in ("body", "query")]
    return ".".join(location) or "body"


_MESSAGES = {
    "missing": "This field is required.",
    "extra_forbidden": "This field is not known; remove it.",
    "string_type": "Must be a string.",
    "string_too_short": "Use at least {min_length} characters.",
    "string_too_long": "Use at most {max_length} characters.",
    "int_type": "Must be a whole number.",
    "int_parsing": "Must be a whole number.",
    "bool_type": "Must be true or false.",
    "model_type": "Must be a JSON object.",
    "model_attributes_type": "Must be a JSON object.",
    "dict_type": "Must be a JSON object.",
    "list_type": "Must be a JSON array.",
    "json_invalid": "The body is not valid JSON.",
    "literal_error": "Must be one of: {expected}.",
    "enum": "Must be one of: {expected}.",
    "greater_than_equal": "Must be at least {ge}.",
    "less_than_equal": "Must be at most {le}.",
}


def _message(detail: Mapping[str, Any]) -> str:
    template = _MESSAGES.get(detail.get("type", ""))
    if template is None:
        return str(detail.get("msg", "Not valid."))
    try:
        return template.format(**(detail.get("ctx") or {}))
    except (KeyError, IndexError):
        return template
