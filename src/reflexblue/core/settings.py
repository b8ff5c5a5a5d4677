"""Configuration from `REFLEXBLUE_*` environment variables and an optional `.env` file."""

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_RETRY_SCHEDULE_SECONDS = (5, 300, 1800, 7200, 18000, 36000, 36000)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REFLEXBLUE_", env_file=".env", extra="ignore", frozen=True
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
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("retry_schedule")
    @classmethod
    def _check_retry_schedule(cls, value: str) -> str:
        _parse_retry_schedule(value)
        return value

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
