"""The OpenAPI schema is complete, and the running server keeps every promise it makes.

The schema is what API clients are generated from and what `/docs` shows, so each
operation must say what it does and what it answers, with examples. Schemathesis then
generates requests from that same schema against a real server holding a few reports and
checks every answer: never a 5xx, and status code, content type and body all as documented.
Both tests walk whatever the schema lists, so routes added later are covered too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.api_tokens import Scope
from app.main import create_app
from app.settings import Settings
from ingest.limits import UnpackLimits
from ingest.pipeline import IngestPipeline
from tests import samples
from tests.live_server import LiveServer

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
DAY = 86400
BEGIN = 1_700_000_000


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """A schema node and, when it is a `$ref` to a component, that component's name."""
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return None, node
    name = ref.rsplit("/", 1)[-1]
    return name, schema["components"]["schemas"][name]


def test_openapi_operations_are_documented_with_examples(tmp_path: Path) -> None:
    schema = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}",
                                 data_dir=tmp_path / "data")).openapi()
    undocumented, without_schema, without_examples = [], [], set()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            label = f"{method.upper()} {path}"
            if not (operation.get("summary") or operation.get("description")):
                undocumented.append(label)
            responses = operation.get("responses", {})
            if not any("schema" in media for response in responses.values()
                       for media in response.get("content", {}).values()):
                without_schema.append(label)
            for status, response in responses.items():
                if not status.startswith("2"):
                    continue
                for media in response.get("content", {}).values():
                    node = media.get("schema", {})
                    if node.get("type") == "array":
                        node = node.get("items", {})
                    name, component = resolve(schema, node)
                    if name is not None and not (component.get("examples") or component.get("example")):
                        without_examples.add(f"{label} {status}: {name}")
    assert not undocumented, f"operations with neither summary nor description: {undocumented}"
    assert not without_schema, f"operations documenting no response with a schema: {without_schema}"
    assert not without_examples, f"2xx response models without examples: {sorted(without_examples)}"


@pytest.fixture
def stored_report_ids(live_server: LiveServer, tmp_path: Path) -> list[int]:
    """A few reports in the live server's store, one of them a conflicting copy."""
    pipeline = IngestPipeline(live_server.engine, live_server.data_dir, UnpackLimits())
    inputs = [samples.gz(samples.aggregate_xml(
        [samples.Rec(source_ip=f"192.0.2.{i + 1}", count=str(i + 2), dkim="fail" if i % 2 else "pass")
         for i in range(n + 2)],
        org_name=f"org{n}.example", report_id=f"schema-{n}", domain=f"domain{n}.example",
        begin=str(BEGIN + n * DAY), end=str(BEGIN + (n + 1) * DAY - 1))) for n in range(3)]
    inputs.append(samples.aggregate_xml(
        [samples.Rec(source_ip="198.51.100.7")], org_name="org0.example", report_id="schema-0",
        domain="domain0.example", begin=str(BEGIN), end=str(BEGIN + DAY - 1)))
    ids = []
    for number, data in enumerate(inputs):
        path = tmp_path / f"input{number}"
        path.write_bytes(data)
        outcome = pipeline.ingest_path(path)
        assert [r.status for r in outcome.reports] == ["new"]
        ids.append(outcome.reports[0].report_id)
    return [report_id for report_id in ids if report_id is not None]


@pytest.fixture
def api_schema(live_server: LiveServer) -> BaseSchema:
    token = live_server.token(Scope.ADMIN)
    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json",
                                           headers={"Authorization": f"Bearer {token}"})
    # Revoking tokens would revoke the very token this test runs with (ids are small and
    # generated at random), turning every later answer into a 401. Deleting dashboard users
    # stays in: the API token does not depend on them.
    return schema.exclude(method="DELETE", path_regex=r"^/api/v1/tokens/")


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def chosen_cases(operation: APIOperation, report_ids: list[int]) -> list[Case]:
    """Requests random generation seldom makes: ids that exist, and an upload that parses
    (new, then again as a duplicate), so the success answers get validated too."""
    names = {parameter.name for parameter in operation.path_parameters}
    cases = []
    if names == {"report_id"}:
        cases += [operation.Case(path_parameters={"report_id": report_id}) for report_id in report_ids]
    if operation.method.upper() == "POST" and operation.path == "/api/v1/reports":
        upload = samples.gz(samples.aggregate_xml([samples.Rec()], report_id="schema-upload"))
        cases += [operation.Case(body=upload, media_type="application/octet-stream") for _ in range(2)]
    return cases


def test_server_answers_as_its_schema_says(api_schema: BaseSchema, stored_report_ids: list[int],
                                          live_server: LiveServer) -> None:
    """Each operation in turn: chosen requests, its documented examples, then generated ones.

    Hypothesis is driven here directly rather than through `schemathesis.pytest.from_fixture`,
    whose lazy loading relies on pytest internals this pytest no longer has; the schema must
    be loaded lazily since the server only exists once the database fixture has made it.
    """
    headers = {"Authorization": f"Bearer {live_server.token(Scope.ADMIN)}"}
    failures: dict[str, BaseException] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10

    for operation in operations:
        strategies = [*api_schema.get_strategies_from_examples(operation), operation.as_strategy()]

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        @given(case=st.one_of(strategies))
        def answers_as_documented(case: Case) -> None:
            case.call_and_validate(headers=headers, timeout=60, checks=CHECKS)

        try:
            for case in chosen_cases(operation, stored_report_ids):
                case.call_and_validate(headers=headers, timeout=60, checks=CHECKS)
            answers_as_documented()
        except (Exception, FailureGroup) as exc:  # gather them all, to name every failing operation
            failures[operation.label] = exc
    assert not failures, "\n\n".join(f"{label}:\n{exc}" for label, exc in failures.items())
