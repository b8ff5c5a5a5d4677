"""Rotating the master key: every sealed value is opened with the current key and sealed again
with the new one, in one transaction together with the key check.

A key the product cannot afford to lose is always written down before the database commits:
the new key file goes to `master.key.new` first and replaces `master.key` only after the
commit. A crash in between leaves a database sealed with the key in `master.key.new`, and
start-up then says to move it over `master.key` (see `keyring.open_secret_box`).
"""

import base64
import binascii
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from reflexblue.audit.service import CLI_ACTOR, record
from reflexblue.core.crypto import MASTER_KEY_BYTES, SecretBox
from reflexblue.core.database import Base, serialise_first_start, transaction
from reflexblue.core.errors import MasterKeyError, ValidationFailed
from reflexblue.core.keyring import KEY_CHECK_NAME, SystemValue, pending_key_file
from reflexblue.core.runtime import start_runtime
from reflexblue.core.settings import Settings
from reflexblue.integrations.models import Integration

# The same binding of a ciphertext to its row that the integrations' own code uses.
from reflexblue.integrations.service import _secret_context as secret_context

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RotationOutcome:
    secrets_resealed: int
    # Where the new key was written, or None when the operator keeps it in configuration.
    key_file: Path | None


def new_master_key() -> bytes:
    return secrets.token_bytes(MASTER_KEY_BYTES)


def parse_new_master_key(text: str) -> bytes:
    """The new key as given on standard input; the messages never repeat what was given."""
    given = text.strip()
    if not given:
        raise ValidationFailed(
            f"--new-key-stdin: standard input is empty; pipe the base64 of {MASTER_KEY_BYTES} "
            "random bytes, such as `openssl rand -base64 32`"
        )
    try:
        key = base64.b64decode(given, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed("--new-key-stdin: the new key is not valid base64") from None
    if len(key) != MASTER_KEY_BYTES:
        raise ValidationFailed(
            f"--new-key-stdin: the new key must be the base64 of {MASTER_KEY_BYTES} bytes, "
            f"not {len(key)}"
        )
    return key


def encode_master_key(key: bytes) -> str:
    return base64.b64encode(key).decode()


async def rotate_master_key(
    settings: Settings, new_key: bytes, before_commit: Callable[[], None] = lambda: None
) -> RotationOutcome:
    """Re-seal every secret under `new_key`; `before_commit` runs once the work is done and just
    before the commit, so the caller can put the new key somewhere safe first."""
    runtime = await start_runtime(settings)
    try:
        new_box = SecretBox(new_key)
        if _same_key(runtime.box, new_box):
            raise ValidationFailed("the new master key is the current one; nothing to rotate")
        key_file = None if settings.master_key is not None else settings.master_key_file
        async with transaction(runtime.sessions) as session:
            count = await _reseal_integration_secrets(session, runtime.box, new_box)
            await _replace_key_check(session, new_box)
            record(
                session,
                CLI_ACTOR,
                "master_key.rotated",
                target_type="installation",
                target_id="master_key",
                changes={"secrets_resealed": {"to": count}},
            )
            if key_file is not None:
                _write_key_file(pending_key_file(key_file), new_key)
            before_commit()
        if key_file is not None:
            _promote_pending_key_file(key_file)
    finally:
        await runtime.close()
    logger.info("master key rotated", extra={"secrets_resealed": count})
    return RotationOutcome(secrets_resealed=count, key_file=key_file)


def _same_key(current: SecretBox, new: SecretBox) -> bool:
    try:
        new.verify_key_check(current.make_key_check())
    except MasterKeyError:
        return False
    return True


async def _reseal_integration_secrets(
    session: AsyncSession, old_box: SecretBox, new_box: SecretBox
) -> int:
    """Every integration's secret and previous secret; the version stays, since the secrets
    themselves do not change."""
    query = select(
        Integration.id, Integration.secret_sealed, Integration.previous_secret_sealed
    ).with_for_update()
    rows = (await session.execute(query)).all()
    if not rows:
        return 0
    changes = [
        {
            "row_id": row.id,
            "new_secret": _reseal(old_box, new_box, row.secret_sealed, row.id),
            "new_previous": (
                None
                if row.previous_secret_sealed is None
                else _reseal(old_box, new_box, row.previous_secret_sealed, row.id)
            ),
        }
        for row in rows
    ]
    # Core UPDATE rather than the ORM, which would bump each integration's version.
    table = Base.metadata.tables[Integration.__tablename__]
    statement = (
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values(
            secret_sealed=bindparam("new_secret"), previous_secret_sealed=bindparam("new_previous")
        )
    )
    await session.execute(statement, changes)
    return sum(1 + (change["new_previous"] is not None) for change in changes)


def _reseal(old_box: SecretBox, new_box: SecretBox, sealed: bytes, integration_id: str) -> bytes:
    context = secret_context(integration_id)
    try:
        plaintext = old_box.open(sealed, context)
    except MasterKeyError:
        raise MasterKeyError(
            f"the secret of integration {integration_id} does not open with the current key; "
            "nothing was changed"
        ) from None
    return new_box.seal(plaintext, context)


async def _replace_key_check(session: AsyncSession, new_box: SecretBox) -> None:
    await serialise_first_start(session)
    stored = await session.get(SystemValue, KEY_CHECK_NAME, with_for_update=True)
    if stored is None:
        session.add(SystemValue(name=KEY_CHECK_NAME, value=new_box.make_key_check()))
    else:
        stored.value = new_box.make_key_check()
    await session.flush()


def _write_key_file(path: Path, key: bytes) -> None:
    """Written and flushed to disk before the commit; a stale file of an earlier attempt that
    never committed is replaced."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(encode_master_key(key) + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.chmod(path, 0o600)


def _promote_pending_key_file(key_file: Path) -> None:
    os.replace(pending_key_file(key_file), key_file)
    folder = os.open(key_file.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
