"""Creating, reading, changing and deleting integrations through the Management API."""

import asyncio
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, select

from reflexblue.core.runtime import Runtime
from reflexblue.integrations.models import Integration
from tests.support.management import (
    INTEGRATIONS_PATH,
    assert_problem,
    create_integration,
    integration_body,
    list_all_integrations,
    read_integration,
)

READ_FIELDS = {
    "id",
    "name",
    "description",
    "external_id",
    "export_id",
    "created_at",
    "updated_at",
    "version",
}


async def test_create_returns_the_integration_with_location_and_etag(
    admin_client: httpx.AsyncClient,
) -> None:
    response = await admin_client.post(INTEGRATIONS_PATH, json=integration_body())

    assert response.status_code == 201
    created = response.json()
    assert set(created) == READ_FIELDS
    assert created["id"].startswith("int_")
    assert created["version"] == 1
    assert response.headers["location"] == f"{INTEGRATIONS_PATH}/{created['id']}"
    assert response.headers["etag"] == '"1"'


async def test_created_integration_reads_back_from_its_location(
    admin_client: httpx.AsyncClient,
) -> None:
    response = await admin_client.post(INTEGRATIONS_PATH, json=integration_body())

    found = await admin_client.get(response.headers["location"])

    assert found.status_code == 200
    assert found.json() == response.json()
    assert found.headers["etag"] == '"1"'


async def test_create_trims_surrounding_spaces_of_every_field(
    admin_client: httpx.AsyncClient,
) -> None:
    created = await create_integration(
        admin_client,
        name="  Acme  ",
        description="\n Ships \t",
        external_id=" acme-1 ",
        export_id="\tACME ",
    )

    assert (created["name"], created["description"]) == ("Acme", "Ships")
    assert (created["external_id"], created["export_id"]) == ("acme-1", "ACME")


async def test_description_may_be_left_out(admin_client: httpx.AsyncClient) -> None:
    body = integration_body()
    del body["description"]

    response = await admin_client.post(INTEGRATIONS_PATH, json=body)

    assert response.status_code == 201
    assert response.json()["description"] == ""


async def test_timestamps_are_utc_and_equal_on_create(admin_client: httpx.AsyncClient) -> None:
    created = await create_integration(admin_client)

    created_at = datetime.fromisoformat(created["created_at"])
    assert created_at.utcoffset() == timedelta(0)
    assert created["updated_at"] == created["created_at"]


async def test_values_are_at_most_as_long_as_the_limits_allow(
    admin_client: httpx.AsyncClient,
) -> None:
    created = await create_integration(
        admin_client,
        name="n" * 200,
        description="d" * 2000,
        external_id="e" * 100,
        export_id="X" * 100,
    )

    assert await read_integration(admin_client, created["id"]) == created


async def test_sql_and_html_fragments_are_stored_and_returned_literally(
    admin_client: httpx.AsyncClient,
) -> None:
    fragments = {
        "name": "Robert'); DROP TABLE integrations;--",
        "description": "<script>alert('x')</script> &amp; <b>bold</b>",
        "external_id": "1 OR 1=1; --",
    }

    created = await create_integration(admin_client, **fragments)

    stored = await read_integration(admin_client, created["id"])
    assert {field: stored[field] for field in fragments} == fragments
    assert len(await list_all_integrations(admin_client)) == 1


async def test_unknown_integration_is_404(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.get(f"{INTEGRATIONS_PATH}/int_01J00000000000000000000000")

    assert_problem(response, 404)


async def test_patch_changes_only_the_given_fields(admin_client: httpx.AsyncClient) -> None:
    created = await create_integration(admin_client)

    response = await admin_client.patch(
        f"{INTEGRATIONS_PATH}/{created['id']}", json={"name": "  Acme Renamed "}
    )

    assert response.status_code == 200
    updated = response.json()
    assert updated["name"] == "Acme Renamed"
    unchanged = ("description", "external_id", "export_id", "created_at", "id")
    assert {f: updated[f] for f in unchanged} == {f: created[f] for f in unchanged}


async def test_patch_raises_version_and_updated_at_and_sends_the_new_etag(
    admin_client: httpx.AsyncClient,
) -> None:
    created = await create_integration(admin_client)

    response = await admin_client.patch(
        f"{INTEGRATIONS_PATH}/{created['id']}", json={"description": "Changed"}
    )

    updated = response.json()
    assert updated["version"] == 2
    assert response.headers["etag"] == '"2"'
    assert updated["updated_at"] > created["updated_at"]
    assert (await read_integration(admin_client, created["id"])) == updated


async def test_patch_without_a_real_change_keeps_the_version(
    admin_client: httpx.AsyncClient,
) -> None:
    created = await create_integration(admin_client)

    response = await admin_client.patch(
        f"{INTEGRATIONS_PATH}/{created['id']}", json={"name": created["name"]}
    )

    assert response.status_code == 200
    assert response.json() == created


async def test_patch_with_the_current_version_in_if_match_succeeds(
    admin_client: httpx.AsyncClient,
) -> None:
    created = await create_integration(admin_client)

    response = await admin_client.patch(
        f"{INTEGRATIONS_PATH}/{created['id']}",
        json={"name": "New"},
        headers={"If-Match": '"1"'},
    )

    assert response.status_code == 200
    assert response.json()["name"] == "New"


async def test_patch_with_a_stale_version_is_412_and_overwrites_nothing(
    admin_client: httpx.AsyncClient,
) -> None:
    created = await create_integration(admin_client)
    path = f"{INTEGRATIONS_PATH}/{created['id']}"
    first = await admin_client.patch(path, json={"name": "First"}, headers={"If-Match": '"1"'})

    second = await admin_client.patch(path, json={"name": "Second"}, headers={"If-Match": '"1"'})

    assert first.status_code == 200
    assert_problem(second, 412)
    assert await read_integration(admin_client, created["id"]) == first.json()


async def test_if_match_that_names_no_version_is_412(admin_client: httpx.AsyncClient) -> None:
    created = await create_integration(admin_client)

    response = await admin_client.patch(
        f"{INTEGRATIONS_PATH}/{created['id']}",
        json={"name": "New"},
        headers={"If-Match": '"not-a-version"'},
    )

    assert_problem(response, 412)
    assert await read_integration(admin_client, created["id"]) == created


async def test_patch_of_an_unknown_integration_is_404(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.patch(f"{INTEGRATIONS_PATH}/int_missing", json={"name": "X"})

    assert_problem(response, 404)


async def test_delete_removes_the_integration(admin_client: httpx.AsyncClient) -> None:
    created = await create_integration(admin_client)

    response = await admin_client.delete(f"{INTEGRATIONS_PATH}/{created['id']}")

    assert response.status_code == 204
    assert_problem(await admin_client.get(f"{INTEGRATIONS_PATH}/{created['id']}"), 404)
    assert await list_all_integrations(admin_client) == []


async def test_delete_with_a_stale_version_is_412_and_keeps_the_integration(
    admin_client: httpx.AsyncClient,
) -> None:
    created = await create_integration(admin_client)
    path = f"{INTEGRATIONS_PATH}/{created['id']}"
    changed = await admin_client.patch(path, json={"name": "Changed"})

    response = await admin_client.delete(path, headers={"If-Match": '"1"'})

    assert_problem(response, 412)
    assert await read_integration(admin_client, created["id"]) == changed.json()


async def test_delete_with_the_current_version_succeeds(admin_client: httpx.AsyncClient) -> None:
    created = await create_integration(admin_client)

    response = await admin_client.delete(
        f"{INTEGRATIONS_PATH}/{created['id']}", headers={"If-Match": '"1"'}
    )

    assert response.status_code == 204
    assert await list_all_integrations(admin_client) == []


async def test_delete_of_an_unknown_integration_is_404(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.delete(f"{INTEGRATIONS_PATH}/int_missing")

    assert_problem(response, 404)


async def test_export_id_differing_only_in_case_is_409(admin_client: httpx.AsyncClient) -> None:
    await create_integration(admin_client, export_id="ACME")

    response = await admin_client.post(
        INTEGRATIONS_PATH, json=integration_body(name="Other", export_id="acme")
    )

    assert_problem(response, 409, field="export_id")
    assert [item["name"] for item in await list_all_integrations(admin_client)] == [
        "Acme Warehouse"
    ]


async def test_renaming_export_id_onto_another_ignoring_case_is_409(
    admin_client: httpx.AsyncClient,
) -> None:
    await create_integration(admin_client, export_id="ACME")
    other = await create_integration(admin_client, export_id="OTHER")

    response = await admin_client.patch(
        f"{INTEGRATIONS_PATH}/{other['id']}", json={"export_id": "Acme"}
    )

    assert_problem(response, 409, field="export_id")
    assert await read_integration(admin_client, other["id"]) == other


async def test_export_id_may_change_its_own_case(admin_client: httpx.AsyncClient) -> None:
    created = await create_integration(admin_client, export_id="ACME")

    response = await admin_client.patch(
        f"{INTEGRATIONS_PATH}/{created['id']}", json={"export_id": "acme"}
    )

    assert response.status_code == 200
    assert response.json()["export_id"] == "acme"


async def test_a_deleted_export_id_can_be_used_again(admin_client: httpx.AsyncClient) -> None:
    created = await create_integration(admin_client, export_id="ACME")
    await admin_client.delete(f"{INTEGRATIONS_PATH}/{created['id']}")

    response = await admin_client.post(INTEGRATIONS_PATH, json=integration_body(export_id="acme"))

    assert response.status_code == 201


async def test_two_concurrent_creates_of_one_export_id_store_one_row(
    admin_client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # Two requests in flight at once on separate sessions; only the database can decide.
    first, second = await asyncio.gather(
        admin_client.post(INTEGRATIONS_PATH, json=integration_body(name="One", export_id="RACE")),
        admin_client.post(INTEGRATIONS_PATH, json=integration_body(name="Two", export_id="race")),
    )

    assert sorted([first.status_code, second.status_code]) == [201, 409]
    assert_problem(first if first.status_code == 409 else second, 409, field="export_id")
    async with runtime.sessions() as session:
        rows = await session.scalar(select(func.count()).select_from(Integration))
    assert rows == 1


async def test_an_if_match_no_version_could_have_is_412_not_an_error(
    admin_client: httpx.AsyncClient,
) -> None:
    created = await create_integration(admin_client)
    path = f"{INTEGRATIONS_PATH}/{created['id']}"

    for if_match in ['"' + "9" * 5000 + '"', "\u00b2", "W/", '""', "-1", "1, 2"]:
        response = await admin_client.patch(
            path, json={"name": "New"}, headers={b"If-Match": if_match.encode("latin-1")}
        )

        assert_problem(response, 412)
    assert await read_integration(admin_client, created["id"]) == created
