"""The rules for a new API key, and for the Idempotency-Key and If-Match headers, tried with
generated values."""

import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reflexblue.api.management.integrations import _version_from
from reflexblue.core.errors import ValidationFailed
from reflexblue.core.validation import parse
from reflexblue.integrations.api_keys import ApiKeyCreate
from reflexblue.webhooks.idempotency import KEY_MAX_LENGTH, check_key

FAST = settings(max_examples=100, deadline=None)


def _refused(data: dict[str, Any]) -> dict[str, str] | None:
    try:
        parse(ApiKeyCreate, data)
    except ValidationFailed as failure:
        return {error.field: error.message for error in failure.errors}
    return None


@FAST
@given(st.text(max_size=110))
def test_an_api_key_name_is_accepted_exactly_when_trimmed_it_fits_and_has_no_control(
    name: str,
) -> None:
    refusal = _refused({"name": name})

    trimmed = name.strip()
    control = any(unicodedata.category(char) in ("Cc", "Cs") for char in trimmed)
    assert (refusal is None) == (1 <= len(trimmed) <= 100 and not control)
    assert refusal is None or set(refusal) == {"name"}


@FAST
@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(9000, 1, 1)),
    st.integers(min_value=-23 * 60, max_value=23 * 60),
)
def test_an_expiry_in_any_offset_is_kept_as_the_same_instant_in_utc(
    local: datetime, offset_minutes: int
) -> None:
    given_at = local.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))

    expires_at = parse(ApiKeyCreate, {"name": "k", "expires_at": given_at.isoformat()}).expires_at

    assert expires_at == given_at
    assert expires_at is not None
    assert expires_at.tzinfo == UTC


@FAST
@given(st.one_of(st.integers(), st.datetimes().map(datetime.isoformat), st.text(max_size=12)))
def test_an_expiry_that_is_not_an_rfc_3339_timestamp_is_refused(value: object) -> None:
    refusal = _refused({"name": "k", "expires_at": value})

    assert refusal is not None
    assert set(refusal) == {"expires_at"}


@FAST
@given(st.text(max_size=KEY_MAX_LENGTH + 5))
def test_an_idempotency_key_is_accepted_exactly_when_printable_ascii_of_bounded_length(
    key: str,
) -> None:
    valid = 1 <= len(key) <= KEY_MAX_LENGTH and key.isascii() and key.isprintable()

    if valid:
        assert check_key(key) == key
        return
    with pytest.raises(ValidationFailed) as refused:
        check_key(key)
    assert [error.field for error in refused.value.errors] == ["Idempotency-Key"]


@FAST
@given(st.integers(min_value=0, max_value=10**18 - 1), st.sampled_from(['"{}"', 'W/"{}"', "{}"]))
def test_if_match_names_the_version_in_each_of_its_forms(version: int, form: str) -> None:
    assert _version_from(form.format(version)) == version


@FAST
@given(st.text(max_size=30))
def test_if_match_that_names_no_version_matches_none_and_never_fails(header: str) -> None:
    version = _version_from(header)

    text = header.strip().removeprefix("W/").strip('"')
    if header.strip() == "*":
        assert version is None
    elif text.isascii() and text.isdigit() and len(text) <= 18:
        assert version == int(text)
    else:
        assert version == -1
