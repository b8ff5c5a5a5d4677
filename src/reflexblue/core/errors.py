"""The errors services raise. Routes, pages and the CLI translate them; none of them knows HTTP."""

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    title = "Request failed"

    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class ValidationFailed(DomainError):
    title = "Invalid input"


class NotFound(DomainError):
    title = "Not found"


class Conflict(DomainError):
    title = "Conflict"


class PreconditionFailed(DomainError):
    """The caller acted on a version of a record that has changed since."""

    title = "Precondition failed"


class Unauthenticated(DomainError):
    title = "Authentication required"


class Forbidden(DomainError):
    title = "Forbidden"


class MasterKeyError(Exception):
    """The master key is missing or does not open this database's secrets."""


class ConfigurationError(Exception):
    """The configuration points somewhere the product cannot work with."""
