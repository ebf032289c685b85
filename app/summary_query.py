"""Message totals, pass rates and the per-day series, from the cheapest table that can answer.

Every path yields the same rows — (first day, disposition, DMARC result, sums) — and one
function folds them, so the daily totals and the records can never give different answers
for the same filters (a property the tests check). A report counts on its first day, moved
to the window's first day when it began before the window: a multi-day report is counted
once, on a day inside the window.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Row, Table, case, func, select
from sqlalchemy.engine import Connection

from app.models import UNDATED, ReportClassTotals, table_of
from app.record_filter import RECORDS, REPORTS, SOURCE_TOTALS, TOTALS, VERDICTS, RecordFilter
from app.report_query import count_reports
from ingest.daily_totals import dmarc_result, report_days

DISPOSITIONS = ("none", "quarantine", "reject")
CLASS_TOTALS = table_of(ReportClassTotals)

DayRow = tuple[date, str, str, int, int, int, int]
"""first_day, disposition, dmarc, messages, records, spf_aligned_pass, dkim_aligned_pass"""


@dataclass(slots=True)
class Tally:
    messages: int = 0
    records: int = 0
    dmarc_pass: int = 0
    spf_aligned_pass: int = 0
    dkim_aligned_pass: int = 0
    dispositions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DISPOSITIONS, 0))

    def add(self, disposition: str, dmarc: str, messages: int, records: int, spf: int, dkim: int) -> None:
        self.messages += messages
        self.records += records
        self.spf_aligned_pass += spf
        self.dkim_aligned_pass += dkim
        if dmarc == "pass":
            self.dmarc_pass += messages
        key = disposition or "unknown"
        self.dispositions[key] = self.dispositions.get(key, 0) + messages

    def rate(self, part: int) -> float | None:
        return round(part / self.messages, 6) if self.messages else None


@dataclass(slots=True)
class Summary:
    reports: int
    total: Tally
    days: dict[date, Tally]
    answered_from: str
    classes: dict[str, int] = field(default_factory=dict)
    """Messages of each class of Rua's verdicts (records not judged yet are in none)."""
    day_classes: dict[date, dict[str, int]] = field(default_factory=dict)


def summarise(conn: Connection, flt: RecordFilter) -> Summary:
    rows, answered_from = day_rows(conn, flt)
    total = Tally()
    days: dict[date, Tally] = {}
    since_day = flt.window.since_day
    for first_day, disposition, dmarc, messages, records, spf, dkim in rows:
        total.add(disposition, dmarc, messages, records, spf, dkim)
        if first_day == UNDATED:
            continue  # counted in the totals; has no day of its own
        day = max(first_day, since_day) if since_day else first_day
        days.setdefault(day, Tally()).add(disposition, dmarc, messages, records, spf, dkim)
    reports = count_reports(conn, flt, conflicting_copies=False)
    summary = Summary(reports, total, dict(sorted(days.items())), answered_from)
    for first_day, record_class, messages in class_rows(conn, flt):
        summary.classes[record_class] = summary.classes.get(record_class, 0) + messages
        if first_day == UNDATED:
            continue
        day = max(first_day, since_day) if since_day else first_day
        per_day = summary.day_classes.setdefault(day, {})
        per_day[record_class] = per_day.get(record_class, 0) + messages
    return summary


def class_rows(conn: Connection, flt: RecordFilter) -> Iterator[tuple[date, str, int]]:
    """(first day, class, messages) per report: from the per-report class totals when only
    report-level filters apply, else from the verdicts of the matching records."""
    if flt.has_record_filters:
        messages = func.coalesce(RECORDS.c["count"], 0)
        query = (select(REPORTS.c.date_begin, REPORTS.c.date_end, VERDICTS.c.record_class, func.sum(messages))
                 .select_from(RECORDS.join(REPORTS, RECORDS.c.report_id == REPORTS.c.id).join(
                     VERDICTS, (VERDICTS.c.report_id == RECORDS.c.report_id)
                     & (VERDICTS.c.record_no == RECORDS.c.record_no)))
                 .where(*flt.analysed_reports(), *flt.record_conditions())
                 .group_by(REPORTS.c.id, REPORTS.c.date_begin, REPORTS.c.date_end, VERDICTS.c.record_class))
    else:
        query = (select(REPORTS.c.date_begin, REPORTS.c.date_end, CLASS_TOTALS.c.record_class,
                        CLASS_TOTALS.c.messages)
                 .select_from(CLASS_TOTALS.join(REPORTS, CLASS_TOTALS.c.report_id == REPORTS.c.id))
                 .where(*flt.analysed_reports()))
    for begin, end, record_class, messages in conn.execute(query):
        yield report_days(begin, end)[0], record_class, int(messages or 0)


def day_rows(conn: Connection, flt: RecordFilter) -> tuple[Iterable[DayRow], str]:
    """The grouped rows for these filters, and the name of the table that gave them."""
    if flt.totals_answer:
        return _from_totals(conn, TOTALS, flt), "daily_totals"
    if flt.source_totals_answer:
        return _from_totals(conn, SOURCE_TOTALS, flt), "daily_source_totals"
    return _from_records(conn, flt), "records"


def _from_totals(conn: Connection, table: Table, flt: RecordFilter) -> list[DayRow]:
    query = (select(table.c.first_day, table.c.disposition, table.c.dmarc, func.sum(table.c.messages),
                    func.sum(table.c.records), func.sum(table.c.spf_aligned_pass),
                    func.sum(table.c.dkim_aligned_pass))
             .where(*flt.totals_conditions(table))
             .group_by(table.c.first_day, table.c.disposition, table.c.dmarc))
    return [_day_row(row) for row in conn.execute(query)]


def _from_records(conn: Connection, flt: RecordFilter) -> Iterator[DayRow]:
    messages = func.coalesce(RECORDS.c["count"], 0)
    disposition = func.coalesce(RECORDS.c.disposition, "")
    dmarc = dmarc_result(RECORDS.c.dkim, RECORDS.c.spf)
    query = (select(REPORTS.c.date_begin, REPORTS.c.date_end, disposition, dmarc, func.sum(messages),
                    func.count(), func.sum(case((RECORDS.c.spf == "pass", messages), else_=0)),
                    func.sum(case((RECORDS.c.dkim == "pass", messages), else_=0)))
             .select_from(RECORDS.join(REPORTS, RECORDS.c.report_id == REPORTS.c.id))
             .where(*flt.analysed_reports(), *flt.record_conditions())
             .group_by(REPORTS.c.id, REPORTS.c.date_begin, REPORTS.c.date_end, disposition, dmarc))
    for row in conn.execute(query):
        yield _day_row((report_days(row[0], row[1])[0], *row[2:]))


def _day_row(row: Row[Any] | tuple[Any, ...]) -> DayRow:
    first_day, disposition, dmarc, messages, records, spf, dkim = tuple(row)
    if isinstance(first_day, str):  # SQLite hands dates back as text from aggregates
        first_day = date.fromisoformat(first_day)
    return (first_day, disposition, dmarc, int(messages or 0), int(records or 0), int(spf or 0),
            int(dkim or 0))

