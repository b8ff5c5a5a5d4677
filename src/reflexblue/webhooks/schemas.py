"""The shapes event types, webhooks and deliveries take at the doors."""

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    field_validator,
)
from pydantic_core import PydanticCustomError
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from reflexblue.core.validation import Timestamp, json_value_rule, reject_null, text_rule
from reflexblue.webhooks.models import DeliveryStatus, RecoveryStatus

EVENT_TYPE_NAME_MAX_LENGTH = 100
EVENT_TYPE_DESCRIPTION_MAX_LENGTH = 500
WEBHOOK_URL_MAX_LENGTH = 2000
WEBHOOK_DESCRIPTION_MAX_LENGTH = 500
EVENT_TYPES_PER_WEBHOOK_MAX = 100
ALL_EVENT_TYPES = "*"

_EVENT_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_URL_SCHEMES = ("http", "https")
_SCHEMA_BASE_URI = "urn:reflexblue:event-type-schema"


def _event_type_name_rule(value: str) -> str:
    if not _EVENT_TYPE_NAME.match(value):
        raise PydanticCustomError(
            "event_type_name",
            "Use lowercase dotted words such as 'order.created': each part starts with a "
            "letter and holds only a–z, 0–9 and _.",
        )
    return value


def _url_rule(value: str) -> str:
    if any(char.isspace() for char in value):
        raise PydanticCustomError("url_space", "A URL may not contain spaces or line breaks.")
    parts = urlsplit(value)
    if parts.scheme.lower() not in _URL_SCHEMES or not parts.netloc:
        raise PydanticCustomError(
            "url_absolute",
            "Use an absolute http:// or https:// URL, such as https://example.com/hook.",
        )
    if parts.username is not None or parts.password is not None:
        raise PydanticCustomError("url_credentials", "A URL may not carry a user name or password.")
    if not parts.hostname:
        raise PydanticCustomError("url_host", "The URL needs a host name or address.")
    try:
        parts.port  # noqa: B018 - reading it is the check: a bad port raises
    except ValueError:
        raise PydanticCustomError("url_port", "The URL's port is not a valid number.") from None
    return value


def _json_schema_rule(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    json_value_rule(value)
    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as error:
        raise PydanticCustomError(
            "json_schema", "Not a valid JSON Schema: {reason}", {"reason": error.message}
        ) from None
    unresolved = unresolved_references(value)
    if unresolved:
        raise PydanticCustomError(
            "json_schema_reference",
            "Not a valid JSON Schema: {reference} does not point into this schema; only "
            "references within it (such as #/$defs/address) are followed.",
            {"reference": unresolved[0]},
        )
    return value


def local_schema_registry(schema: dict[str, Any]) -> Registry[Any]:
    """A registry holding only this schema: a reference elsewhere is never fetched (that
    would have the server request any URL an administrator names), it stays unresolved."""
    registry: Registry[Any] = Registry().with_resource(
        _SCHEMA_BASE_URI, DRAFT202012.create_resource(schema)
    )
    return registry


def unresolved_references(schema: dict[str, Any]) -> list[str]:
    """The `$ref` values of the schema that lead nowhere within it."""
    resolver = local_schema_registry(schema).resolver(base_uri=_SCHEMA_BASE_URI)
    unresolved = []
    for reference in _references(schema):
        try:
            resolver.lookup(reference)
        except Unresolvable:
            unresolved.append(reference)
    return unresolved


def _references(value: Any) -> list[str]:
    found: list[str] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            reference = item.get("$ref")
            if isinstance(reference, str):
                found.append(reference)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def _event_types_rule(value: list[str]) -> list[str]:
    if not value:
        raise PydanticCustomError("event_types_empty", "Subscribe to at least one event type.")
    if ALL_EVENT_TYPES in value and len(value) > 1:
        raise PydanticCustomError(
            "event_types_star", 'Use either ["*"] for every type, or a list of type names.'
        )
    if len(set(value)) != len(value):
        raise PydanticCustomError("event_types_duplicate", "Name each event type only once.")
    for name in value:
        if name != ALL_EVENT_TYPES:
            _event_type_name_rule(name)
    return value


EventTypeName = Annotated[
    str,
    Field(strict=True),
    AfterValidator(text_rule(max_length=EVENT_TYPE_NAME_MAX_LENGTH, required=True)),
    AfterValidator(_event_type_name_rule),
]
EventTypeDescription = Annotated[
    str,
    Field(strict=True),
    AfterValidator(
        text_rule(max_length=EVENT_TYPE_DESCRIPTION_MAX_LENGTH, required=False, multiline=True)
    ),
]
WebhookUrl = Annotated[
    str,
    Field(strict=True),
    AfterValidator(text_rule(max_length=WEBHOOK_URL_MAX_LENGTH, required=True)),
    AfterValidator(_url_rule),
]
WebhookDescription = Annotated[
    str,
    Field(strict=True),
    AfterValidator(
        text_rule(max_length=WEBHOOK_DESCRIPTION_MAX_LENGTH, required=False, multiline=True)
    ),
]
SubscribedEventTypes = Annotated[
    list[Annotated[str, Field(strict=True, max_length=EVENT_TYPE_NAME_MAX_LENGTH)]],
    Field(max_length=EVENT_TYPES_PER_WEBHOOK_MAX),
    AfterValidator(_event_types_rule),
]
JsonSchema = Annotated[dict[str, Any] | None, AfterValidator(_json_schema_rule)]


class EventTypeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: EventTypeName
    description: EventTypeDescription = ""
    schema_: JsonSchema = Field(default=None, alias="schema")


class EventTypeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    name: str
    description: str
    schema_: dict[str, Any] | None = Field(alias="schema")


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl
    description: WebhookDescription = ""
    event_types: SubscribedEventTypes


class WebhookUpdate(BaseModel):
    """A partial change: fields left out stay. Setting `enabled` to true re-enables a webhook
    that was disabled after failing."""

    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl | None = None
    description: WebhookDescription | None = None
    event_types: SubscribedEventTypes | None = None
    enabled: Annotated[bool, Field(strict=True)] | None = None

    @field_validator("url", "description", "event_types", "enabled", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        return reject_null(value)

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


WebhookHealth = Literal["healthy", "failing", "disabled"]


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None = Field(
        description="When the current run of failed attempts began; null while healthy."
    )
    failure_count: int = Field(description="Failed attempts in a row since the last success.")
    created_at: datetime
    updated_at: datetime

    @computed_field(  # type: ignore[prop-decorator]
        description="`healthy`; `failing` (see `failing_since` and `failure_count`); or "
        "`disabled` (see `disabled_reason`)."
    )
    @property
    def health(self) -> WebhookHealth:
        if not self.enabled:
            return "disabled"
        return "failing" if self.failing_since is not None else "healthy"


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempted_at: datetime
    duration_ms: int
    response_status: int | None
    response_body: str
    error: str | None


class DeliveryRead(BaseModel):
    id: str
    event_id: str
    event_type: str
    webhook_id: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    created_at: datetime


class DeliveryDetail(DeliveryRead):
    attempts: list[AttemptRead]


class RecoveryCreate(BaseModel):
    """Which failed deliveries to send again: those created in `[since, until)`."""

    model_config = ConfigDict(extra="forbid")

    since: Timestamp = Field(description="RFC 3339; not in the future.")
    until: Timestamp | None = Field(
        default=None, description="RFC 3339, after `since`; now when left out or later."
    )


class RecoveryPreview(BaseModel):
    since: datetime
    until: datetime
    deliveries: int = Field(description="Failed deliveries of the webhook in the window.")


class RecoveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    webhook_id: str
    since: datetime
    until: datetime
    status: RecoveryStatus
    total: int = Field(description="Failed deliveries in the window when it was requested.")
    requeued: int = Field(description="Deliveries sent back to the queue so far.")
    created_at: datetime
    finished_at: datetime | None
