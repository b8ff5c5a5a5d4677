"""Generated requests against the Management API of a real server, as an administrator: no
5xx, and every answer as the OpenAPI document says, one operation at a time and in chains that
feed what one call returns into the next."""

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition
from hypothesis.stateful import Bundle, rule
from schemathesis import Case, GenerationMode
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
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response
from schemathesis.generation.stateful.state_machine import (
    APIStateMachine,
    StepInput,
    StepOutput,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from reflexblue.accounts.models import Role
from reflexblue.core.runtime import start_runtime
from reflexblue.core.settings import Settings
from tests.conftest import ApiUser, make_user
from tests.support.fuzzing import without_framing_headers
from tests.support.server import RunningServer, running_server

API = "/api/management"
OPERATIONS = 15
EXAMPLES_PER_OPERATION = 10
SCENARIOS = 40
STEPS_PER_SCENARIO = 6
MAX_RESTARTS = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Valid by the product's rules, which the document does not spell out (lengths, the Export ID
# form): bodies generated from the document alone are nearly always refused.
VALID_INTEGRATIONS = st.fixed_dictionaries(
    {
        "name": st.text("abc XYZ", min_size=1, max_size=20).filter(str.strip),
        "external_id": st.text("xyz-19", min_size=1, max_size=8).filter(str.strip),
        "export_id": st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True),
    },
    optional={"description": st.text(max_size=40)},
)


@pytest.fixture
def admin_headers(database_url: str, tmp_path: Path) -> dict[str, str]:
    """An administrator's token, made before the server starts (it then makes no `admin`)."""
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", database_url=database_url)

    async def make_admin() -> ApiUser:
        runtime = await start_runtime(settings)
        try:
            return await make_user(runtime, "fuzzer", Role.ADMIN)
        finally:
            await runtime.close()

    return asyncio.run(make_admin()).headers


@pytest.fixture
def server(
    database_url: str, tmp_path: Path, admin_headers: dict[str, str]
) -> Iterator[RunningServer]:
    environment = {
        "REFLEXBLUE_DATA_DIR": str(tmp_path / "data"),
        "REFLEXBLUE_DATABASE_URL": database_url,
    }
    with running_server(environment) as started:
        yield started


def _schema(server: RunningServer) -> OpenApiSchema:
    schema = schemathesis.openapi.from_url(f"{server.url}{API}/openapi.json")
    assert isinstance(schema, OpenApiSchema)
    return schema


def test_generated_requests_one_operation_at_a_time_answer_as_documented(
    server: RunningServer, admin_headers: dict[str, str]
) -> None:
    results = list(_schema(server).get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results) == OPERATIONS
    strategy: st.SearchStrategy[Case[Any]] = st.one_of(
        *(
            operation.as_strategy(generation_mode=mode)
            for operation in operations
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        )
    )

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION * OPERATIONS,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case: Case[Any]) -> None:
        without_framing_headers(case).call_and_validate(
            base_url=f"{server.url}{API}", headers=admin_headers, checks=CHECKS
        )

    answers_as_documented()


def test_generated_chains_of_requests_answer_as_documented(
    server: RunningServer, admin_headers: dict[str, str]
) -> None:
    schema = _schema(server)
    workflow = _workflow(schema, f"{server.url}{API}", admin_headers)

    _run_scenarios(workflow)

    # The chains reached stored integrations and API keys, not only ids that match nothing.
    succeeded = {label for label, status in workflow.answered if 200 <= status < 300}
    assert {"POST /integrations", "GET /integrations/{id}/secret"} <= succeeded, workflow.answered
    assert workflow.failures == []


class _Workflow(APIStateMachine):
    """What the test reads back from its state machine."""

    answered: ClassVar[Counter[tuple[str, int]]]
    failures: ClassVar[list[str]]
    scenarios: ClassVar[int]


def _workflow(schema: OpenApiSchema, base_url: str, headers: dict[str, str]) -> type[_Workflow]:
    machine = schema.as_state_machine()
    creates = schema["/integrations"]["POST"]
    numbers = itertools.count()
    created = cast(Bundle[StepOutput], machine.bundles["POST /integrations -> 201"])

    class Workflow(machine, _Workflow):  # type: ignore[valid-type, misc]
        answered: ClassVar[Counter[tuple[str, int]]] = Counter()
        failures: ClassVar[list[str]] = []
        scenarios: ClassVar[int] = 0

        # Schemathesis takes `external_id` and `export_id` for references to resources that
        # nothing creates, so it never starts a chain by creating an integration; this rule
        # does, and what it creates feeds the links that follow (read, change, reveal, rotate,
        # API keys, delete). A number keeps each Export ID new, so that it is always created.
        @rule(target=created, body=VALID_INTEGRATIONS)
        def create_an_integration(self, body: dict[str, str]) -> StepOutput:
            fresh: dict[str, JsonValue] = {
                **body,
                "export_id": f"{body['export_id']}_{next(numbers)}",
            }
            case = creates.Case(body=fresh, media_type="application/json")
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

    The server keeps what each scenario did, so when Hypothesis replays the start of a scenario
    the answers (and the links they offer) may differ, and it stops with "inconsistent data
    generation". That says nothing about the product: the run goes on with fresh scenarios,
    and any check that failed on the way is in `failures`.
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
