"""Finding the master key and proving it is the one this database was sealed with."""

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

_KEY_CHECK_NAME = "master_key_check"


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
            session.add(SystemValue(name=_KEY_CHECK_NAME, value=box.make_key_check()))
        else:
            box.verify_key_check(key_check)
    return box


async def _load_key_check(session: AsyncSession) -> bytes | None:
    stored = await session.scalar(select(SystemValue).where(SystemValue.name == _KEY_CHECK_NAME))
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
