"""SMTP TLS reports (RFC 8460): the filtered list, totals per policy domain, one report in full."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from app.api.csv_export import CSV_RESPONSE, csv_response, wants_csv
from app.api.read_models import Window
from app.api.tls_models import (
    TlsPolicyOut,
    TlsPolicySummary,
    TlsPolicyTotals,
    TlsReportDetail,
    TlsReportItem,
    TlsReportPage,
    TlsSummaryOut,
)
from app.deps import EngineDep, FormatParam, PageDep, ReadAccess
from app.problems import Problem, problem_responses
from app.record_filter import Window as FilterWindow
from app.record_filter import parse_moment
from app.tls_query import (
    TlsFilter,
    count_tls_reports,
    get_tls_report,
    policy_summaries,
    rate,
    tls_deliveries,
    tls_policy_details,
    tls_report_page,
    tls_summary,
)
from ingest.report_identity import org_name_key

router = APIRouter(prefix="/api/v1/tls", tags=["tls"], responses=problem_responses(401, 403, 422))

LIST_CSV_COLUMNS = ("id", "organization_name", "report_id", "contact_info", "date_begin", "date_end",
                    "conflict_of_id", "policy_seq", "policy_type", "policy_domain", "mx_hosts", "successful",
                    "failed", "failures", "notes", "ingested_at")
SUMMARY_CSV_COLUMNS = ("policy_domain", "policy_type", "reports", "successful", "failed", "failure_rate",
                       "failures")
_CSV_BATCH = 500
TlsReportIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Rua's id of the TLS report")]


def tls_filter(
    since: Annotated[str | None, Query(
        description="Start of the window: a date (whole UTC day) or an ISO 8601 date-time. Reports whose "
                    "range overlaps the window are selected.", examples=["2026-11-01"])] = None,
    until: Annotated[str | None, Query(
        description="End of the window: a date (that day included) or an ISO 8601 date-time (excluded).",
        examples=["2026-11-30"])] = None,
    domain: Annotated[list[str] | None, Query(
        description="Policy domain (repeat for several): reports with a policy for it.",
        examples=["example.com"])] = None,
    organization: Annotated[list[str] | None, Query(
        description="Reporting organisation, as in its reports (case and spacing ignored; repeat for "
                    "several).",
        examples=["Google Inc."])] = None,
) -> TlsFilter:
    window = FilterWindow(parse_moment(since, "since") if since else None,
                          parse_moment(until, "until", end_of_day=True) if until else None)
    if window.since and window.until and window.since >= window.until:
        raise Problem(422, "invalid-filter", "Invalid filter", "since must be before until")
    if any("\x00" in value for value in (*(domain or ()), *(organization or ()))):
        # PostgreSQL cannot even compare such a text: refuse it rather than fail on it
        raise Problem(422, "invalid-filter", "Invalid filter", "domain and organization cannot hold NUL")
    domains = dict.fromkeys(d.strip().lower().rstrip(".") for d in domain or () if d.strip())
    organizations = dict.fromkeys((org_name_key(o) or "")[:255] for o in organization or () if o.strip())
    return TlsFilter(window, tuple(domains), tuple(organizations))


TlsFilterDep = Annotated[TlsFilter, Depends(tls_filter)]


@router.get("", response_model=TlsReportPage, responses=CSV_RESPONSE)
def list_tls_reports(request: Request, engine: EngineDep, _: ReadAccess, flt: TlsFilterDep, page: PageDep,
                     format_: FormatParam = None) -> Any:
    """Stored TLS reports, newest report period first, each with its policies' session counts and
    failed sessions by result type.

    Conflicting copies are listed too, flagged by `conflict_of_id`. The CSV export has one row
    per policy (a report without policies gets one row); limit and offset count reports.
    """
    if wants_csv(request, format_):
        return csv_response("tls-reports.csv", LIST_CSV_COLUMNS,
                            _csv_rows(engine, flt, page.limit, page.offset))
    with engine.connect() as conn:
        total = count_tls_reports(conn, flt)
        rows = tls_report_page(conn, flt, page.json_limit(), page.offset)
        policies = policy_summaries(conn, (row["id"] for row in rows))
    return TlsReportPage(total=total, limit=page.json_limit(), offset=page.offset, items=[
        TlsReportItem.model_validate({
            **row, "failure_rate": rate(row["failed"], row["successful"] + row["failed"]),
            "policies": [TlsPolicySummary.model_validate(p) for p in policies[row["id"]]]})
        for row in rows])


def _csv_rows(engine: EngineDep, flt: TlsFilter, limit: int | None, offset: int) -> Iterator[list[Any]]:
    """Reports a batch at a time, so an export of every report never sits in memory."""
    with engine.connect() as conn:
        remaining = limit
        while remaining is None or remaining > 0:
            size = _CSV_BATCH if remaining is None else min(_CSV_BATCH, remaining)
            rows = tls_report_page(conn, flt, size, offset)
            policies = policy_summaries(conn, (row["id"] for row in rows))
            for row in rows:
                report = [row[name] for name in LIST_CSV_COLUMNS[:7]]
                tail = ["; ".join(row["notes"]), row["ingested_at"]]
                if not policies[row["id"]]:
                    yield [*report, None, None, None, None, None, None, None, *tail]
                for p in policies[row["id"]]:
                    yield [*report, p["seq"], p["policy_type"], p["policy_domain"], "; ".join(p["mx_hosts"]),
                           p["successful"], p["failed"], _failures_cell(p["failures"]), *tail]
            if len(rows) < size:
                return
            offset += len(rows)
            if remaining is not None:
                remaining -= len(rows)


@router.get("/summary", response_model=TlsSummaryOut, responses=CSV_RESPONSE)
def read_tls_summary(request: Request, engine: EngineDep, _: ReadAccess, flt: TlsFilterDep,
                     format_: FormatParam = None) -> Any:
    """Sessions per policy domain and policy type: reports, successful and failed sessions, the
    failure rate, and failed sessions by result type.

    With `domain`, only the policies for those domains count. Conflicting copies are left out:
    they restate a first copy. The CSV export has one row per policy domain and type.
    """
    with engine.connect() as conn:
        summary = tls_summary(conn, flt)
    policies = [TlsPolicyTotals(policy_domain=p.policy_domain, policy_type=p.policy_type, reports=p.reports,
                                successful=p.successful, failed=p.failed,
                                failure_rate=rate(p.failed, p.successful + p.failed), failures=p.failures)
                for p in summary.policies]
    if wants_csv(request, format_):
        return csv_response("tls-summary.csv", SUMMARY_CSV_COLUMNS, (
            [p.policy_domain, p.policy_type, p.reports, p.successful, p.failed, p.failure_rate,
             _failures_cell(p.failures)] for p in policies))
    return TlsSummaryOut(window=Window(since=flt.window.since, until=flt.window.until),
                         reports=summary.reports, successful=summary.successful, failed=summary.failed,
                         failure_rate=rate(summary.failed, summary.successful + summary.failed),
                         failures=summary.failures(), policies=policies)


@router.get("/{report_id}", response_model=TlsReportDetail, responses=problem_responses(404))
def read_tls_report(engine: EngineDep, _: ReadAccess, report_id: TlsReportIdPath) -> TlsReportDetail:
    """One TLS report: its policies with the policy strings, every failure detail, repair notes,
    and every delivery it arrived in."""
    with engine.connect() as conn:
        report = get_tls_report(conn, report_id)
        if report is None:
            raise Problem(404, "not-found", "Not found", f"there is no TLS report {report_id}")
        policies = tls_policy_details(conn, report_id)
        deliveries = tls_deliveries(conn, report_id)
    return TlsReportDetail.model_validate({
        **report, "failure_rate": rate(report["failed"], report["successful"] + report["failed"]),
        "policies": [TlsPolicyOut.model_validate(p) for p in policies], "deliveries": deliveries})


def _failures_cell(failures: dict[str, int]) -> str:
    return "; ".join(f"{result_type}={sessions}" for result_type, sessions in failures.items())
