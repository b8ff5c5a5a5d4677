"""The webhook and event type rules, tried with generated values."""

import re
from typing import Any
from urllib.parse import urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from reflexblue.core.errors import ValidationFailed
from reflexblue.core.validation import parse
from reflexblue.webhooks.schemas import (
    EventTypeCreate,
    WebhookCreate,
    WebhookUpdate,
    unresolved_references,
)

FAST = settings(max_examples=100, deadline=None)
EVENT_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
WORD = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
EVENT_TYPE_NAMES = st.lists(WORD, min_size=2, max_size=4).map(".".join)
HOSTS = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,6}){1,2}", fullmatch=True)
PATHS = st.from_regex(r"(/[A-Za-z0-9._~-]{0,8}){0,3}", fullmatch=True)


def _refused(model: type[Any], data: dict[str, Any]) -> dict[str, str] | None:
    try:
        parse(model, data)
    except ValidationFailed as failure:
        return {error.field: error.message for error in failure.errors}
    return None


def _webhook(**fields: Any) -> dict[str, Any]:
    return {"url": "https://example.com/hooks", "event_types": ["webhook.test"], **fields}


@FAST
@given(EVENT_TYPE_NAMES)
def test_every_dotted_lowercase_name_is_an_event_type_name(name: str) -> None:
    assert parse(EventTypeCreate, {"name": name}).name == name


@FAST
@given(st.one_of(st.text(max_size=30), st.text(alphabet="abcXY.._-1 é", max_size=30)))
def test_an_event_type_name_is_accepted_exactly_when_it_is_dotted_lowercase_words(
    name: str,
) -> None:
    refusal = _refused(EventTypeCreate, {"name": name})

    trimmed = name.strip()
    valid = bool(EVENT_TYPE_NAME.fullmatch(trimmed)) and len(trimmed) <= 100
    assert (refusal is None) == valid
    assert refusal is None or set(refusal) == {"name"}


@FAST
@given(st.sampled_from(["http", "https", "HTTPS"]), HOSTS, st.none() | st.integers(1, 65535), PATHS)
def test_an_absolute_http_url_with_a_host_is_a_webhook_url(
    scheme: str, host: str, port: int | None, path: str
) -> None:
    url = f"{scheme}://{host}{'' if port is None else f':{port}'}{path}"

    assert parse(WebhookCreate, _webhook(url=url)).url == url


@FAST
@given(st.text(max_size=60))
def test_any_other_text_as_a_url_is_refused_by_name_unless_it_is_one(url: str) -> None:
    refusal = _refused(WebhookCreate, _webhook(url=url))

    if refusal is not None:
        assert set(refusal) == {"url"}
        assert refusal["url"]
        return
    parts = urlsplit(url.strip())
    assert parts.scheme.lower() in ("http", "https")
    assert parts.hostname
    assert parts.username is None
    assert not any(char.isspace() for char in url.strip())


@FAST
@given(HOSTS, st.text(alphabet="abc:@", min_size=1, max_size=8))
def test_a_url_with_credentials_is_refused(host: str, userinfo: str) -> None:
    refusal = _refused(WebhookCreate, _webhook(url=f"https://{userinfo}@{host}/hook"))

    assert refusal is not None
    assert set(refusal) == {"url"}


@FAST
@given(st.lists(EVENT_TYPE_NAMES, min_size=1, max_size=6, unique=True))
def test_a_list_of_distinct_event_type_names_is_a_subscription(names: list[str]) -> None:
    assert parse(WebhookCreate, _webhook(event_types=names)).event_types == names


@FAST
@given(st.lists(st.one_of(EVENT_TYPE_NAMES, st.just("*"), st.text(max_size=6)), max_size=6))
def test_a_subscription_is_accepted_exactly_when_it_is_star_alone_or_distinct_names(
    names: list[str],
) -> None:
    refusal = _refused(WebhookCreate, _webhook(event_types=names))

    distinct = len(set(names)) == len(names)
    valid = names == ["*"] or (
        bool(names) and distinct and all(EVENT_TYPE_NAME.fullmatch(name) for name in names)
    )
    assert (refusal is None) == valid
    assert refusal is None or all(field.startswith("event_types") for field in refusal)


@FAST
@given(
    st.dictionaries(
        st.sampled_from(["url", "description", "event_types", "enabled"]),
        st.sampled_from(["https://example.com/x", "text", ["webhook.test"], True, False, None, 5]),
    )
)
def test_an_update_changes_only_the_valid_fields_it_names(fields: dict[str, Any]) -> None:
    refusal = _refused(WebhookUpdate, fields)

    if refusal is None:
        assert parse(WebhookUpdate, fields).changes().keys() == fields.keys()
    else:
        assert set(refusal) <= set(fields)


SCHEMA_LEAVES = st.sampled_from(
    [{"type": "string"}, {"type": "integer", "minimum": 0}, {"enum": [1, "a"]}, True]
)
SCHEMAS = st.recursive(
    SCHEMA_LEAVES,
    lambda inner: (
        st.builds(
            lambda properties: {"type": "object", "properties": properties},
            st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
        )
        | st.builds(lambda items: {"type": "array", "items": items}, inner)
    ),
    max_leaves=6,
)


@FAST
@given(SCHEMAS.filter(lambda schema: isinstance(schema, dict)))
def test_a_valid_json_schema_is_kept_as_given(schema: dict[str, Any]) -> None:
    created = parse(EventTypeCreate, {"name": "order.created", "schema": schema})

    assert created.schema_ == schema


@FAST
@given(st.sampled_from(["a", "b"]), st.sampled_from(["a", "b", "missing"]))
def test_a_reference_is_accepted_exactly_when_it_points_into_the_schema(
    defined: str, referenced: str
) -> None:
    schema = {"$defs": {defined: {"type": "string"}}, "$ref": f"#/$defs/{referenced}"}

    refusal = _refused(EventTypeCreate, {"name": "order.created", "schema": schema})

    assert (refusal is None) == (defined == referenced)
    assert refusal is None or "does not point into this schema" in refusal["schema"]


@FAST
@given(HOSTS, PATHS)
def test_a_reference_to_another_document_is_refused_and_never_fetched(host: str, path: str) -> None:
    reference = f"https://{host}{path}"
    schema = {"properties": {"a": {"$ref": reference}}}

    # With no network in reach a fetch would fail with another error; refusing it means the
    # lookup never left the schema.
    assert unresolved_references(schema) == [reference]
    assert _refused(EventTypeCreate, {"name": "order.created", "schema": schema}) is not None


@FAST
@given(st.one_of(st.text(max_size=5), st.integers(), st.lists(st.integers(), max_size=2)))
def test_a_schema_that_is_not_an_object_is_refused(schema: object) -> None:
    refusal = _refused(EventTypeCreate, {"name": "order.created", "schema": schema})

    assert refusal is not None
    assert set(refusal) == {"schema"}
