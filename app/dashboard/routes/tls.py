"""SMTP TLS report pages: sessions per policy domain, the reports, and one report in full.

The filter is `/api/v1/tls`'s own (`tls_filter`), and the numbers come from the same queries
(`app.tls_query`), so a page and its JSON and CSV twins agree. Totals leave conflicting copies
out (they restate a first copy); the list shows them, flagged.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

import plotly.graph_objects as go
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.engine import Connection

from app.api.routes.tls import TlsReportIdPath, tls_filter
from app.api.tls_models import TlsPolicyOut, TlsReportDetail
from app.dashboard.figures import Figure, make_figure
from app.dashboard.routes.failures import filled, first
from app.dashboard.templating import render, url_with
from app.deps import EngineDep, PageDep, SignedInDep
from app.problems import Problem
from app.tls_query import (
    POLICIES,
    PolicyTotals,
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

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
FILTER_KEYS = ("since", "until", "domain", "organization")
KNOWN_DOMAINS_SHOWN = 500
SUCCESS_COLOUR, FAILURE_COLOUR = "#009E73", "#D55E00"


def page_filter(request: Request) -> TlsFilter:
    """`tls_filter` over the non-empty parameters: a GET form also sends its empty fields."""
    params: dict[str, list[str]] = {}
    for key, value in filled(request, FILTER_KEYS):
        params.setdefault(key, []).append(value)
    return tls_filter(since=first(params, "since"), until=first(params, "until"),
                      domain=params.get("domain"), organization=params.get("organization"))


TlsPageFilterDep = Annotated[TlsFilter, Depends(page_filter)]


def tls_domains(conn: Connection) -> list[str]:
    """The policy domains to offer in the filter: a walk of the policy-domain index."""
    rows = conn.execute(select(POLICIES.c.policy_domain).distinct()
                        .where(POLICIES.c.policy_domain.is_not(None))
                        .order_by(POLICIES.c.policy_domain).limit(KNOWN_DOMAINS_SHOWN))
    return [value for value in rows.scalars() if value]


@router.get("/tls", response_class=HTMLResponse)
def tls_page(request: Request, engine: EngineDep, _: SignedInDep, flt: TlsPageFilterDep,
             page: PageDep) -> HTMLResponse:
    limit = min(page.limit or PAGE_SIZE, 100)
    with engine.connect() as conn:
        summary = tls_summary(conn, flt)
        total = count_tls_reports(conn, flt)
        rows = tls_report_page(conn, flt, limit, page.offset)
        policies = policy_summaries(conn, (row["id"] for row in rows))
        domains = tls_domains(conn)
    given = filled(request, FILTER_KEYS)
    return render(request, "tls.html", {
        "title": "TLS reports", "active": "tls", "summary": summary, "rate": rate, "total": total,
        "rows": rows, "policies": policies, "limit": limit, "offset": page.offset, "domains": domains,
        "chosen": {key: [value for name, value in given if name == key] for key in FILTER_KEYS},
        "filtered": bool(given), "figures": True,
        "sessions_figure": sessions_figure(request, summary.policies),
        "failures_figure": failures_figure(summary.failures()),
        "summary_json": "/api/v1/tls/summary?" + urlencode(given),
        "summary_csv": "/api/v1/tls/summary?" + urlencode([*given, ("format", "csv")]),
        "list_json": "/api/v1/tls?" + urlencode([*given, ("limit", limit), ("offset", page.offset)]),
        "list_csv": "/api/v1/tls?" + urlencode([*given, ("format", "csv")])})


def policy_label(policy: PolicyTotals) -> str:
    return f"{policy.policy_domain or '(no domain)'} · {policy.policy_type}"


def sessions_figure(request: Request, policies: list[PolicyTotals]) -> Figure:
    """Successful and failed sessions per policy domain and type; a bar leads to that domain."""
    labels = [policy_label(p) for p in policies]
    links = [url_with(request, "/tls", domain=p.policy_domain) if p.policy_domain else None for p in policies]
    hover = [f"{rate(p.failed, p.successful + p.failed) or 0:.2%} failed" for p in policies]
    traces = [
        go.Bar(orientation="h", name="Successful", y=labels, x=[p.successful for p in policies],
               customdata=links, hovertext=hover, marker={"color": SUCCESS_COLOUR}),
        go.Bar(orientation="h", name="Failed", y=labels, x=[p.failed for p in policies], customdata=links,
               hovertext=hover, marker={"color": FAILURE_COLOUR}),
    ]
    return make_figure("tls-sessions", "Sessions per policy domain and type", traces, barmode="stack",
                       height=120 + 34 * max(len(policies), 1), hovermode="y unified",
                       yaxis={"type": "category", "autorange": "reversed", "automargin": True},
                       xaxis={"gridcolor": "#e5e5e5", "automargin": True, "rangemode": "tozero"})


def failures_figure(failures: dict[str, int]) -> Figure:
    ordered = sorted(failures.items(), key=lambda item: (-item[1], item[0]))
    traces = [go.Bar(name="Failed sessions", x=[name for name, _ in ordered],
                     y=[count for _, count in ordered], marker={"color": FAILURE_COLOUR})]
    return make_figure("tls-failures", "Failed sessions by result type", traces, showlegend=False,
                       xaxis={"type": "category", "automargin": True})


@router.get("/tls/{report_id}", response_class=HTMLResponse)
def tls_report_page_of(request: Request, engine: EngineDep, _: SignedInDep,
                       report_id: TlsReportIdPath) -> HTMLResponse:
    with engine.connect() as conn:
        report = get_tls_report(conn, report_id)
        if report is None:
            raise Problem(404, "not-found", "Not found", f"there is no TLS report {report_id}")
        policies = tls_policy_details(conn, report_id)
        deliveries = tls_deliveries(conn, report_id)
    # the API's own model: the page shows exactly what /api/v1/tls/{id} answers
    detail = TlsReportDetail.model_validate({
        **report, "failure_rate": rate(report["failed"], report["successful"] + report["failed"]),
        "policies": [TlsPolicyOut.model_validate(p) for p in policies], "deliveries": deliveries})
    return render(request, "tls_report.html", {
        "title": f"TLS report {report_id}", "active": "tls", "report": detail, "rate": rate})
