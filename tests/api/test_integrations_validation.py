"""Bad input to the integration endpoints: a 422 naming the field, and nothing stored changes."""

import json
from typing import Any

import httpx
import pytest

from tests.support.management import (
    INTEGRATIONS_PATH,
    assert_problem,
    create_integration,
    integration_body,
    list_all_integrations,
    read_integration,
)

WRONG_JSON_TYPES: list[Any] = [7, 1.5, True, ["ACME"], {"value": "ACME"}]
REQUIRED_FIELDS = ("name", "external_id", "export_id")
TEXT_FIELDS = ("name", "description", "external_id", "export_id")


def _bad_values(field: str) -> list[Any]:
    """Every value `field` must refuse, from every family the rules cover."""
    limits = {"name": 200, "description": 2000, "external_id": 100, "export_id": 100}
    values: list[Any] = [
        "x" * (limits[field] + 1),
        "ab\x00cd",
        "ab\x07cd",
        "bad\ud800",
        *WRONG_JSON_TYPES,
    ]
    if field != "description":
        values += ["", " \t \u00a0 ", "two\nlines", "tab\there"]
    if field == "export_id":
        values += [
            "ACME-1",
            "ACME 1",
            "Müller",
            "ACME٣",
            "ACME😀",
            "ACME.1",
            "'; DROP TABLE integrations;--",
            "<b>ACME</b>",
        ]
    return values


async def _send(client: httpx.AsyncClient, method: str, path: str, body: Any) -> httpx.Response:
    # Encoded by hand, so that values httpx would refuse to encode (lone surrogates) go out too.
    return await client.request(
        method, path, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )


@pytest.mark.parametrize("field", TEXT_FIELDS)
async def test_create_refuses_each_bad_value_and_stores_nothing(
    admin_client: httpx.AsyncClient, field: str
) -> None:
    existing = await create_integration(admin_client, export_id="KEEP")

    for value in _bad_values(field):
        body = integration_body(**{field: value})
        response = await _send(admin_client, "POST", INTEGRATIONS_PATH, body)

        assert_problem(response, 422, field=field)
        assert await list_all_integrations(admin_client) == [existing], repr(value)


@pytest.mark.parametrize("field", TEXT_FIELDS)
async def test_patch_refuses_each_bad_value_and_changes_nothing(
    admin_client: httpx.AsyncClient, field: str
) -> None:
    existing = await create_integration(admin_client)
    path = f"{INTEGRATIONS_PATH}/{existing['id']}"

    for value in _bad_values(field):
        response = await _send(admin_client, "PATCH", path, {field: value})

        assert_problem(response, 422, field=field)
        assert await read_integration(admin_client, existing["id"]) == existing, repr(value)


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
async def test_create_without_a_required_field_names_it(
    admin_client: httpx.AsyncClient, field: str
) -> None:
    body = integration_body()
    del body[field]

    response = await _send(admin_client, "POST", INTEGRATIONS_PATH, body)

    assert_problem(response, 422, field=field)
    assert await list_all_integrations(admin_client) == []


@pytest.mark.parametrize("field", TEXT_FIELDS)
async def test_create_refuses_null(admin_client: httpx.AsyncClient, field: str) -> None:
    response = await _send(
        admin_client, "POST", INTEGRATIONS_PATH, integration_body(**{field: None})
    )

    assert_problem(response, 422, field=field)
    assert await list_all_integrations(admin_client) == []


@pytest.mark.parametrize("field", TEXT_FIELDS)
async def test_patch_refuses_null_rather_than_erasing(
    admin_client: httpx.AsyncClient, field: str
) -> None:
    existing = await create_integration(admin_client)

    response = await _send(
        admin_client, "PATCH", f"{INTEGRATIONS_PATH}/{existing['id']}", {field: None}
    )

    assert_problem(response, 422, field=field)
    assert await read_integration(admin_client, existing["id"]) == existing


@pytest.mark.parametrize("unknown", ["secret", "id", "version", "created_at", "Name"])
async def test_create_refuses_unknown_fields_by_name(
    admin_client: httpx.AsyncClient, unknown: str
) -> None:
    response = await _send(
        admin_client, "POST", INTEGRATIONS_PATH, integration_body(**{unknown: "x"})
    )

    assert_problem(response, 422, field=unknown)
    assert "not known" in response.json()["errors"][0]["message"]
    assert await list_all_integrations(admin_client) == []


@pytest.mark.parametrize("unknown", ["secret", "version", "export"])
async def test_patch_refuses_unknown_fields_by_name(
    admin_client: httpx.AsyncClient, unknown: str
) -> None:
    existing = await create_integration(admin_client)

    response = await _send(
        admin_client, "PATCH", f"{INTEGRATIONS_PATH}/{existing['id']}", {unknown: "x"}
    )

    assert_problem(response, 422, field=unknown)
    assert await read_integration(admin_client, existing["id"]) == existing


@pytest.mark.parametrize("body", [[], "ACME", 42, None, True], ids=repr)
async def test_a_body_that_is_not_an_object_is_422(
    admin_client: httpx.AsyncClient, body: Any
) -> None:
    response = await _send(admin_client, "POST", INTEGRATIONS_PATH, body)

    assert_problem(response, 422, field="body")
    assert await list_all_integrations(admin_client) == []


async def test_every_bad_field_is_named_at_once(admin_client: httpx.AsyncClient) -> None:
    body = {"name": "", "description": 3, "external_id": "e" * 101, "export_id": "A-B"}

    response = await _send(admin_client, "POST", INTEGRATIONS_PATH, body)

    assert_problem(response, 422)
    named = {error["field"] for error in response.json()["errors"]}
    assert named == set(TEXT_FIELDS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Müller & Søn 😀"),
        ("description", "line one\nline two\twith a tab"),
        ("external_id", "acme-1 / eu"),
        ("export_id", "Acme_2024_eu"),
    ],
)
async def test_values_within_the_rules_are_kept_as_given(
    admin_client: httpx.AsyncClient, field: str, value: str
) -> None:
    created = await create_integration(admin_client, **{field: value})

    assert (await read_integration(admin_client, created["id"]))[field] == value
