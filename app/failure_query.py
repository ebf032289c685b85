"""Stored failure reports: the filtered list, one report, and the aggregate records it links to.

A failure report describes one message; the aggregate reports count the same traffic. Linking
the two (same source address, same domain, a report period covering the arrival day) is done
at read time: it is an index lookup on aggregate_record.source_ip_packed narrowed by the
report's dates, cheap for one report, and it stays right when either side arrives later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import Query
from sqlalchemy import ColumnElement, String, and_, cast, func, or_, select
from sqlalchemy.engine import Connection

from app.failure_models import FailureReport
from app.models import table_of
from app.problems import Problem
from app.record_filter import RECORDS, REPORTS, IPNetwork, Window, parse_moment, parse_network
from ingest.aggregate_normaliser import packed_address

FAILURES = table_of(FailureReport)
AuthFailureName = Literal["adsp", "bodyhash", "revoked", "signature", "spf", "dmarc"]
LINKED_LIMIT = 200
"""Aggregate records listed with one failure report; more would be the same story repeated."""


@dataclass(frozen=True, slots=True)
class FailureFilter:
    window: Window = field(default_factory=Window)
    domains: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()
    auth_failures: tuple[str, ...] = ()
    delivery_results: tuple[str, ...] = ()

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        since, until = self.window.since, self.window.until
        if self.window.whole_days:  # the indexed day column answers whole days exactly
            if since is not None:
                conditions.append(FAILURES.c.arrival_day >= since.date())
            if until is not None:
                conditions.append(FAILURES.c.arrival_day < until.date())
        else:
            if since is not None:
                conditions.append(FAILURES.c.arrival_date >= since)
            if until is not None:
                conditions.append(FAILURES.c.arrival_date < until)
        if self.domains:
            conditions.append(FAILURES.c.reported_domain.in_(self.domains))
        if self.networks:
            conditions.append(or_(*(_in_network(network) for network in self.networks)))
        if self.auth_failures:
            # the values are a closed set of plain tokens, so the quoted token found in the JSON
            # text is exact, and this reads the same on SQLite's JSON and PostgreSQL's JSONB
            as_text = cast(FAILURES.c.auth_failure, String)
            conditions.append(or_(*(as_text.like(f'%"{name}"%') for name in self.auth_failures)))
        if self.delivery_results:
            conditions.append(FAILURES.c.delivery_result.in_(self.delivery_results))
        return conditions


def _in_network(network: IPNetwork) -> ColumnElement[bool]:
    low, high = packed_address(network.network_address), packed_address(network.broadcast_address)
    column = FAILURES.c.source_ip_packed
    return column == low if low == high else and_(column >= low, column <= high)


def failure_filter(
    since: Annotated[str | None, Query(
        description="First arrival day (a UTC date), or an ISO 8601 date-time.", examples=["2026-11-01"])]
    = None,
    until: Annotated[str | None, Query(
        description="Last arrival day (that day included), or an ISO 8601 date-time (excluded).",
        examples=["2026-11-30"])] = None,
    domain: Annotated[list[str] | None, Query(
        description="Reported domain (repeat for several).", examples=["example.com"])] = None,
    source_ip: Annotated[list[str] | None, Query(
        description="Source address or CIDR network (repeat for several).", examples=["192.0.2.0/24"])]
    = None,
    auth_failure: Annotated[list[AuthFailureName] | None, Query(
        description="Reports naming this Auth-Failure type (repeat for any of several).")] = None,
    delivery_result: Annotated[list[str] | None, Query(
        description="Delivery-Result as reported: delivered, spam, policy, reject, other (or a "
                    "generator's own token).", examples=["delivered"])] = None,
) -> FailureFilter:
    window = Window(parse_moment(since, "since") if since else None,
                    parse_moment(until, "until", end_of_day=True) if until else None)
    if window.since and window.until and window.since >= window.until:
        raise Problem(422, "invalid-filter", "Invalid filter", "since must be before until")
    return FailureFilter(
        window=window,
        domains=tuple(dict.fromkeys(value.strip().lower().rstrip(".") for value in domain or ()
                                    if value.strip())),
        networks=tuple(parse_network(value) for value in source_ip or ()),
        auth_failures=tuple(dict.fromkeys(auth_failure or ())),
        delivery_results=tuple(dict.fromkeys(value.strip().lower() for value in delivery_result or ()
                                             if value.strip())),
    )


def count_failures(conn: Connection, flt: FailureFilter) -> int:
    query = select(func.count()).select_from(FAILURES).where(*flt.conditions())
    return int(conn.execute(query).scalar_one())


def failure_page(conn: Connection, flt: FailureFilter, limit: int | None,
                 offset: int) -> list[dict[str, Any]]:
    """Newest arrival first; reports without an arrival date last (on every database)."""
    query = (select(FAILURES).where(*flt.conditions())
             .order_by(FAILURES.c.arrival_day.desc().nulls_last(),
                       FAILURES.c.arrival_date.desc().nulls_last(), FAILURES.c.id.desc())
             .offset(offset).limit(limit))
    return [dict(row._mapping) for row in conn.execute(query)]


def get_failure(conn: Connection, failure_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(FAILURES).where(FAILURES.c.id == failure_id)).first()
    return dict(row._mapping) if row else None


def linked_records(conn: Connection, failure: dict[str, Any],
                   limit: int = LINKED_LIMIT) -> list[dict[str, Any]]:
    """Aggregate records of the failure's source address and domain (as header_from or as the
    report's policy domain) from reports whose period overlaps the failure's UTC arrival day."""
    packed, day = failure.get("source_ip_packed"), failure.get("arrival_day")
    domains = sorted({value for value in (failure.get("reported_domain"), failure.get("header_from"))
                      if value})
    if packed is None or day is None or not domains:
        return []
    start = datetime.combine(day, time(0), UTC)
    query = (select(RECORDS.c.report_id, RECORDS.c.record_no, REPORTS.c.org_name,
                    REPORTS.c.date_begin.label("begin"), REPORTS.c.date_end.label("end"), RECORDS.c.count,
                    RECORDS.c.disposition, RECORDS.c.dkim, RECORDS.c.spf, RECORDS.c.header_from,
                    REPORTS.c.policy_domain)
             .join(REPORTS, REPORTS.c.id == RECORDS.c.report_id)
             .where(RECORDS.c.source_ip_packed == packed,
                    or_(RECORDS.c.header_from.in_(domains), REPORTS.c.policy_domain.in_(domains)),
                    REPORTS.c.date_begin < start + timedelta(days=1), REPORTS.c.date_end > start)
             .order_by(REPORTS.c.date_begin.desc(), RECORDS.c.report_id.desc(), RECORDS.c.record_no)
             .limit(limit))
    return [dict(row._mapping) for row in conn.execute(query)]
