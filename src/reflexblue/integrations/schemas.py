"""The shapes an integration takes at the doors: what may come in, what goes out."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from reflexblue.core.validation import identifier_rule, reject_null, text_rule

NAME_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000
ID_MAX_LENGTH = 100

_STRICT_STRING = Field(strict=True)

Name = Annotated[
    str, _STRICT_STRING, AfterValidator(text_rule(max_length=NAME_MAX_LENGTH, required=True))
]
Description = Annotated[
    str,
    _STRICT_STRING,
    AfterValidator(text_rule(max_length=DESCRIPTION_MAX_LENGTH, required=False, multiline=True)),
]
ExternalId = Annotated[
    str, _STRICT_STRING, AfterValidator(text_rule(max_length=ID_MAX_LENGTH, required=True))
]
ExportId = Annotated[
    str,
    _STRICT_STRING,
    AfterValidator(text_rule(max_length=ID_MAX_LENGTH, required=True)),
    AfterValidator(identifier_rule),
]


class IntegrationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = ""
    external_id: ExternalId
    export_id: ExportId


class IntegrationUpdate(BaseModel):
    """A partial change: fields left out stay as they are; a required one cannot be nulled."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None
    external_id: ExternalId | None = None
    export_id: ExportId | None = None

    @field_validator("name", "description", "external_id", "export_id", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        return reject_null(value)

    def changes(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class IntegrationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str
    external_id: str
    export_id: str
    created_at: datetime
    updated_at: datetime
    version: int


class SecretRead(BaseModel):
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
