"""The shared input rules, tried with generated values: each accepts exactly what it promises,
and each refusal names the field in words."""

import json
import math
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import AfterValidator, BaseModel, Field

from reflexblue.core.errors import ValidationFailed
from reflexblue.core.validation import (
    JSON_MAX_DEPTH,
    Timestamp,
    identifier_rule,
    json_value_rule,
    parse,
    text_rule,
    unstorable,
)

FAST = settings(max_examples=100, deadline=None)
MAX_LENGTH = 30


class Note(BaseModel):
    title: Annotated[str, AfterValidator(text_rule(max_length=MAX_LENGTH, required=True))]
    body: Annotated[
        str, AfterValidator(text_rule(max_length=MAX_LENGTH, required=False, multiline=True))
    ] = ""


class Code(BaseModel):
    code: Annotated[str, AfterValidator(identifier_rule)]


class Payload(BaseModel):
    data: Annotated[Any, AfterValidator(json_value_rule)]


class When(BaseModel):
    at: Timestamp


class Tagged(BaseModel):
    tag: Annotated[str, Field(strict=True)]


def _refused(model: type[BaseModel], data: dict[str, Any]) -> dict[str, str] | None:
    try:
        parse(model, data)
    except ValidationFailed as failure:
        return {error.field: error.message for error in failure.errors}
    return None


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cs")


JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=10,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(each) for each in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(each) for each in value), default=0)
    return 0


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value, *(text for each in value.values() for text in _texts(each))]
    if isinstance(value, list):
        return [text for each in value for text in _texts(each)]
    return []


def _numbers(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [number for each in value.values() for number in _numbers(each)]
    if isinstance(value, list):
        return [number for each in value for number in _numbers(each)]
    return []


@FAST
@given(st.text(max_size=40))
def test_a_required_text_is_accepted_exactly_when_trimmed_it_fits_and_has_no_control(
    value: str,
) -> None:
    refusal = _refused(Note, {"title": value})

    trimmed = value.strip()
    valid = 1 <= len(trimmed) <= MAX_LENGTH and not any(_is_control(c) for c in trimmed)
    assert (refusal is None) == valid
    assert refusal is None or (set(refusal) == {"title"} and refusal["title"])


@FAST
@given(st.text(alphabet=st.sampled_from("ab \n\r\t\x00\x07\x1b\x7f\u0085"), max_size=20))
def test_only_multiline_text_keeps_line_breaks_and_tabs(value: str) -> None:
    as_title = _refused(Note, {"title": "t" + value + "t"})
    as_body = _refused(Note, {"title": "t", "body": value})

    inner = ("t" + value + "t").strip()
    assert (as_title is None) == (not any(_is_control(char) for char in inner))
    body_controls = [c for c in value.strip() if _is_control(c) and c not in "\n\r\t"]
    assert (as_body is None) == (not body_controls)


@FAST
@given(st.text(max_size=40))
def test_an_accepted_text_comes_back_trimmed_and_trimming_again_keeps_it(value: str) -> None:
    if _refused(Note, {"title": value}) is not None:
        return

    kept = parse(Note, {"title": value}).title

    assert kept == value.strip()
    assert parse(Note, {"title": kept}).title == kept


@FAST
@given(st.text(max_size=20))
def test_an_identifier_is_ascii_letters_digits_and_underscores_only(value: str) -> None:
    refusal = _refused(Code, {"code": value})

    valid = all(char.isascii() and (char.isalnum() or char == "_") for char in value)
    assert (refusal is None) == valid
    assert refusal is None or "letters" in refusal["code"]


@FAST
@given(st.text(max_size=20))
def test_unstorable_text_is_text_with_a_control_character_or_a_lone_surrogate(value: str) -> None:
    assert unstorable(value) == any(_is_control(char) for char in value)


@FAST
@given(JSON_VALUES)
def test_free_json_is_accepted_exactly_when_finite_without_surrogates_and_shallow(
    value: Any,
) -> None:
    refusal = _refused(Payload, {"data": value})

    valid = (
        _depth(value) <= JSON_MAX_DEPTH
        and all(math.isfinite(number) for number in _numbers(value))
        and not any(_has_surrogate(text) for text in _texts(value))
    )
    assert (refusal is None) == valid
    assert refusal is None or set(refusal) == {"data"}


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= char <= "\udfff" for char in text)


@FAST
@given(JSON_VALUES)
def test_accepted_free_json_survives_a_round_trip_through_strict_json(value: Any) -> None:
    if _refused(Payload, {"data": value}) is not None:
        return

    encoded = json.dumps(value, ensure_ascii=False, allow_nan=False).encode()

    assert json.loads(encoded) == value


@pytest.mark.parametrize("depth", [JSON_MAX_DEPTH, JSON_MAX_DEPTH + 1, 5000])
def test_free_json_nesting_is_bounded(depth: int) -> None:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}

    refusal = _refused(Payload, {"data": value})

    assert (refusal is None) == (depth <= JSON_MAX_DEPTH)
    assert refusal is None or "levels deep" in refusal["data"]


@FAST
@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
)
def test_a_timestamp_with_any_offset_is_read_as_the_same_instant_in_utc(
    local: datetime, offset_minutes: int
) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    text = local.replace(tzinfo=zone).isoformat()

    read = parse(When, {"at": text}).at

    assert read.tzinfo == UTC
    assert read == local.replace(tzinfo=zone)


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
def test_a_timestamp_beyond_the_calendar_in_utc_is_refused_in_words(text: str) -> None:
    assert _refused(When, {"at": text}) == {"at": "This time is out of range."}


@FAST
@given(
    st.one_of(
        st.integers(),
        st.floats(allow_nan=False),
        st.text(alphabet="0123456789.", max_size=12),
        st.dates().map(str),
        st.datetimes().map(datetime.isoformat),
    )
)
def test_a_timestamp_needs_a_date_a_time_and_an_offset(value: object) -> None:
    refusal = _refused(When, {"at": value})

    assert refusal is not None
    assert set(refusal) == {"at"}


@FAST
@given(st.one_of(st.integers(), st.floats(), st.booleans(), st.none(), st.lists(st.text())))
def test_a_value_of_another_kind_is_refused_naming_the_field(value: object) -> None:
    refusal = _refused(Tagged, {"tag": value})

    assert refusal is not None
    assert list(refusal) == ["tag"]
    assert refusal["tag"] == "Must be a string."
