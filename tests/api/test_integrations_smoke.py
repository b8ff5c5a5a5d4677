import httpx


async def test_created_integration_is_listed(admin_client: httpx.AsyncClient) -> None:
    body = {"name": "Acme", "external_id": "acme-1", "export_id": "ACME"}

    created = await admin_client.post("/api/management/integrations", json=body)
    listed = await admin_client.get("/api/management/integrations")

    assert created.status_code == 201
    assert [item["export_id"] for item in listed.json()["items"]] == ["ACME"]
