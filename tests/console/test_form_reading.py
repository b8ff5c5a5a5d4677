"""How the console reads a posted form, and the numbers typed into its fields, tried with
generated values."""

from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.types import Message

from reflexblue.api.problems import BodyTooLarge, UnsupportedMediaType
from reflexblue.console.context import FORM_MAX_BYTES, FormRefused, read_form
from reflexblue.console.pages import _version
from reflexblue.console.sections import EXPIRY_DAYS_MAX, _key_request
from reflexblue.core.errors import ValidationFailed

FAST = settings(max_examples=100, deadline=None)
FORM = "application/x-www-form-urlencoded"
# What a person can type: any character that UTF-8 can carry.
TYPED = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20)
NAMES = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)


def _request(body: bytes, content_type: str | None = FORM) -> Request:
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type is not None:
        headers.append((b"content-type", content_type.encode()))
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope: dict[str, Any] = {"type": "http", "method": "POST", "headers": headers}
    return Request(scope, receive)


async def _read(body: bytes, content_type: str | None = FORM) -> dict[str, str]:
    form = await read_form(_request(body, content_type))
    return {name: str(value) for name, value in form.items()}


@FAST
@given(st.dictionaries(NAMES, TYPED, max_size=6))
async def test_a_form_of_distinct_fields_reads_back_as_typed(fields: dict[str, str]) -> None:
    assert await _read(urlencode(fields).encode()) == fields


@FAST
@given(st.dictionaries(NAMES, TYPED, min_size=1, max_size=4), st.data())
async def test_a_form_that_repeats_a_field_is_refused(
    fields: dict[str, str], data: st.DataObject
) -> None:
    repeated = data.draw(st.sampled_from(sorted(fields)))
    body = urlencode([*fields.items(), (repeated, fields[repeated])]).encode()

    with pytest.raises(FormRefused, match="more than once"):
        await _read(body)


@FAST
@given(
    st.binary(min_size=1, max_size=6).filter(lambda raw: not _is_utf8(raw)),
    st.booleans(),
)
async def test_a_form_with_bytes_that_are_not_utf8_is_refused(raw: bytes, escaped: bool) -> None:
    value = quote(raw).encode() if escaped else raw

    with pytest.raises(FormRefused, match="not valid UTF-8"):
        await _read(b"name=" + value)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/json", "multipart/form-data; boundary=x", None]
)
async def test_a_form_of_another_media_type_is_refused(content_type: str | None) -> None:
    with pytest.raises(UnsupportedMediaType):
        await _read(b"name=x", content_type)


async def test_an_empty_form_needs_no_media_type() -> None:
    assert await _read(b"", None) == {}


async def test_a_form_larger_than_the_limit_is_refused() -> None:
    with pytest.raises(BodyTooLarge):
        await _read(b"name=" + b"x" * FORM_MAX_BYTES)


@FAST
@given(st.text(max_size=25))
def test_a_version_field_is_a_number_or_the_version_no_integration_has(text: str) -> None:
    digits = text.strip()
    expected = int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 18 else 0

    assert _version(text) == expected


@FAST
@given(st.text(max_size=8))
def test_days_until_expiry_are_accepted_exactly_when_a_whole_number_in_range(text: str) -> None:
    values = {"name": "console", "expires_in_days": text.strip()}
    days = values["expires_in_days"]
    valid = days == "" or (days.isascii() and days.isdigit() and 1 <= int(days) <= EXPIRY_DAYS_MAX)
    if valid:
        _key_request(values)
        return
    with pytest.raises(ValidationFailed) as refused:
        _key_request(values)
    assert [error.field for error in refused.value.errors] == ["expires_in_days"]
