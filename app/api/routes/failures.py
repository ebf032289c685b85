"""Stored failure (ruf) reports: the filtered list (JSON or CSV) and one report in full."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from app.api.csv_export import CSV_RESPONSE, csv_response, wants_csv
from app.api.failure_models import FailureDetail, FailurePage, FailureSummary
from app.deps import EngineDep, FormatParam, PageDep, ReadAccess
from app.failure_query import (
    FailureFilter,
    count_failures,
    failure_filter,
    failure_page,
    get_failure,
    linked_records,
)
from app.problems import Problem, problem_responses

router = APIRouter(prefix="/api/v1/failures", tags=["failures"], responses=problem_responses(401, 403, 422))

FailureFilterDep = Annotated[FailureFilter, Depends(failure_filter)]
FailureIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Rua's id of the failure report")]
CSV_COLUMNS = ("id", "arrival_date", "reported_domain", "header_from", "source_ip", "auth_failure",
               "identity_alignment", "delivery_result", "format", "original_mail_from", "original_rcpt_to",
               "original_from", "original_subject", "report_from", "user_agent", "notes")


@router.get("", response_model=FailurePage, responses=CSV_RESPONSE)
def list_failures(request: Request, engine: EngineDep, _: ReadAccess, flt: FailureFilterDep, page: PageDep,
                  format_: FormatParam = None) -> Any:
    """Stored failure reports, newest arrival first (those without an arrival date last).

    Filters combine with AND; a repeated filter matches any of its values. `since`/`until`
    select by the UTC arrival day.
    """
    if wants_csv(request, format_):
        return csv_response("failures.csv", CSV_COLUMNS, _csv_rows(engine, flt, page.limit, page.offset))
    with engine.connect() as conn:
        total = count_failures(conn, flt)
        rows = failure_page(conn, flt, page.json_limit(), page.offset)
    return FailurePage(total=total, limit=page.json_limit(), offset=page.offset,
                       items=[FailureSummary.model_validate(row) for row in rows])


def _csv_rows(engine: EngineDep, flt: FailureFilter, limit: int | None, offset: int) -> Iterator[list[Any]]:
    with engine.connect() as conn:
        for row in failure_page(conn, flt, limit, offset):
            yield [_cell(row[name]) for name in CSV_COLUMNS]


def _cell(value: Any) -> Any:
    return "; ".join(str(item) for item in value) if isinstance(value, list) else value


@router.get("/{failure_id}", response_model=FailureDetail, responses=problem_responses(404))
def read_failure(engine: EngineDep, _: ReadAccess, failure_id: FailureIdPath) -> FailureDetail:
    """One failure report: every field, the original message's headers, repair notes, and the
    aggregate records of the same source, domain and day."""
    with engine.connect() as conn:
        failure = get_failure(conn, failure_id)
        if failure is None:
            raise Problem(404, "not-found", "Not found", f"there is no failure report {failure_id}")
        linked = linked_records(conn, failure)
    return FailureDetail.model_validate({
        **failure,
        "original_headers": [{"name": name, "value": value} for name, value in failure["original_headers"]],
        "other_fields": [{"name": name, "value": value} for name, value in failure["other_fields"]],
        "linked_records": linked})
