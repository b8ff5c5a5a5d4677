from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reflexblue.core.database import Base, UTCDateTime, new_id, utcnow


class Integration(Base):
    """One external system's identity: its names, IDs and the sealed secret that signs webhooks."""

    __tablename__ = "integrations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("int"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    external_id: Mapped[str] = mapped_column(String(100))
    export_id: Mapped[str] = mapped_column(String(100))
    # Lower-cased export ID: the unique index on it makes "ABC" and "abc" one integration.
    export_id_key: Mapped[str] = mapped_column(String(100), unique=True)
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    # Every sortable column has an index that ends with the id, the tie-breaker of keyset
    # paging, so a sorted page is an index range scan even with 100,000 rows.
    __table_args__ = (
        Index("ix_integrations_name_id", "name", "id"),
        Index("ix_integrations_external_id_id", "external_id", "id"),
        Index("ix_integrations_export_id_id", "export_id", "id"),
        Index("ix_integrations_created_at_id", "created_at", "id"),
        Index("ix_integrations_updated_at_id", "updated_at", "id"),
    )
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class ApiKey(Base):
    """A credential of the External API. Only its hash is kept; the key is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("key"))
    integration_id: Mapped[str] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    last_four: Mapped[str] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
