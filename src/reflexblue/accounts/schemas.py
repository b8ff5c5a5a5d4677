"""Input and output shapes for users and their Management API tokens."""

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from reflexblue.accounts.models import Role
from reflexblue.core.validation import text_rule

PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 1024

_USERNAME_CHARACTERS = re.compile(r"[A-Za-z0-9_.@-]+")


def _username_characters(value: str) -> str:
    if not _USERNAME_CHARACTERS.fullmatch(value):
        raise PydanticCustomError(
            "username_characters", "Use only letters (A–Z, a–z), digits and . _ @ -"
        )
    return value


Username = Annotated[
    str,
    Field(strict=True),
    AfterValidator(text_rule(max_length=100, required=True)),
    AfterValidator(_username_characters),
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
