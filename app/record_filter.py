"""The filters every list of the read API shares, and how each store table answers them.

One `RecordFilter` is parsed from the query string and then turned into conditions on
whichever table can answer the question fastest: the daily totals when the filters only
touch what they are keyed by, the records themselves otherwise. Both forms select the same
reports: those whose date range overlaps the window [since, until).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from fastapi import Query
from sqlalchemy import ColumnElement, Table, and_, exists, or_, select

from app.models import (
    UNDATED,
    DailySourceTotals,
    DailyTotals,
    Record,
    RecordVerdict,
    Report,
    SourceAddress,
    table_of,
)
from app.problems import Problem
from ingest.aggregate_normaliser import packed_address
from ingest.daily_totals import dmarc_result
from ingest.report_identity import org_name_key

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


REPORTS = table_of(Report)
RECORDS = table_of(Record)
TOTALS = table_of(DailyTotals)
SOURCE_TOTALS = table_of(DailySourceTotals)
ADDRESSES = table_of(SourceAddress)
VERDICTS = table_of(RecordVerdict)
RecordClassName = Literal["aligned", "forwarded", "forwarding_failure", "misconfigured", "unauthorised"]


@dataclass(frozen=True, slots=True)
class Window:
    """Reports whose range overlaps [since, until) are selected; None leaves that side open."""

    since: datetime | None = None
    until: datetime | None = None

    @property
    def whole_days(self) -> bool:
        """True when both bounds fall on UTC midnight, so day-keyed totals answer exactly."""
        midnight = time(0, tzinfo=UTC)
        return all(bound is None or bound.timetz() == midnight for bound in (self.since, self.until))

    @property
    def since_day(self) -> date | None:
        return self.since.date() if self.since else None

    @property
    def is_open(self) -> bool:
        return self.since is None and self.until is None


@dataclass(frozen=True, slots=True)
class RecordFilter:
    domains: tuple[str, ...] = ()
    window: Window = field(default_factory=Window)
    org_keys: tuple[str, ...] = ()
    header_from: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()
    dispositions: tuple[str, ...] = ()
    dmarc: str | None = None
    classes: tuple[str, ...] = ()

    # -- which table can answer ----------------------------------------------------------------

    @property
    def has_record_filters(self) -> bool:
        return bool(self.header_from or self.networks or self.dispositions or self.dmarc or self.classes)

    @property
    def totals_answer(self) -> bool:
        """daily_totals is keyed by domain, days, reporter, disposition and DMARC result."""
        return self.window.whole_days and not self.header_from and not self.networks and not self.classes

    @property
    def source_totals_answer(self) -> bool:
        """daily_source_totals is keyed by domain, days, source address, disposition and result."""
        return self.window.whole_days and not self.header_from and not self.org_keys and not self.classes

    # -- conditions ----------------------------------------------------------------------------

    def report_conditions(self) -> list[ColumnElement[bool]]:
        """On aggregate_report: the report-level filters (domain, window, reporter)."""
        conditions: list[ColumnElement[bool]] = []
        if self.domains:
            conditions.append(REPORTS.c.policy_domain.in_(self.domains))
        if self.window.since is not None:
            conditions.append(REPORTS.c.date_end > self.window.since)
        if self.window.until is not None:
            conditions.append(REPORTS.c.date_begin < self.window.until)
        if self.org_keys:
            conditions.append(REPORTS.c.org_name_key.in_(self.org_keys))
        return conditions

    def record_conditions(self) -> list[ColumnElement[bool]]:
        """On aggregate_record: the record-level filters."""
        conditions: list[ColumnElement[bool]] = []
        if self.header_from:
            conditions.append(RECORDS.c.header_from.in_(self.header_from))
        if self.networks:
            conditions.append(or_(*(_network_condition(RECORDS.c.source_ip_packed, network)
                                    for network in self.networks)))
        if self.dispositions:
            conditions.append(RECORDS.c.disposition.in_(self.dispositions))
        if self.dmarc:
            conditions.append(dmarc_result(RECORDS.c.dkim, RECORDS.c.spf) == self.dmarc)
        if self.classes:
            # an alias: a query that also joins the verdicts must not have this one correlated away
            verdict = VERDICTS.alias("class_verdict")
            conditions.append(exists().where(verdict.c.report_id == RECORDS.c.report_id,
                                             verdict.c.record_no == RECORDS.c.record_no,
                                             verdict.c.record_class.in_(self.classes)))
        return conditions

    def totals_conditions(self, table: Table) -> list[ColumnElement[bool]]:
        """On daily_totals or daily_source_totals (only when the matching *_answer is true)."""
        conditions: list[ColumnElement[bool]] = []
        if self.domains:
            conditions.append(table.c.policy_domain.in_(self.domains))
        if not self.window.is_open:
            conditions.append(table.c.first_day != UNDATED)  # undated reports are in no window
        if self.window.since is not None:
            conditions.append(table.c.last_day >= self.window.since.date())
        if self.window.until is not None:
            conditions.append(table.c.first_day < self.window.until.date())
        if self.org_keys:
            conditions.append(table.c.org_name_key.in_(self.org_keys))
        if self.networks:
            conditions.append(table.c.source_id.in_(select(ADDRESSES.c.id).where(*self.address_conditions())))
        if self.dispositions:
            conditions.append(table.c.disposition.in_(self.dispositions))
        if self.dmarc:
            conditions.append(table.c.dmarc == self.dmarc)
        return conditions

    def address_conditions(self) -> list[ColumnElement[bool]]:
        """On source_address: the source networks, if any."""
        if not self.networks:
            return []
        return [or_(*(_network_condition(ADDRESSES.c.packed, network) for network in self.networks))]

    def matching_reports(self, conflicting_copies: bool) -> list[ColumnElement[bool]]:
        """On aggregate_report: the report-level filters, and a record matching the rest."""
        conditions = self.report_conditions() if conflicting_copies else self.analysed_reports()
        if self.has_record_filters:
            conditions.append(exists().where(and_(RECORDS.c.report_id == REPORTS.c.id,
                                                  *self.record_conditions())))
        return conditions

    def analysed_reports(self) -> list[ColumnElement[bool]]:
        """Report conditions for analytics: conflicting copies restate a first copy, so they
        are left out, as the daily totals leave them out."""
        return [REPORTS.c.conflict_of_id.is_(None), *self.report_conditions()]


def _network_condition(column: ColumnElement[bytes], network: IPNetwork) -> ColumnElement[bool]:
    low, high = packed_address(network.network_address), packed_address(network.broadcast_address)
    if low == high:
        return column == low
    return and_(column >= low, column <= high)


# -- parsing the query string -----------------------------------------------------------------

def parse_moment(text: str, name: str, end_of_day: bool = False) -> datetime:
    """A date (a whole UTC day; for `until` the day is included) or an ISO 8601 instant."""
    text = text.strip()
    try:
        if _DATE_ONLY.match(text):
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1) if end_of_day else day, time(0), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Problem(422, "invalid-filter", "Invalid filter",
                      f"{name}={text!r} is neither a date (YYYY-MM-DD) nor an ISO 8601 date-time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_network(text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise Problem(422, "invalid-filter", "Invalid filter",
                      f"source_ip={text!r} is not an IP address or a CIDR network") from None


def record_filter(
    domain: Annotated[list[str] | None, Query(
        description="Policy domain (repeat for several).", examples=["example.com"])] = None,
    since: Annotated[str | None, Query(
        description="Start of the window: a date (whole UTC day) or an ISO 8601 date-time. "
                    "Reports whose range overlaps the window are selected.",
        examples=["2026-11-01"])] = None,
    until: Annotated[str | None, Query(
        description="End of the window: a date (that day included) or an ISO 8601 date-time "
                    "(excluded).", examples=["2026-11-30"])] = None,
    org: Annotated[list[str] | None, Query(
        description="Reporter organisation, as in its reports (case and spacing ignored).",
        examples=["google.com"])] = None,
    header_from: Annotated[list[str] | None, Query(
        description="RFC5322.From domain of the messages.", examples=["example.com"])] = None,
    source_ip: Annotated[list[str] | None, Query(
        description="Source address or CIDR network (repeat for several).",
        examples=["192.0.2.0/24"])] = None,
    disposition: Annotated[list[Literal["none", "quarantine", "reject"]] | None, Query(
        description="Disposition the receiver applied.")] = None,
    dmarc: Annotated[Literal["pass", "fail"] | None, Query(
        description="DMARC result as the receiver evaluated it: pass when aligned SPF or DKIM passed.")]
    = None,
    record_class: Annotated[list[RecordClassName] | None, Query(
        alias="class", description="Rua's class of the record (repeat for several); records not judged "
                                   "yet match none.")] = None,
) -> RecordFilter:
    window = Window(parse_moment(since, "since") if since else None,
                    parse_moment(until, "until", end_of_day=True) if until else None)
    if window.since and window.until and window.since >= window.until:
        raise Problem(422, "invalid-filter", "Invalid filter", "since must be before until")
    return RecordFilter(
        domains=_folded(domain, lambda value: value.strip().lower().rstrip(".")),
        window=window,
        org_keys=_folded(org, lambda value: org_name_key(value) or ""),
        header_from=_folded(header_from, lambda value: value.strip().lower().rstrip(".")),
        networks=tuple(parse_network(value) for value in source_ip or ()),
        dispositions=tuple(dict.fromkeys(disposition or ())),
        dmarc=dmarc,
        classes=tuple(dict.fromkeys(record_class or ())),
    )


def _folded(values: list[str] | None, fold: object) -> tuple[str, ...]:
    assert callable(fold)
    return tuple(dict.fromkeys(fold(value) for value in values or () if value.strip()))
