"""An integration's secret key: its form, reveal, rotation with a grace period, and storage."""

import base64
import binascii
import dataclasses
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from reflexblue.app import create_app
from reflexblue.core.database import transaction, utcnow
from reflexblue.core.runtime import Runtime
from reflexblue.integrations.service import get_integration, signing_secrets
from tests.conftest import ApiUser
from tests.support.management import INTEGRATIONS_PATH, create_integration

SECRET_FORM = re.compile(r"^whsec_[A-Za-z0-9+/]{43}=$")


def _secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"), validate=True)


async def _reveal(client: httpx.AsyncClient, integration_id: str) -> dict[str, Any]:
    response = await client.get(f"{INTEGRATIONS_PATH}/{integration_id}/secret")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _rotate(client: httpx.AsyncClient, integration_id: str) -> dict[str, Any]:
    response = await client.post(f"{INTEGRATIONS_PATH}/{integration_id}/secret/rotate")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
async def no_grace_client(runtime: Runtime, admin: ApiUser) -> AsyncIterator[httpx.AsyncClient]:
    """An admin client of an application whose rotated secrets expire at once."""
    settings = runtime.settings.model_copy(update={"secret_grace_period": 0})
    app = create_app(settings, dataclasses.replace(runtime, settings=settings))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=admin.headers
    ) as http:
        yield http


async def test_a_new_secret_is_whsec_and_the_base64_of_32_bytes(
    admin_client: httpx.AsyncClient,
) -> None:
    created = await create_integration(admin_client)

    revealed = await _reveal(admin_client, created["id"])

    assert SECRET_FORM.match(revealed["secret"])
    assert len(_secret_bytes(revealed["secret"])) == 32
    assert revealed["previous_secret"] is None
    assert revealed["previous_secret_expires_at"] is None


async def test_reveal_shows_the_same_secret_each_time(admin_client: httpx.AsyncClient) -> None:
    created = await create_integration(admin_client)

    first = await _reveal(admin_client, created["id"])
    second = await _reveal(admin_client, created["id"])

    assert first == second


async def test_each_integration_gets_its_own_secret(admin_client: httpx.AsyncClient) -> None:
    ids = [(await create_integration(admin_client, export_id=f"E{n}"))["id"] for n in range(5)]

    secrets = {(await _reveal(admin_client, integration_id))["secret"] for integration_id in ids}

    assert len(secrets) == 5


async def test_no_integration_response_carries_the_secret(
    admin_client: httpx.AsyncClient,
) -> None:
    created = await create_integration(admin_client)
    secret = (await _reveal(admin_client, created["id"]))["secret"]
    path = f"{INTEGRATIONS_PATH}/{created['id']}"

    responses = [
        await admin_client.get(INTEGRATIONS_PATH),
        await admin_client.get(path),
        await admin_client.patch(path, json={"name": "Renamed"}),
    ]

    for response in responses:
        assert "whsec_" not in response.text
        assert secret.removeprefix("whsec_") not in response.text


async def test_revealing_a_secret_of_an_unknown_integration_is_404(
    admin_client: httpx.AsyncClient,
) -> None:
    response = await admin_client.get(f"{INTEGRATIONS_PATH}/int_nobody/secret")
    rotated = await admin_client.post(f"{INTEGRATIONS_PATH}/int_nobody/secret/rotate")

    assert (response.status_code, rotated.status_code) == (404, 404)


async def test_rotation_makes_a_new_secret_and_keeps_the_old_one_for_the_grace_period(
    admin_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    created = await create_integration(admin_client)
    before = await _reveal(admin_client, created["id"])
    started = utcnow()

    rotated = await _rotate(admin_client, created["id"])

    grace = timedelta(seconds=runtime.settings.secret_grace_period)
    expires_at = datetime.fromisoformat(rotated["previous_secret_expires_at"])
    assert SECRET_FORM.match(rotated["secret"])
    assert rotated["secret"] != before["secret"]
    assert rotated["previous_secret"] == before["secret"]
    assert started + grace <= expires_at <= utcnow() + grace
    assert await _reveal(admin_client, created["id"]) == rotated


async def test_rotation_raises_the_integration_version(admin_client: httpx.AsyncClient) -> None:
    created = await create_integration(admin_client)

    await _rotate(admin_client, created["id"])

    response = await admin_client.get(f"{INTEGRATIONS_PATH}/{created['id']}")
    assert response.json()["version"] == created["version"] + 1


async def test_a_second_rotation_keeps_only_the_secret_just_replaced(
    admin_client: httpx.AsyncClient,
) -> None:
    created = await create_integration(admin_client)
    first = await _rotate(admin_client, created["id"])

    second = await _rotate(admin_client, created["id"])

    assert second["previous_secret"] == first["secret"]
    assert len({first["previous_secret"], first["secret"], second["secret"]}) == 3


async def test_with_no_grace_period_the_previous_secret_is_gone_at_once(
    no_grace_client: httpx.AsyncClient,
) -> None:
    created = await create_integration(no_grace_client)

    rotated = await _rotate(no_grace_client, created["id"])

    assert rotated["previous_secret"] is None
    assert rotated["previous_secret_expires_at"] is None
    assert (await _reveal(no_grace_client, created["id"]))["previous_secret"] is None


async def test_the_previous_secret_signs_until_it_expires_and_not_after(
    admin_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    created = await create_integration(admin_client)
    rotated = await _rotate(admin_client, created["id"])
    expires_at = datetime.fromisoformat(rotated["previous_secret_expires_at"])

    async with transaction(runtime.sessions) as session:
        integration = await get_integration(session, created["id"])
        during = signing_secrets(runtime.box, integration, expires_at - timedelta(seconds=1))
        after = signing_secrets(runtime.box, integration, expires_at)

    assert during == [rotated["secret"], rotated["previous_secret"]]
    assert after == [rotated["secret"]]


def _forms_of(secret: str) -> list[bytes]:
    """Every way the secret could sit in storage: as text, its base64 body, its raw bytes."""
    raw = _secret_bytes(secret)
    return [secret.encode(), secret.removeprefix("whsec_").encode(), raw, binascii.hexlify(raw)]


async def _every_row_as_text(runtime: Runtime) -> str:
    async with runtime.engine.connect() as connection:
        tables = await connection.scalars(
            text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        )
        rows = []
        for table in list(tables):
            result = await connection.scalars(text(f'SELECT t::text FROM "{table}" t'))
            rows += list(result)
    return "\n".join(rows)


def _read_database_files(database: Path) -> bytes:
    """The SQLite file with its WAL and shared-memory files, whichever exist."""
    return b"".join(path.read_bytes() for path in database.parent.glob(f"{database.name}*"))


async def test_no_plaintext_secret_is_stored_anywhere_in_the_database(
    admin_client: httpx.AsyncClient, runtime: Runtime, backend: str
) -> None:
    created = await create_integration(admin_client)
    rotated = await _rotate(admin_client, created["id"])
    secrets = [rotated["secret"], rotated["previous_secret"]]

    if backend == "postgresql":
        stored = (await _every_row_as_text(runtime)).encode()
    else:
        database = Path(str(runtime.engine.url.database))
        # Read the files while the WAL holds the latest pages, then after closing folds it in.
        stored = _read_database_files(database)
        await runtime.close()
        stored += _read_database_files(database)

    assert b"Acme Warehouse" in stored  # the rows really were read
    for secret in secrets:
        for form in _forms_of(secret):
            assert form not in stored
            assert form.lower() not in stored.lower()
