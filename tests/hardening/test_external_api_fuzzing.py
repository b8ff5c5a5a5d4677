"""Generated chains of requests against the External API of a real server, as an integration:
webhooks created, read, changed, tested, their deliveries listed, retried and recovered, and
deleted, each answer as the OpenAPI document says and none a 5xx."""

import itertools
import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition
from hypothesis.stateful import Bundle, initialize
from schemathesis import Case
from schemathesis.checks import (
    CheckFunction,
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup
from schemathesis.core.jsonschema.types import JsonValue
from schemathesis.core.transport import Response
from schemathesis.generation.stateful.state_machine import (
    APIStateMachine,
    StepInput,
    StepOutput,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from tests.support.server import RunningServer, base_environment, cli_command, running_server

API = "/api/external/v1"
SCENARIOS = 30
STEPS_PER_SCENARIO = 6
MAX_RESTARTS = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Public addresses written as IP literals: the target check needs no DNS, and without a worker
# nothing is ever sent to them.
TARGETS = st.sampled_from(["https://93.184.215.14", "http://203.0.114.7:8080"])
EVENT_TYPES = st.sampled_from([["*"], ["webhook.test"]])


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
    with running_server(environment, arguments=("--no-worker",)) as started:
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
def key_headers(environment: dict[str, str], server: RunningServer) -> dict[str, str]:
    _cli(
        environment,
        *("integrations", "create", "--name", "ERP", "--external-id", "e", "--export-id", "ERP"),
    )
    created = json.loads(_cli(environment, "api-keys", "create", "ERP", "--name", "fuzz", "--json"))
    return {"Authorization": f"Bearer {created['key']}"}


def test_a_webhooks_whole_life_answers_as_documented(
    server: RunningServer, key_headers: dict[str, str]
) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}{API}/openapi.json")
    assert isinstance(schema, OpenApiSchema)

    def call(method: str, path: str, **parts: Any) -> Any:
        if "body" in parts:
            parts["media_type"] = "application/json"
        case = schema[path][method].Case(**parts)
        response = case.call_and_validate(
            base_url=f"{server.url}{API}", headers=key_headers, checks=CHECKS
        )
        return response.status_code, (response.json() if response.content else None)

    status, created = call(
        "POST", "/webhooks", body={"url": "https://93.184.215.14/h", "event_types": ["*"]}
    )
    webhook = {"id": created["id"]}
    assert status == 201
    assert call("GET", "/webhooks/{id}", path_parameters=webhook) == (200, created)
    status, changed = call(
        "PATCH", "/webhooks/{id}", path_parameters=webhook, body={"description": "changed"}
    )
    assert (status, changed["description"]) == (200, "changed")
    status, delivery = call("POST", "/webhooks/{id}/test", path_parameters=webhook)
    assert (status, delivery["status"]) == (202, "pending")
    status, page = call("GET", "/webhooks/{id}/deliveries", path_parameters=webhook)
    assert (status, [each["id"] for each in page["items"]]) == (200, [delivery["id"]])
    status, detail = call("GET", "/deliveries/{id}", path_parameters={"id": delivery["id"]})
    assert (status, detail["attempts"]) == (200, [])
    status, _ = call("POST", "/deliveries/{id}/retry", path_parameters={"id": delivery["id"]})
    assert status == 409  # only a failed delivery is sent again
    assert call("DELETE", "/webhooks/{id}", path_parameters=webhook) == (204, None)
    assert call("GET", "/webhooks/{id}", path_parameters=webhook)[0] == 404


class _Workflow(APIStateMachine):
    """What the test reads back from its state machine."""

    answered: ClassVar[Counter[tuple[str, int]]]
    failures: ClassVar[list[str]]
    scenarios: ClassVar[int]


def test_generated_chains_of_webhook_requests_answer_as_documented(
    server: RunningServer, key_headers: dict[str, str]
) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}{API}/openapi.json")
    assert isinstance(schema, OpenApiSchema)
    workflow = _workflow(schema, f"{server.url}{API}", key_headers)

    _run_scenarios(workflow)

    # The chains went on from stored webhooks, not only from ids that match nothing.
    on_stored = {
        label for label, status in workflow.answered if "{id}" in label and 200 <= status < 300
    }
    assert workflow.answered[("POST /webhooks", 201)] >= SCENARIOS, workflow.answered
    assert on_stored, workflow.answered
    assert workflow.failures == []


def _workflow(schema: OpenApiSchema, base_url: str, headers: dict[str, str]) -> type[_Workflow]:
    machine = schema.as_state_machine()
    creates = schema["/webhooks"]["POST"]
    numbers = itertools.count()
    created = cast(Bundle[StepOutput], machine.bundles["POST /webhooks -> 201"])

    class Workflow(machine, _Workflow):  # type: ignore[valid-type, misc]
        answered: ClassVar[Counter[tuple[str, int]]] = Counter()
        failures: ClassVar[list[str]] = []
        scenarios: ClassVar[int] = 0

        # Generated URLs almost never resolve to a public address, so nearly every generated
        # create is refused; each scenario starts with a webhook that is accepted, and what it
        # creates feeds the links that follow (read, change, test, deliveries, recover, delete).
        @initialize(target=created, target_url=TARGETS, event_types=EVENT_TYPES)
        def create_a_webhook(self, target_url: str, event_types: list[str]) -> StepOutput:
            body: dict[str, JsonValue] = {
                "url": f"{target_url}/hooks/{next(numbers)}",
                "event_types": cast(JsonValue, event_types),
            }
            case = creates.Case(body=body, media_type="application/json")
            self.recorder.record_case(case=case)
            output: StepOutput = self.step(StepInput.initial(case))
            return output

        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"base_url": base_url, "headers": headers}

        def after_call(self, response: Response, case: Case[Any]) -> None:
            super().after_call(response, case)
            type(self).answered[(case.operation.label, response.status_code)] += 1

        def validate_response(
            self,
            response: Response,
            case: Case[Any],
            additional_checks: list[CheckFunction] | None = None,
            **_: Any,
        ) -> None:
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except FailureGroup as failure:
                type(self).failures.append(f"{case.operation.label}: {failure}")
                raise

        def teardown(self) -> None:
            super().teardown()
            type(self).scenarios += 1

    return Workflow


def _run_scenarios(workflow: type[_Workflow]) -> None:
    """Run the scenarios; a failed check fails the test at once.

    The server keeps what each scenario did, so a replayed scenario may meet other answers
    (and links) than the first time, and Hypothesis stops with "inconsistent data
    generation". That says nothing about the product: the run goes on with fresh scenarios,
    and a check that failed on the way is in `failures`.
    """
    for _ in range(MAX_RESTARTS):
        remaining = SCENARIOS - workflow.scenarios
        if remaining <= 0:
            return
        try:
            workflow.run(
                settings=settings(
                    max_examples=remaining,
                    stateful_step_count=STEPS_PER_SCENARIO,
                    phases=[Phase.generate],
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
            )
        except FlakyStrategyDefinition:
            continue
