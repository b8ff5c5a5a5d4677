"""Generated requests against a real server: no 5xx, and every answer as the document says."""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

from tests.support.fuzzing import without_framing_headers
from tests.support.server import RunningServer, base_environment, cli_command, running_server

EXAMPLES_PER_OPERATION = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def environment(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "REFLEXBLUE_DATA_DIR": str(tmp_path / "data"),
        "REFLEXBLUE_DATABASE_URL": database_url,
        "REFLEXBLUE_ADMIN_PASSWORD": "a long enough password",
        "REFLEXBLUE_EXTERNAL_RATE_LIMIT": "100000",
        "REFLEXBLUE_EXTERNAL_RATE_BURST": "100000",
    }


@pytest.fixture
def server(environment: dict[str, str]) -> Iterator[RunningServer]:
    with running_server(environment) as started:
        yield started


def _cli(environment: dict[str, str], *arguments: str) -> str:
    finished = subprocess.run(
        cli_command(*arguments),
        env=base_environment(environment),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=True,
    )
    return finished.stdout


@pytest.fixture
def api_key(environment: dict[str, str], server: RunningServer) -> str:
    _cli(
        environment,
        "integrations",
        "create",
        "--name",
        "ERP",
        "--external-id",
        "e",
        "--export-id",
        "ERP",
    )
    created = json.loads(_cli(environment, "api-keys", "create", "ERP", "--name", "fuzz", "--json"))
    key: str = created["key"]
    return key


def _conforms(server: RunningServer, headers: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/api/external/v1/openapi.json")
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results) == 14
    strategies: list[st.SearchStrategy[Case[Any]]] = [
        operation.as_strategy(generation_mode=mode)
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]
    strategy = st.one_of(*strategies)

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION * len(operations),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case: Case[Any]) -> None:
        without_framing_headers(case).call_and_validate(
            base_url=f"{server.url}/api/external/v1", headers=headers, checks=CHECKS
        )

    answers_as_documented()


def test_generated_requests_with_a_valid_key_answer_as_documented(
    server: RunningServer, api_key: str
) -> None:
    _conforms(server, {"Authorization": f"Bearer {api_key}"})


def test_generated_requests_without_a_key_answer_as_documented(server: RunningServer) -> None:
    _conforms(server, {})
