"""The rules for webhook and event type input, field by field."""

from typing import Any

import pytest

from reflexblue.core.errors import ValidationFailed
from reflexblue.core.validation import parse
from reflexblue.webhooks.schemas import EventTypeCreate, WebhookCreate, WebhookUpdate

VALID_WEBHOOK: dict[str, Any] = {
    "url": "https://example.com/hooks",
    "event_types": ["webhook.test"],
}


def _refusal(model: type[Any], data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as refused:
        parse(model, data)
    return {error.field: error.message for error in refused.value.errors}


@pytest.mark.parametrize(
    ("url", "message_part"),
    [
        ("", "required"),
        ("   ", "required"),
        ("example.com/hook", "absolute"),
        ("/hooks", "absolute"),
        ("ftp://example.com/hook", "absolute"),
        ("javascript:alert(1)", "absolute"),
        ("https://", "absolute"),
        ("https://user:pw@example.com/hook", "user name or password"),
        ("https://user@example.com/hook", "user name or password"),
        ("https://example.com:99999/hook", "port"),
        ("https://exa mple.com/hook", "spaces"),
        ("https://example.com/a\nb", "control characters"),
        ("https://example.com/" + "a" * 2000, "at most 2000"),
        (42, "string"),
        (None, "string"),
    ],
)
def test_webhook_url_is_refused(url: object, message_part: str) -> None:
    errors = _refusal(WebhookCreate, {**VALID_WEBHOOK, "url": url})

    assert message_part in errors["url"].lower()


def test_webhook_url_of_2000_characters_is_accepted() -> None:
    url = "https://example.com/" + "a" * (2000 - len("https://example.com/"))

    assert parse(WebhookCreate, {**VALID_WEBHOOK, "url": url}).url == url


def test_webhook_url_is_trimmed() -> None:
    parsed = parse(WebhookCreate, {**VALID_WEBHOOK, "url": "  https://example.com/x  "})

    assert parsed.url == "https://example.com/x"


@pytest.mark.parametrize(
    ("event_types", "message_part"),
    [
        ([], "at least one"),
        (["*", "webhook.test"], "either"),
        (["webhook.test", "webhook.test"], "only once"),
        (["Order.Created"], "lowercase"),
        (["order"], "lowercase"),
        (["order..created"], "lowercase"),
        ([""], "lowercase"),
        (["order.created; DROP TABLE webhooks"], "lowercase"),
        ("webhook.test", "array"),
        ([7], "string"),
        (None, "array"),
    ],
)
def test_webhook_event_types_are_refused(event_types: object, message_part: str) -> None:
    errors = _refusal(WebhookCreate, {**VALID_WEBHOOK, "event_types": event_types})

    assert any(message_part in message.lower() for message in errors.values()), errors


def test_webhook_subscribes_to_every_type_with_a_star() -> None:
    assert parse(WebhookCreate, {**VALID_WEBHOOK, "event_types": ["*"]}).event_types == ["*"]


@pytest.mark.parametrize(
    ("description", "message_part"),
    [("a" * 501, "at most 500"), ("bell\x07", "control"), (5, "string")],
)
def test_webhook_description_is_refused(description: object, message_part: str) -> None:
    errors = _refusal(WebhookCreate, {**VALID_WEBHOOK, "description": description})

    assert message_part in errors["description"].lower()


def test_webhook_with_an_unknown_field_is_refused() -> None:
    errors = _refusal(WebhookCreate, {**VALID_WEBHOOK, "secret": "x"})

    assert "not known" in errors["secret"]


@pytest.mark.parametrize("field", ["url", "description", "event_types", "enabled"])
def test_webhook_update_refuses_null(field: str) -> None:
    errors = _refusal(WebhookUpdate, {field: None})

    assert "may not be null" in errors[field].lower()


def test_webhook_update_refuses_a_string_for_enabled() -> None:
    errors = _refusal(WebhookUpdate, {"enabled": "yes"})

    assert "true or false" in errors["enabled"]


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "order",
        "Order.created",
        "order.Created",
        "1order.created",
        "order.created.",
        "order-created.x",
        "ordér.created",
        "a." + "b" * 99,
    ],
)
def test_event_type_name_is_refused(name: str) -> None:
    errors = _refusal(EventTypeCreate, {"name": name})

    assert "name" in errors


@pytest.mark.parametrize("name", ["order.created", "a.b", "billing.invoice_paid.v2"])
def test_event_type_name_is_accepted(name: str) -> None:
    assert parse(EventTypeCreate, {"name": name}).name == name


def test_event_type_schema_must_be_a_valid_json_schema() -> None:
    errors = _refusal(EventTypeCreate, {"name": "order.created", "schema": {"type": "objec"}})

    assert "not a valid json schema" in errors["schema"].lower()


def test_event_type_schema_must_be_an_object() -> None:
    errors = _refusal(EventTypeCreate, {"name": "order.created", "schema": "yes"})

    assert "schema" in errors


def test_event_type_description_is_bounded() -> None:
    errors = _refusal(EventTypeCreate, {"name": "order.created", "description": "x" * 501})

    assert "at most 500" in errors["description"]
