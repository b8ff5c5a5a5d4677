"""Input and output shapes for users and their Management API tokens."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from reflexblue.accounts.models import Role
from reflexblue.core.validation import text_rule

PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 1024

Username = Annotated[
    str,
    Field(strict=True),
    AfterValidator(text_rule(max_length=100, required=True)),
    StringConstraints(pattern=r"^[A-Za-z0-9_.@-]+$"),
]
Password = Annotated[
    str, Field(strict=True, min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)
]
TokenName = Annotated[
    str, Field(strict=True), AfterValidator(text_rule(max_length=100, required=True))
]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    password: Password
    role: Role = Role.ADMIN


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TokenName


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    last_four: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
