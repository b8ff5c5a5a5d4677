"""Small helpers for tests that drive the Management API."""

from typing import Any

import httpx

INTEGRATIONS_PATH = "/api/management/integrations"
AUDIT_LOG_PATH = "/api/management/audit-log"
PROBLEM_CONTENT_TYPE = "application/problem+json"


def integration_body(**overrides: Any) -> dict[str, Any]:
    """A valid create request; keyword arguments replace or add fields."""
    body: dict[str, Any] = {
        "name": "Acme Warehouse",
        "description": "Ships the orders",
        "external_id": "acme-1",
        "export_id": "ACME",
    }
    body.update(overrides)
    return body


async def create_integration(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post(INTEGRATIONS_PATH, json=integration_body(**overrides))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def read_integration(client: httpx.AsyncClient, integration_id: str) -> dict[str, Any]:
    response = await client.get(f"{INTEGRATIONS_PATH}/{integration_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def list_all_integrations(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get(INTEGRATIONS_PATH, params={"limit": 200})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def assert_problem(response: httpx.Response, status: int, *, field: str | None = None) -> None:
    """The response is RFC 9457 problem details with this status (and an error on `field`)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_CONTENT_TYPE)
    body = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    assert body["title"]
    assert body["detail"]
    if field is not None:
        fields = [error["field"] for error in body["errors"]]
        assert field in fields, body
        assert all(error["message"] for error in body["errors"])
