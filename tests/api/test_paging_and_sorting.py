"""Listing integrations: sort orders, search, and cursor paging while rows come and go."""

import base64
import json
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.support.management import INTEGRATIONS_PATH, assert_problem, create_integration

SORT_FIELDS = ("name", "external_id", "export_id", "created_at", "updated_at")

# Ties on name and external ID, mixed case, digits and underscores: everything an order
# can get wrong. Export IDs are unique by rule.
ROWS = [
    ("beta", "x-2", "B_2"),
    ("Alpha", "x-1", "alpha"),
    ("alpha", "x-1", "ALPHA_2"),
    ("beta", "X-1", "b1"),
    ("_under", "x-10", "_"),
    ("Zulu", "z", "Z9"),
    ("beta", "x-2", "b10"),
    ("42", "0", "n42"),
    ("zulu", "Z", "zz"),
]


async def _create_rows(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    created = []
    for name, external_id, export_id in ROWS:
        created.append(
            await create_integration(
                client, name=name, external_id=external_id, export_id=export_id
            )
        )
    # A change after creation, so updated_at orders differently from created_at.
    response = await client.patch(
        f"{INTEGRATIONS_PATH}/{created[0]['id']}", json={"description": "touched"}
    )
    created[0] = response.json()
    return created


def _sort_key(field: str) -> Any:
    def key(item: dict[str, Any]) -> tuple[Any, str]:
        value = item[field]
        if field.endswith("_at"):
            value = datetime.fromisoformat(value)
        return value, item["id"]

    return key


async def _walk(client: httpx.AsyncClient, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page from the first, following next_cursor."""
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(INTEGRATIONS_PATH, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def _flat(pages: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [item for page in pages for item in page]


@pytest.mark.parametrize("field", SORT_FIELDS)
async def test_each_sort_field_orders_in_both_directions_with_id_breaking_ties(
    admin_client: httpx.AsyncClient, field: str
) -> None:
    rows = await _create_rows(admin_client)

    ascending = _flat(await _walk(admin_client, sort=field, order="asc", limit=2))
    descending = _flat(await _walk(admin_client, sort=field, order="desc", limit=2))

    expected = sorted(rows, key=_sort_key(field))
    assert [item["id"] for item in ascending] == [item["id"] for item in expected]
    assert [item["id"] for item in descending] == [item["id"] for item in reversed(expected)]


async def test_the_default_order_is_by_name_ascending(admin_client: httpx.AsyncClient) -> None:
    rows = await _create_rows(admin_client)

    response = await admin_client.get(INTEGRATIONS_PATH)

    expected = sorted(rows, key=_sort_key("name"))
    assert [item["id"] for item in response.json()["items"]] == [item["id"] for item in expected]


async def test_a_single_page_has_no_cursors(admin_client: httpx.AsyncClient) -> None:
    await create_integration(admin_client)

    body = (await admin_client.get(INTEGRATIONS_PATH)).json()

    assert (body["next_cursor"], body["prev_cursor"]) == (None, None)


async def test_an_empty_list_is_an_empty_page(admin_client: httpx.AsyncClient) -> None:
    body = (await admin_client.get(INTEGRATIONS_PATH)).json()

    assert body == {"items": [], "next_cursor": None, "prev_cursor": None}


def _matching(rows: list[dict[str, Any]], q: str) -> list[str]:
    """What a search for q must find, in name order, computed here from the rows."""
    needle = q.lower()
    return [
        row["id"]
        for row in sorted(rows, key=_sort_key("name"))
        if any(needle in row[field].lower() for field in ("name", "external_id", "export_id"))
    ]


async def test_search_matches_name_and_both_ids_ignoring_case(
    admin_client: httpx.AsyncClient,
) -> None:
    rows = await _create_rows(admin_client)

    for q in ["alpha", "ALPHA", "x-1", "B1", "z", "4", "nothing"]:
        found = _flat(await _walk(admin_client, q=q, limit=3))

        assert [item["id"] for item in found] == _matching(rows, q), q


async def test_search_takes_percent_underscore_and_backslash_literally(
    admin_client: httpx.AsyncClient,
) -> None:
    rows = await _create_rows(admin_client)
    rows.append(await create_integration(admin_client, name="100% sure", export_id="P100"))
    rows.append(await create_integration(admin_client, name="1x0 wild", export_id="W1x0"))
    rows.append(await create_integration(admin_client, name="back\\slash", export_id="BS"))

    for q in ["_", "%", "%_", "100%", "1_0", "\\", "'", '"']:
        found = _flat(await _walk(admin_client, q=q, limit=3))

        assert [item["id"] for item in found] == _matching(rows, q), q


async def test_search_ignores_surrounding_spaces(admin_client: httpx.AsyncClient) -> None:
    await _create_rows(admin_client)

    response = await admin_client.get(INTEGRATIONS_PATH, params={"q": "  zulu  "})

    assert sorted(item["name"] for item in response.json()["items"]) == ["Zulu", "zulu"]


async def test_search_does_not_look_at_the_description(admin_client: httpx.AsyncClient) -> None:
    await create_integration(admin_client, description="needle")

    response = await admin_client.get(INTEGRATIONS_PATH, params={"q": "needle"})

    assert response.json()["items"] == []


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_paging_skips_and_repeats_nothing_while_rows_come_and_go(
    admin_client: httpx.AsyncClient, order: str
) -> None:
    rows = [await create_integration(admin_client, export_id=f"R{n:02}") for n in range(12)]
    params: dict[str, str | int] = {"sort": "export_id", "order": order, "limit": 4}
    seen: list[str] = []
    removed: set[str] = set()
    cursor: str | None = None

    for turn in range(20):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        body = (await admin_client.get(INTEGRATIONS_PATH, params=query)).json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        # Between pages: remove a row already seen and one still ahead, and add rows that
        # sort before and after every original one.
        ahead = [row["id"] for row in rows if row["id"] not in seen and row["id"] not in removed]
        for row_id in (seen[-1], *ahead[-1:]):
            await admin_client.delete(f"{INTEGRATIONS_PATH}/{row_id}")
            removed.add(row_id)
        await create_integration(admin_client, export_id=f"A{turn}")
        await create_integration(admin_client, export_id=f"Z{turn}")

    lasting = [row["id"] for row in rows if row["id"] not in removed]
    assert len(removed) >= 4
    assert [row_id for row_id in seen if row_id in lasting] == [
        row_id for row_id in sorted(lasting, reverse=order == "desc", key=_export_id_of(rows))
    ]
    assert len(seen) == len(set(seen))


def _export_id_of(rows: list[dict[str, Any]]) -> Any:
    export_ids = {row["id"]: row["export_id"] for row in rows}
    return lambda row_id: export_ids[row_id]


async def test_prev_cursor_walks_back_through_the_same_pages(
    admin_client: httpx.AsyncClient,
) -> None:
    await _create_rows(admin_client)
    params: dict[str, str | int] = {"sort": "name", "order": "desc", "limit": 2}
    forward: list[dict[str, Any]] = []
    body = (await admin_client.get(INTEGRATIONS_PATH, params=params)).json()
    assert body["prev_cursor"] is None
    while True:
        forward.append(body)
        if body["next_cursor"] is None:
            break
        query = {**params, "cursor": body["next_cursor"]}
        body = (await admin_client.get(INTEGRATIONS_PATH, params=query)).json()

    backward = [forward[-1]]
    while backward[-1]["prev_cursor"] is not None:
        query = {**params, "cursor": backward[-1]["prev_cursor"]}
        backward.append((await admin_client.get(INTEGRATIONS_PATH, params=query)).json())

    assert [page["items"] for page in reversed(backward)] == [page["items"] for page in forward]
    assert backward[-1]["next_cursor"] is not None


def _cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


async def test_a_cursor_from_another_sort_is_422(admin_client: httpx.AsyncClient) -> None:
    await _create_rows(admin_client)
    first = (await admin_client.get(INTEGRATIONS_PATH, params={"sort": "name", "limit": 2})).json()

    response = await admin_client.get(
        INTEGRATIONS_PATH, params={"sort": "export_id", "cursor": first["next_cursor"]}
    )

    assert_problem(response, 422, field="cursor")


async def test_a_cursor_from_the_other_direction_is_422(admin_client: httpx.AsyncClient) -> None:
    await _create_rows(admin_client)
    first = (await admin_client.get(INTEGRATIONS_PATH, params={"limit": 2})).json()

    response = await admin_client.get(
        INTEGRATIONS_PATH, params={"order": "desc", "cursor": first["next_cursor"]}
    )

    assert_problem(response, 422, field="cursor")


FOREIGN_CURSORS = [
    ("name", "garbage"),
    ("name", "!!!"),
    ("name", "e30"),  # {}
    ("name", _cursor("name", "asc")),
    ("name", _cursor("name", "asc", "x", "int_1", "sideways")),
    ("name", _cursor("name", "asc", {"a": 1}, "int_1", "next")),
    ("name", _cursor("name", "asc", ["x"], "int_1", "next")),
    ("name", _cursor("name", "asc", 5, "int_1", "next")),
    ("name", _cursor("name", "asc", "x", 7, "next")),
    ("name", _cursor("name", "asc", "x\u0000", "int_1", "next")),
    ("name", _cursor("name", "asc", "x", "int_\ud800", "next")),
    ("created_at", _cursor("created_at", "asc", "yesterday", "int_1", "next")),
    ("created_at", _cursor("created_at", "asc", 1700000000, "int_1", "next")),
    ("created_at", _cursor("created_at", "asc", "2026-01-01T00:00:00", "int_1", "next")),
    ("name", base64.urlsafe_b64encode(b"\xff\xfe").decode()),
]


async def test_a_cursor_this_api_did_not_hand_out_is_422(admin_client: httpx.AsyncClient) -> None:
    await create_integration(admin_client)

    for sort, cursor in FOREIGN_CURSORS:
        response = await admin_client.get(
            INTEGRATIONS_PATH, params={"sort": sort, "cursor": cursor}
        )

        assert_problem(response, 422, field="cursor")


BAD_LIST_PARAMETERS = [
    ("sort", "description"),
    ("sort", "id; DROP TABLE integrations"),
    ("order", "up"),
    ("limit", "0"),
    ("limit", "201"),
    ("limit", "ten"),
    ("limit", "9" * 5000),
    ("q", "q" * 201),
    ("q", "nul\u0000"),
    ("q", "bell\u0007"),
]


async def test_a_bad_list_parameter_is_422_naming_it(admin_client: httpx.AsyncClient) -> None:
    for parameter, value in BAD_LIST_PARAMETERS:
        response = await admin_client.get(INTEGRATIONS_PATH, params={parameter: value})

        assert_problem(response, 422, field=parameter)
