"""Failure report pages: the filtered list, and one report with the message it describes.

The filter is `/api/v1/failures`'s own (`app.failure_query.failure_filter`), read from the
same query parameters, so the list and its JSON and CSV twins select the same reports.
Everything in a failure report (headers, subjects, addresses) was written by whoever sent the
failing message: it reaches the page only through autoescaping.
"""

from __future__ import annotations

from typing import Annotated, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.engine import Connection

from app.api.failure_models import FailureDetail
from app.api.routes.failures import FailureIdPath
from app.dashboard.templating import render
from app.deps import EngineDep, PageDep, SignedInDep
from app.failure_query import (
    FAILURES,
    AuthFailureName,
    FailureFilter,
    count_failures,
    failure_filter,
    failure_page,
    get_failure,
    linked_records,
)
from app.problems import Problem

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
AUTH_FAILURES: tuple[str, ...] = get_args(AuthFailureName)
DELIVERY_RESULTS = ("delivered", "spam", "policy", "reject", "other")
FILTER_KEYS = ("since", "until", "domain", "source_ip", "auth_failure", "delivery_result")
KNOWN_DOMAINS_SHOWN = 500


def filled(request: Request, keys: tuple[str, ...]) -> list[tuple[str, str]]:
    """The filter's parameters that hold a value: a GET form also sends its empty fields."""
    return [(key, value.strip()) for key, value in request.query_params.multi_items()
            if key in keys and value.strip()]


def first(params: dict[str, list[str]], key: str) -> str | None:
    values = params.get(key)
    return values[0] if values else None


def page_filter(request: Request) -> FailureFilter:
    """`failure_filter` over the non-empty parameters, checked as the API checks them."""
    params: dict[str, list[str]] = {}
    for key, value in filled(request, FILTER_KEYS):
        params.setdefault(key, []).append(value)
    unknown = [value for value in params.get("auth_failure", ()) if value not in AUTH_FAILURES]
    if unknown:
        raise Problem(422, "invalid-filter", "Invalid filter",
                      f"auth_failure must be one of {', '.join(AUTH_FAILURES)}, not {unknown[0]!r}")
    return failure_filter(
        since=first(params, "since"), until=first(params, "until"), domain=params.get("domain"),
        source_ip=params.get("source_ip"), auth_failure=params.get("auth_failure"),  # type: ignore[arg-type]
        delivery_result=params.get("delivery_result"))


FailureFilterDep = Annotated[FailureFilter, Depends(page_filter)]


def failure_domains(conn: Connection) -> list[str]:
    """The reported domains to offer in the filter: a walk of the (domain, day) index."""
    rows = conn.execute(select(FAILURES.c.reported_domain).distinct()
                        .where(FAILURES.c.reported_domain.is_not(None))
                        .order_by(FAILURES.c.reported_domain).limit(KNOWN_DOMAINS_SHOWN))
    return [value for value in rows.scalars() if value]


@router.get("/failures", response_class=HTMLResponse)
def failures_page(request: Request, engine: EngineDep, _: SignedInDep, flt: FailureFilterDep,
                  page: PageDep) -> HTMLResponse:
    limit = min(page.limit or PAGE_SIZE, 100)
    with engine.connect() as conn:
        total = count_failures(conn, flt)
        rows = failure_page(conn, flt, limit, page.offset)
        domains = failure_domains(conn)
    given = filled(request, FILTER_KEYS)
    return render(request, "failures.html", {
        "title": "Failure reports", "active": "failures", "rows": rows, "total": total, "limit": limit,
        "offset": page.offset, "domains": domains, "auth_failures": AUTH_FAILURES,
        "delivery_results": DELIVERY_RESULTS,
        "chosen": {key: [value for name, value in given if name == key] for key in FILTER_KEYS},
        "filtered": bool(given),
        "json_url": "/api/v1/failures?" + urlencode([*given, ("limit", limit), ("offset", page.offset)]),
        "csv_url": "/api/v1/failures?" + urlencode([*given, ("format", "csv")])})


@router.get("/failures/{failure_id}", response_class=HTMLResponse)
def failure_page_of(request: Request, engine: EngineDep, _: SignedInDep,
                    failure_id: FailureIdPath) -> HTMLResponse:
    with engine.connect() as conn:
        failure = get_failure(conn, failure_id)
        if failure is None:
            raise Problem(404, "not-found", "Not found", f"there is no failure report {failure_id}")
        linked = linked_records(conn, failure)
    # the API's own model: the page shows exactly what /api/v1/failures/{id} answers
    detail = FailureDetail.model_validate({
        **failure,
        "original_headers": [{"name": name, "value": value} for name, value in failure["original_headers"]],
        "other_fields": [{"name": name, "value": value} for name, value in failure["other_fields"]],
        "linked_records": linked})
    return render(request, "failure.html", {
        "title": f"Failure report {failure_id}", "active": "failures", "failure": detail})
