"""Configuration from `REFLEXBLUE_*` environment variables and an optional `.env` file."""

import base64
import binascii
import os
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_RETRY_SCHEDULE_SECONDS = (5, 300, 1800, 7200, 18000, 36000, 36000)
OPERATOR_SECRET_PREFIX = "whsec_"  # noqa: S105 - the public prefix of every signing secret
OPERATOR_SECRET_MIN_BYTES = 24


def _all_cores_but_one() -> int:
    return max(1, (os.cpu_count() or 1) - 1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REFLEXBLUE_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        # A refused value may be a password or a secret: errors name the setting, not the value.
        hide_input_in_errors=True,
    )

    data_dir: Path = Path("./data")
    database_url: str | None = None
    master_key: SecretStr | None = None
    admin_password: SecretStr | None = None
    retry_schedule: str = ",".join(str(s) for s in DEFAULT_RETRY_SCHEDULE_SECONDS)
    delivery_timeout: float = Field(default=15.0, gt=0, le=300)
    disable_after: int = Field(default=432_000, ge=60)
    secret_grace_period: int = Field(default=86_400, ge=0, le=30 * 86_400)
    allow_private_targets: bool = False
    # Finished deliveries (and their attempts) older than this are pruned by the worker.
    delivery_retention_days: int = Field(default=30, ge=1, le=3650)
    max_webhooks_per_integration: int = Field(default=50, ge=1, le=10_000)
    # External API requests per API key: a steady rate per second and the burst above it.
    external_rate_limit: float = Field(default=50.0, gt=0)
    external_rate_burst: int = Field(default=100, ge=1)
    # External API keys that fail (unknown, revoked or expired), per client address: a steady
    # rate per second and the burst above it. Beyond them the address gets 429 for any key this
    # process has not seen succeed lately, before the database is asked.
    external_failed_key_rate: float = Field(default=1.0, gt=0, le=10_000)
    external_failed_key_burst: int = Field(default=10, ge=1, le=100_000)
    # Console sign-ins: the failures a user name or a client address may make before it is
    # locked out, the first lockout in seconds, and the longest, which each further failure
    # doubles towards.
    login_failures_allowed: int = Field(default=5, ge=1, le=1000)
    login_lockout_seconds: float = Field(default=30.0, gt=0, le=86_400)
    login_lockout_max_seconds: float = Field(default=900.0, gt=0, le=7 * 86_400)
    # Password checks (argon2id, a core for a few hundred milliseconds each) that may run at
    # once; a sign-in beyond them is refused with 429 rather than queued. One fewer than the
    # machine's cores, so that a flood of sign-ins leaves a core to every other request.
    password_checks_at_once: int = Field(default_factory=_all_cores_but_one, ge=1, le=256)
    # Where `reflexblue worker` serves /metrics and /healthz; off unless set, since two workers
    # on one machine cannot share a port.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65_535)
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Where `webhook.disabled` events go, signed with the secret below; empty turns them off.
    operator_webhook_url: str = ""
    # Checked even when left out, since the URL above makes it required.
    operator_webhook_secret: SecretStr | None = Field(default=None, validate_default=True)

    @field_validator("retry_schedule")
    @classmethod
    def _check_retry_schedule(cls, value: str) -> str:
        _parse_retry_schedule(value)
        return value

    @field_validator("login_lockout_max_seconds")
    @classmethod
    def _check_longest_lockout(cls, value: float, info: ValidationInfo) -> float:
        first = info.data.get("login_lockout_seconds")
        if first is not None and value < first:
            raise ValueError(
                f"must be at least REFLEXBLUE_LOGIN_LOCKOUT_SECONDS ({first:g}); it is the "
                "longest lockout, which the first one doubles towards"
            )
        return value

    @field_validator("worker_metrics_port", mode="before")
    @classmethod
    def _blank_port_is_off(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("sqlite", "postgresql", "postgres://")):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        try:
            make_url(value.strip())
        except (ArgumentError, ValueError):
            # The URL itself is left out of the message: it may hold a password.
            raise ValueError("is not a valid URL, such as postgresql://user@host/name") from None
        return value.strip()

    @field_validator("operator_webhook_url")
    @classmethod
    def _check_operator_webhook_url(cls, value: str) -> str:
        value = value.strip()
        if value:
            _check_http_url(value)
        return value

    @field_validator("operator_webhook_secret")
    @classmethod
    def _check_operator_webhook_secret(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        text = value.get_secret_value().strip() if value is not None else ""
        if not text:
            if info.data.get("operator_webhook_url"):
                raise ValueError(
                    "is required when REFLEXBLUE_OPERATOR_WEBHOOK_URL is set: whsec_ followed "
                    f"by base64 of at least {OPERATOR_SECRET_MIN_BYTES} random bytes"
                )
            return None
        # The secret itself stays out of every message.
        _check_signing_secret(text)
        return SecretStr(text)

    @cached_property
    def retry_schedule_seconds(self) -> tuple[int, ...]:
        return _parse_retry_schedule(self.retry_schedule)

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the async driver each backend needs."""
        if self.database_url is None:
            return f"sqlite+aiosqlite:///{(self.data_dir / 'reflexblue.sqlite3').resolve()}"
        url = self.database_url
        for plain in ("postgres://", "postgresql://", "postgresql+psycopg://"):
            if url.startswith(plain):
                return "postgresql+asyncpg://" + url[len(plain) :]
        if url.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
        return url

    @property
    def master_key_file(self) -> Path:
        return self.data_dir / "master.key"


def _parse_retry_schedule(value: str) -> tuple[int, ...]:
    parts = [part.strip() for part in value.split(",") if part.strip()]
    if not parts:
        raise ValueError("needs at least one delay in seconds, such as '5,300,1800'")
    try:
        delays = tuple(int(part) for part in parts)
    except ValueError:
        raise ValueError(
            "must be whole seconds separated by commas, such as '5,300,1800'"
        ) from None
    if any(delay < 0 for delay in delays):
        raise ValueError("delays may not be negative")
    return delays


def _check_http_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("may not carry a user name or password")


def _check_signing_secret(value: str) -> None:
    if not value.startswith(OPERATOR_SECRET_PREFIX):
        raise ValueError(f"must start with {OPERATOR_SECRET_PREFIX}")
    try:
        key = base64.b64decode(value.removeprefix(OPERATOR_SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"must be {OPERATOR_SECRET_PREFIX} followed by base64") from None
    if len(key) < OPERATOR_SECRET_MIN_BYTES:
        raise ValueError(f"must hold at least {OPERATOR_SECRET_MIN_BYTES} bytes after the prefix")
