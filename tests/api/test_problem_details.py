"""Every error of the Management API is RFC 9457 problem details, never a bare 500."""

from collections.abc import AsyncIterator

import httpx

from tests.support.management import (
    INTEGRATIONS_PATH,
    assert_problem,
    create_integration,
    integration_body,
    list_all_integrations,
    read_integration,
)

MIB = 1024 * 1024


def _json_of_size(size: int) -> bytes:
    """A valid create request padded with spaces to `size` bytes."""
    body = b'{"name": "Big", "external_id": "big", "export_id": "BIG", "description": "x"}'
    return body + b" " * (size - len(body))


async def test_malformed_json_is_400(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.post(
        INTEGRATIONS_PATH,
        content=b'{"name": "Acme", ',
        headers={"Content-Type": "application/json"},
    )

    assert_problem(response, 400)
    assert await list_all_integrations(admin_client) == []


async def test_malformed_json_in_a_patch_is_400_and_changes_nothing(
    admin_client: httpx.AsyncClient,
) -> None:
    created = await create_integration(admin_client)

    response = await admin_client.patch(
        f"{INTEGRATIONS_PATH}/{created['id']}",
        content=b"{'name': 'single quotes'}",
        headers={"Content-Type": "application/json"},
    )

    assert_problem(response, 400)
    assert await read_integration(admin_client, created["id"]) == created


async def test_a_request_without_a_token_is_401_with_www_authenticate(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(INTEGRATIONS_PATH)

    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_an_unknown_route_is_404(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.get("/api/management/no-such-thing")

    assert_problem(response, 404)


async def test_an_unknown_integration_id_is_404_naming_it(
    admin_client: httpx.AsyncClient,
) -> None:
    response = await admin_client.get(f"{INTEGRATIONS_PATH}/int_nobody")

    assert_problem(response, 404)
    assert "int_nobody" in response.json()["detail"]


async def test_ids_no_database_can_hold_are_404_not_500(admin_client: httpx.AsyncClient) -> None:
    for odd in ["%00", "a%00b", "%ED%A0%80", "x" * 500, "%27%20OR%201%3D1--"]:
        response = await admin_client.get(f"{INTEGRATIONS_PATH}/{odd}")

        assert_problem(response, 404)


async def test_a_method_the_route_does_not_have_is_405(admin_client: httpx.AsyncClient) -> None:
    created = await create_integration(admin_client)

    on_collection = await admin_client.delete(INTEGRATIONS_PATH)
    on_item = await admin_client.put(
        f"{INTEGRATIONS_PATH}/{created['id']}", json=integration_body()
    )

    assert_problem(on_collection, 405)
    assert_problem(on_item, 405)
    assert "allow" in on_collection.headers


async def test_a_duplicate_export_id_is_409(admin_client: httpx.AsyncClient) -> None:
    await create_integration(admin_client)

    response = await admin_client.post(INTEGRATIONS_PATH, json=integration_body())

    assert_problem(response, 409, field="export_id")


async def test_a_stale_if_match_is_412(admin_client: httpx.AsyncClient) -> None:
    created = await create_integration(admin_client)

    response = await admin_client.delete(
        f"{INTEGRATIONS_PATH}/{created['id']}", headers={"If-Match": '"7"'}
    )

    assert_problem(response, 412)


async def test_a_body_over_one_mebibyte_is_413_and_stores_nothing(
    admin_client: httpx.AsyncClient,
) -> None:
    response = await admin_client.post(
        INTEGRATIONS_PATH,
        content=_json_of_size(MIB + 1),
        headers={"Content-Type": "application/json"},
    )

    assert_problem(response, 413)
    assert await list_all_integrations(admin_client) == []


async def test_a_body_of_exactly_one_mebibyte_is_accepted(
    admin_client: httpx.AsyncClient,
) -> None:
    response = await admin_client.post(
        INTEGRATIONS_PATH,
        content=_json_of_size(MIB),
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 201


async def test_a_chunked_body_over_one_mebibyte_is_413(admin_client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        # Without a Content-Length the size is only known while reading.
        yield _json_of_size(MIB + 1)

    response = await admin_client.post(
        INTEGRATIONS_PATH, content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert_problem(response, 413)
    assert await list_all_integrations(admin_client) == []


async def test_a_body_that_is_not_json_is_415(admin_client: httpx.AsyncClient) -> None:
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "application/xml"]:
        response = await admin_client.post(
            INTEGRATIONS_PATH,
            content=b'{"name": "Acme", "external_id": "a", "export_id": "A"}',
            headers={"Content-Type": content_type},
        )

        assert_problem(response, 415)
    assert await list_all_integrations(admin_client) == []


async def test_a_body_without_a_content_type_is_415(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.post(
        INTEGRATIONS_PATH, content=b'{"name": "Acme", "external_id": "a", "export_id": "A"}'
    )

    assert_problem(response, 415)


async def test_json_with_a_charset_parameter_is_accepted(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.post(
        INTEGRATIONS_PATH,
        content=b'{"name": "Acme", "external_id": "a", "export_id": "A"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )

    assert response.status_code == 201


async def test_invalid_input_is_422_with_an_error_per_field(
    admin_client: httpx.AsyncClient,
) -> None:
    response = await admin_client.post(INTEGRATIONS_PATH, json=integration_body(export_id="a-b"))

    assert_problem(response, 422, field="export_id")
    assert response.json()["errors"] == [
        {
            "field": "export_id",
            "message": "Use only letters (A–Z, a–z), digits (0–9) and the underscore (_).",
        }
    ]


async def test_openapi_document_lists_the_integration_and_audit_routes(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/management/openapi.json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths["/integrations"]) >= {"get", "post"}
    assert set(paths["/integrations/{id}"]) >= {"get", "patch", "delete"}
    assert "get" in paths["/integrations/{id}/secret"]
    assert "post" in paths["/integrations/{id}/secret/rotate"]
    assert "get" in paths["/audit-log"]
