"""The Management API's OpenAPI document: the errors each route answers with, documented as
the problem details they are sent as (the External API's document does the same)."""

from typing import Any

from reflexblue.api.external.documentation import Problem

_DESCRIPTIONS = {
    400: "The body is not valid JSON.",
    401: "The user token is missing, malformed, unknown or revoked.",
    403: "The token's user is a viewer, who may read but not change anything.",
    404: "Nothing with this id exists.",
    409: "The request conflicts with what is stored, such as an Export ID already taken.",
    412: "`If-Match` names another version than the current one.",
    413: "The body is larger than 1 MiB.",
    415: "The body is not JSON.",
    422: "The input is not valid; `errors` names each field.",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry documenting these error statuses."""
    return {status: {"model": Problem, "description": _DESCRIPTIONS[status]} for status in statuses}


def read_errors(*extra: int) -> dict[int | str, dict[str, Any]]:
    """What any route may answer: no valid token, or a query that is not valid."""
    return errors(401, 422, *extra)


def admin_errors(*extra: int) -> dict[int | str, dict[str, Any]]:
    """What a route only an administrator may call may answer, besides those of `read_errors`."""
    return errors(401, 403, 422, *extra)


def write_errors(*extra: int) -> dict[int | str, dict[str, Any]]:
    """A change with a JSON body, which only an administrator may make."""
    return errors(400, 401, 403, 413, 415, 422, *extra)
