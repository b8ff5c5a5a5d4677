"""The rules for user names, passwords and token names, tried with generated values."""

import re
import unicodedata
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reflexblue.accounts.schemas import (
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    TokenCreate,
    UserCreate,
)
from reflexblue.core.errors import ValidationFailed
from reflexblue.core.validation import parse

FAST = settings(max_examples=100, deadline=None)
USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,100}")
GOOD_PASSWORD = "correct horse battery staple"


def _refused(model: type[Any], data: dict[str, Any]) -> dict[str, str] | None:
    try:
        parse(model, data)
    except ValidationFailed as failure:
        return {error.field: error.message for error in failure.errors}
    return None


@FAST
@given(st.one_of(st.text(max_size=110), st.text(alphabet="aZ9_.@- +é\x00", max_size=20)))
def test_a_username_is_accepted_exactly_when_trimmed_it_is_1_to_100_allowed_characters(
    username: str,
) -> None:
    refusal = _refused(UserCreate, {"username": username, "password": GOOD_PASSWORD})

    assert (refusal is None) == bool(USERNAME.fullmatch(username.strip()))
    assert refusal is None or set(refusal) == {"username"}


@FAST
@given(st.text(max_size=PASSWORD_MAX_LENGTH + 20))
def test_a_password_is_accepted_exactly_when_its_length_is_within_bounds(password: str) -> None:
    refusal = _refused(UserCreate, {"username": "alice", "password": password})

    assert (refusal is None) == (PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH)
    assert refusal is None or set(refusal) == {"password"}


@FAST
@given(st.text(min_size=PASSWORD_MIN_LENGTH, max_size=40))
def test_a_password_is_kept_exactly_as_typed(password: str) -> None:
    assert parse(UserCreate, {"username": "alice", "password": password}).password == password


@FAST
@given(st.text(max_size=110))
def test_a_token_name_is_accepted_exactly_when_trimmed_it_fits_and_has_no_control(
    name: str,
) -> None:
    refusal = _refused(TokenCreate, {"name": name})

    trimmed = name.strip()
    control = any(unicodedata.category(char) in ("Cc", "Cs") for char in trimmed)
    assert (refusal is None) == (1 <= len(trimmed) <= 100 and not control)
    assert refusal is None or set(refusal) == {"name"}


@FAST
@given(st.text(min_size=1, max_size=10).filter(lambda role: role not in ("admin", "viewer")))
def test_an_unknown_role_is_refused_naming_the_roles(role: str) -> None:
    refusal = _refused(UserCreate, {"username": "alice", "password": GOOD_PASSWORD, "role": role})

    assert refusal is not None
    assert set(refusal) == {"role"}
