"""The master key: generated safely, required to open an existing database, checked at start-up."""

import base64
import os
import stat

import pytest

from reflexblue.audit.service import CLI_ACTOR
from reflexblue.core.crypto import MASTER_KEY_BYTES, SecretBox
from reflexblue.core.database import transaction
from reflexblue.core.errors import MasterKeyError
from reflexblue.core.runtime import start_runtime
from reflexblue.core.settings import Settings
from reflexblue.integrations.schemas import IntegrationCreate
from reflexblue.integrations.service import create_integration, reveal_secret


def _with_key(settings: Settings, key: str) -> Settings:
    """The same installation, with REFLEXBLUE_MASTER_KEY set to `key`."""
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("REFLEXBLUE_MASTER_KEY", key)
        return Settings(
            _env_file=None, data_dir=settings.data_dir, database_url=settings.database_url
        )


def _new_key() -> str:
    return base64.b64encode(os.urandom(MASTER_KEY_BYTES)).decode()


async def _store_a_secret(settings: Settings) -> tuple[str, str]:
    """Start once, create an integration, and return its id and secret."""
    runtime = await start_runtime(settings)
    try:
        async with transaction(runtime.sessions) as session:
            data = IntegrationCreate(name="Acme", external_id="acme", export_id="ACME")
            integration = await create_integration(session, runtime.box, data, CLI_ACTOR)
            revealed = await reveal_secret(session, runtime.box, integration.id, CLI_ACTOR)
    finally:
        await runtime.close()
    return integration.id, revealed.secret


async def test_a_generated_key_file_is_readable_by_its_owner_only(settings: Settings) -> None:
    runtime = await start_runtime(settings)
    await runtime.close()

    mode = stat.S_IMODE(settings.master_key_file.stat().st_mode)
    key = base64.b64decode(settings.master_key_file.read_text().strip(), validate=True)
    assert mode == 0o600
    assert len(key) == MASTER_KEY_BYTES


async def test_a_restart_with_the_same_key_file_opens_the_same_secrets(
    settings: Settings,
) -> None:
    integration_id, secret = await _store_a_secret(settings)

    runtime = await start_runtime(settings)
    try:
        async with transaction(runtime.sessions) as session:
            revealed = await reveal_secret(session, runtime.box, integration_id, CLI_ACTOR)
    finally:
        await runtime.close()

    assert revealed.secret == secret


async def test_a_key_from_the_environment_writes_no_key_file(settings: Settings) -> None:
    keyed = _with_key(settings, _new_key())

    await _store_a_secret(keyed)

    assert not keyed.master_key_file.exists()


async def test_a_wrong_key_for_an_existing_database_fails_at_start_up(
    settings: Settings,
) -> None:
    await _store_a_secret(_with_key(settings, _new_key()))

    with pytest.raises(MasterKeyError, match="does not match"):
        await start_runtime(_with_key(settings, _new_key()))


async def test_a_replaced_key_file_fails_at_start_up(settings: Settings) -> None:
    await _store_a_secret(settings)
    settings.master_key_file.write_text(_new_key())

    with pytest.raises(MasterKeyError, match="does not match"):
        await start_runtime(settings)


async def test_a_missing_key_for_an_existing_database_fails_at_start_up(
    settings: Settings,
) -> None:
    await _store_a_secret(settings)
    settings.master_key_file.unlink()

    with pytest.raises(MasterKeyError, match="REFLEXBLUE_MASTER_KEY"):
        await start_runtime(settings)

    assert not settings.master_key_file.exists()


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("not base64 at all!", "not valid base64"),
        (base64.b64encode(b"short").decode(), "32 bytes, not 5"),
        (base64.b64encode(bytes(33)).decode(), "32 bytes, not 33"),
        ("", "32 bytes, not 0"),
    ],
)
async def test_a_malformed_environment_key_fails_at_start_up_with_a_clear_message(
    settings: Settings, key: str, message: str
) -> None:
    with pytest.raises(MasterKeyError, match=message):
        await start_runtime(_with_key(settings, key))


async def test_a_malformed_key_file_names_the_file(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.master_key_file.write_text("garbage")

    with pytest.raises(MasterKeyError, match=r"master\.key"):
        await start_runtime(settings)


def test_a_sealed_secret_opens_only_in_its_own_context() -> None:
    box = SecretBox(os.urandom(MASTER_KEY_BYTES))
    sealed = box.seal(b"whsec_example", "integration:int_a:secret")

    assert box.open(sealed, "integration:int_a:secret") == b"whsec_example"
    with pytest.raises(MasterKeyError):
        box.open(sealed, "integration:int_b:secret")


def test_sealing_twice_gives_different_ciphertexts_without_the_plaintext() -> None:
    box = SecretBox(os.urandom(MASTER_KEY_BYTES))

    first, second = box.seal(b"whsec_example", "c"), box.seal(b"whsec_example", "c")

    assert first != second
    assert b"whsec_example" not in first + second


def test_a_box_refuses_a_key_of_the_wrong_length() -> None:
    with pytest.raises(MasterKeyError, match="32 bytes"):
        SecretBox(bytes(16))
