"""The integration input rules, tried with generated values."""

import re
import unicodedata
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reflexblue.core.errors import ValidationFailed
from reflexblue.core.validation import parse
from reflexblue.integrations.schemas import IntegrationCreate, IntegrationUpdate

EXPORT_ID_FORM = re.compile(r"^[A-Za-z0-9_]+$")
IDENTIFIER_ALPHABET = "ABCXYZabcxyz0189_"
WHITESPACE = st.text(alphabet=" \t\n\r\u00a0\u2003", max_size=3)
FAST = settings(max_examples=150, deadline=None)


def _create(**fields: Any) -> dict[str, Any]:
    return {"name": "Acme", "external_id": "acme", "export_id": "ACME", **fields}


def _accepted(field: str, value: object) -> str | None:
    """The value the rules keep for `field`, or None when they refuse it, naming only it."""
    refused = _refused_fields(_create(**{field: value}))
    if refused is None:
        accepted: str = getattr(parse(IntegrationCreate, _create(**{field: value})), field)
        return accepted
    assert refused == {field}
    return None


def _refused_fields(data: dict[str, Any]) -> set[str] | None:
    """The fields named in the refusal, or None when the data is accepted."""
    try:
        parse(IntegrationCreate, data)
    except ValidationFailed as failure:
        return {error.field for error in failure.errors}
    return None


@FAST
@given(
    st.one_of(
        st.text(max_size=120),
        st.text(alphabet=IDENTIFIER_ALPHABET + " \t\n-.é٣😀\x00", max_size=110),
    )
)
def test_an_export_id_is_accepted_exactly_when_it_is_letters_digits_and_underscores(
    value: str,
) -> None:
    accepted = _accepted("export_id", value)

    trimmed = value.strip()
    assert (accepted is not None) == bool(EXPORT_ID_FORM.fullmatch(trimmed) and len(trimmed) <= 100)
    assert accepted in (None, trimmed)


@FAST
@given(WHITESPACE, st.text(alphabet=IDENTIFIER_ALPHABET, min_size=1, max_size=100), WHITESPACE)
def test_every_export_id_of_the_allowed_form_is_accepted(
    before: str, core: str, after: str
) -> None:
    assert parse(IntegrationCreate, _create(export_id=before + core + after)).export_id == core


@FAST
@given(
    st.text(alphabet=IDENTIFIER_ALPHABET, max_size=20),
    st.characters(exclude_characters=IDENTIFIER_ALPHABET + "DEFGHIJKLMNOPQRSTUVW"),
    st.text(alphabet=IDENTIFIER_ALPHABET, max_size=20),
)
def test_an_export_id_with_any_other_character_inside_is_refused(
    head: str, odd: str, tail: str
) -> None:
    value = "A" + head + odd + tail + "Z"
    assume(not EXPORT_ID_FORM.fullmatch(value))  # odd may be a letter or digit not listed above

    assert _refused_fields(_create(export_id=value)) == {"export_id"}


@FAST
@given(st.text(max_size=220))
def test_a_name_is_accepted_exactly_when_1_to_200_characters_without_control_characters(
    value: str,
) -> None:
    accepted = _accepted("name", value)

    trimmed = value.strip()
    has_control = any(unicodedata.category(char) in ("Cc", "Cs") for char in trimmed)
    assert (accepted is not None) == (1 <= len(trimmed) <= 200 and not has_control)
    assert accepted in (None, trimmed)


@FAST
@given(st.sampled_from(["name", "description", "external_id", "export_id"]), st.text())
def test_trimming_is_idempotent(field: str, value: str) -> None:
    once = _accepted(field, value)
    assume(once is not None)

    assert _accepted(field, once) == once


@FAST
@given(st.text(max_size=2100))
def test_a_description_keeps_line_breaks_and_tabs_but_no_other_control_character(
    value: str,
) -> None:
    accepted = _accepted("description", value)

    trimmed = value.strip()
    has_control = any(
        unicodedata.category(char) in ("Cc", "Cs") and char not in "\n\r\t" for char in trimmed
    )
    assert (accepted is not None) == (len(trimmed) <= 2000 and not has_control)
    assert accepted in (None, trimmed)


@FAST
@given(
    st.sampled_from(["name", "external_id", "export_id"]),
    st.text(alphabet=" \t\n\r\u00a0\u2003\u3000", max_size=10),
)
def test_a_required_field_of_blanks_is_refused(field: str, blanks: str) -> None:
    assert _refused_fields(_create(**{field: blanks})) == {field}


@FAST
@given(
    st.sampled_from(["name", "description", "external_id", "export_id"]),
    st.one_of(st.none(), st.integers(), st.floats(), st.booleans(), st.lists(st.text())),
)
def test_a_value_that_is_not_a_string_is_refused(field: str, value: object) -> None:
    assert _refused_fields(_create(**{field: value})) == {field}


@FAST
@given(
    st.text(min_size=1, max_size=20).filter(lambda key: key not in IntegrationCreate.model_fields)
)
def test_an_unknown_field_is_refused_by_its_name(key: str) -> None:
    assert _refused_fields(_create(**{key: "x"})) == {key}


@pytest.mark.parametrize("field", ["name", "description", "external_id", "export_id"])
def test_an_update_may_not_set_a_field_to_null(field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse(IntegrationUpdate, {field: None})

    assert [error.field for error in refused.value.errors] == [field]


@FAST
@given(
    st.dictionaries(
        st.sampled_from(["name", "external_id", "export_id"]),
        st.text(alphabet=IDENTIFIER_ALPHABET, min_size=1, max_size=30),
    )
)
def test_an_update_changes_exactly_the_fields_it_names(fields: dict[str, str]) -> None:
    assert parse(IntegrationUpdate, fields).changes() == fields
