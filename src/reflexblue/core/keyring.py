"""Finding the master key and proving it is the one this database was sealed with."""

from pathlib import Path

from sqlalchemy import LargeBinary, String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from reflexblue.core.crypto import (
    SecretBox,
    decode_master_key,
    read_master_key_file,
    write_new_master_key_file,
)
from reflexblue.core.database import Base, serialise_first_start, transaction
from reflexblue.core.errors import MasterKeyError
from reflexblue.core.settings import Settings

KEY_CHECK_NAME = "master_key_check"


class SystemValue(Base):
    """Small named values the installation keeps about itself."""

    __tablename__ = "system_values"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)


async def open_secret_box(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> SecretBox:
    """The box for this database's secrets; raises MasterKeyError rather than guess."""
    async with transaction(sessions) as session:
        await serialise_first_start(session)
        key_check = await _load_key_check(session)
        key = _find_master_key(settings, database_is_keyed=key_check is not None)
        box = SecretBox(key)
        if key_check is None:
            session.add(SystemValue(name=KEY_CHECK_NAME, value=box.make_key_check()))
        else:
            _verify_or_explain(box, key_check, settings)
    return box


def pending_key_file(key_file: Path) -> Path:
    """Where `reflexblue rotate-master-key` writes the new key before its commit."""
    return key_file.with_name(key_file.name + ".new")


def _verify_or_explain(box: SecretBox, key_check: bytes, settings: Settings) -> None:
    """A rotation that committed but stopped before replacing the key file leaves the database
    sealed with the pending key: say exactly that rather than only "wrong key"."""
    try:
        box.verify_key_check(key_check)
    except MasterKeyError:
        pending = pending_key_file(settings.master_key_file)
        if settings.master_key is None and _opens(pending, key_check):
            raise MasterKeyError(
                f"a master key rotation stopped after re-sealing the database but before "
                f"replacing the key file: move {pending} over {settings.master_key_file} "
                "and start again"
            ) from None
        raise


def _opens(key_file: Path, key_check: bytes) -> bool:
    try:
        SecretBox(read_master_key_file(key_file)).verify_key_check(key_check)
    except (MasterKeyError, OSError):
        return False
    return True


async def _load_key_check(session: AsyncSession) -> bytes | None:
    stored = await session.scalar(select(SystemValue).where(SystemValue.name == KEY_CHECK_NAME))
    return stored.value if stored else None


def _find_master_key(settings: Settings, *, database_is_keyed: bool) -> bytes:
    if settings.master_key is not None:
        return decode_master_key(settings.master_key.get_secret_value())
    if settings.master_key_file.exists():
        return read_master_key_file(settings.master_key_file)
    if database_is_keyed:
        raise MasterKeyError(
            f"this database's secrets are sealed with a master key, but neither "
            f"REFLEXBLUE_MASTER_KEY nor {settings.master_key_file} is there; "
            "provide the original key"
        )
    return write_new_master_key_file(settings.master_key_file)
