"""The External API's OpenAPI document and its docs page."""

import re
from typing import Any

import httpx

from tests.external.conftest import API

OPERATION_IDS = {
    ("get", "/integration"): "getIntegration",
    ("get", "/event-types"): "listEventTypes",
    ("get", "/webhooks"): "listWebhooks",
    ("post", "/webhooks"): "createWebhook",
    ("get", "/webhooks/{id}"): "getWebhook",
    ("patch", "/webhooks/{id}"): "updateWebhook",
    ("delete", "/webhooks/{id}"): "deleteWebhook",
    ("post", "/webhooks/{id}/test"): "testWebhook",
    ("get", "/webhooks/{id}/deliveries"): "listWebhookDeliveries",
    ("get", "/deliveries/{id}"): "getDelivery",
    ("post", "/deliveries/{id}/retry"): "retryDelivery",
    ("get", "/webhooks/{id}/recover"): "previewWebhookRecovery",
    ("post", "/webhooks/{id}/recover"): "recoverWebhook",
    ("get", "/recoveries/{id}"): "getRecovery",
}


async def _document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }


async def test_every_route_has_its_stable_operation_id(client: httpx.AsyncClient) -> None:
    operations = _operations(await _document(client))

    assert {key: op["operationId"] for key, op in operations.items()} == OPERATION_IDS


async def test_every_route_documents_its_errors_as_problem_details(
    client: httpx.AsyncClient,
) -> None:
    operations = _operations(await _document(client))

    for (method, path), operation in operations.items():
        errors = {int(code): body for code, body in operation["responses"].items() if code >= "4"}
        assert {401, 422, 429} <= set(errors), (method, path)
        if "{id}" in path:
            assert 404 in errors, (method, path)
        if method in ("post", "patch"):
            assert {400, 413, 415} <= set(errors), (method, path)
        for body in errors.values():
            schema = body["content"]["application/problem+json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Problem"}


async def test_every_post_documents_the_idempotency_key(client: httpx.AsyncClient) -> None:
    operations = _operations(await _document(client))

    for (method, _), operation in operations.items():
        if method == "post":
            names = {parameter["name"] for parameter in operation.get("parameters", [])}
            assert "Idempotency-Key" in names


async def test_every_list_takes_a_cursor(client: httpx.AsyncClient) -> None:
    operations = _operations(await _document(client))

    for (method, path), operation in operations.items():
        if operation["operationId"].startswith("list"):
            names = {parameter["name"] for parameter in operation["parameters"]}
            assert {"limit", "cursor"} <= names, (method, path)


async def test_bearer_authentication_is_documented(client: httpx.AsyncClient) -> None:
    document = await _document(client)

    scheme = document["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")


async def test_docs_page_loads_everything_from_the_product_itself(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get(f"{API}/docs")

    assert page.status_code == 200
    sources = re.findall(r'(?:src|href|spec-url)="([^"]+)"', page.text)
    assert sources == ["openapi.json", "static/redoc.standalone.js"]
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "http" not in policy
    script = await client.get(f"{API}/static/redoc.standalone.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
