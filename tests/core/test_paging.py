"""Cursors: what the API hands out comes back intact; anything else is refused clearly."""

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reflexblue.core.errors import ValidationFailed
from reflexblue.core.paging import Cursor

STORABLE_TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=60
)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["name", "export_id", "created_at"]),
    st.sampled_from(["asc", "desc"]),
    st.one_of(st.none(), STORABLE_TEXT),
    STORABLE_TEXT,
    st.sampled_from(["next", "prev"]),
)
def test_a_cursor_decodes_to_what_was_encoded(
    sort: str, order: str, value: str | None, row_id: str, direction: str
) -> None:
    cursor = Cursor(sort, order, value, row_id, direction)  # type: ignore[arg-type]

    decoded = Cursor.decode(cursor.encode(), sort=sort, order=order)  # type: ignore[arg-type]

    assert decoded == cursor


def test_an_encoded_cursor_is_url_safe() -> None:
    encoded = Cursor("name", "asc", "?&=/+ é", "int_1").encode()

    assert encoded.isascii()
    assert not set(encoded) & set("?&=/+ ")


@pytest.mark.parametrize(("sort", "order"), [("export_id", "asc"), ("name", "desc")])
def test_a_cursor_of_another_order_is_refused_naming_the_cursor(sort: str, order: str) -> None:
    encoded = Cursor("name", "asc", "Acme", "int_1").encode()

    with pytest.raises(ValidationFailed, match="another sort order") as refused:
        Cursor.decode(encoded, sort=sort, order=order)  # type: ignore[arg-type]

    assert [error.field for error in refused.value.errors] == ["cursor"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
PLAUSIBLE_PARTS = st.tuples(
    st.just("name"),
    st.just("asc"),
    JSON_VALUES,
    JSON_VALUES,
    st.sampled_from(["next", "prev", "up", None]),
)


def _encode(parts: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


@settings(max_examples=100, deadline=None)
@given(st.one_of(JSON_VALUES, PLAUSIBLE_PARTS.map(list), st.text(max_size=40).map(str.encode)))
def test_a_forged_cursor_is_refused_unless_every_part_is_of_the_right_kind(
    forged: object,
) -> None:
    text = (
        base64.urlsafe_b64encode(forged).decode() if isinstance(forged, bytes) else _encode(forged)
    )

    outcome = _decode(text)

    if isinstance(outcome, ValidationFailed):
        assert [error.field for error in outcome.errors] == ["cursor"]
    else:
        assert outcome.direction in ("next", "prev")
        assert isinstance(outcome.id, str)
        assert outcome.value is None or isinstance(outcome.value, str)


def _decode(text: str) -> Cursor | ValidationFailed:
    try:
        return Cursor.decode(text, sort="name", order="asc")
    except ValidationFailed as refused:
        return refused
