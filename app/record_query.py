"""Records as flat rows with their authentication results, for lists, report pages and exports.

Pages are read in the records' key order (newest report first, then position), which is the
primary key's order: a page is an index walk that stops after `limit` rows, however many
millions match. Exports walk the same order in keyset pages so memory stays flat.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, func, or_, select
from sqlalchemy.engine import Connection

from app.models import RecordDkimResult, RecordReason, RecordSpfResult, RecordVerdict, table_of
from app.record_filter import ADDRESSES, RECORDS, REPORTS, TOTALS, RecordFilter
from ingest.daily_totals import dmarc_result

REASONS = table_of(RecordReason)
DKIM_RESULTS = table_of(RecordDkimResult)
SPF_RESULTS = table_of(RecordSpfResult)
VERDICTS = table_of(RecordVerdict)

RECORD_FIELDS = ("source_ip", "count", "disposition", "dkim", "spf", "header_from", "envelope_from",
                 "envelope_to")


@dataclass(slots=True)
class RecordRow:
    report_id: int
    record_no: int
    org_name: str | None
    policy_domain: str | None
    date_begin: datetime | None
    date_end: datetime | None
    source_ip: str | None
    count: int | None
    disposition: str | None
    dkim: str | None
    spf: str | None
    dmarc: str
    header_from: str | None
    envelope_from: str | None
    envelope_to: str | None
    reasons: list[dict[str, Any]] = field(default_factory=list)
    dkim_results: list[dict[str, Any]] = field(default_factory=list)
    spf_results: list[dict[str, Any]] = field(default_factory=list)
    verdict: dict[str, Any] | None = None
    sender: dict[str, Any] | None = None


SENDER_FIELDS = ("sender", "service", "service_type", "ptr", "base_domain", "asn", "as_name", "country")


def _base(flt: RecordFilter) -> Select[Any]:
    return (select(RECORDS.c.report_id, RECORDS.c.record_no, REPORTS.c.org_name, REPORTS.c.policy_domain,
                   REPORTS.c.date_begin, REPORTS.c.date_end,
                   *(RECORDS.c[name] for name in RECORD_FIELDS),
                   dmarc_result(RECORDS.c.dkim, RECORDS.c.spf).label("dmarc"))
            .select_from(RECORDS.join(REPORTS, RECORDS.c.report_id == REPORTS.c.id))
            .where(*flt.analysed_reports(), *flt.record_conditions()))


def count_records(conn: Connection, flt: RecordFilter) -> int:
    if flt.totals_answer:
        total = select(func.sum(TOTALS.c.records)).where(*flt.totals_conditions(TOTALS))
        return int(conn.execute(total).scalar() or 0)
    query = (select(func.count()).select_from(RECORDS.join(REPORTS, RECORDS.c.report_id == REPORTS.c.id))
             .where(*flt.analysed_reports(), *flt.record_conditions()))
    return int(conn.execute(query).scalar_one())


def record_page(conn: Connection, flt: RecordFilter, limit: int, offset: int) -> list[RecordRow]:
    query = (_base(flt).order_by(RECORDS.c.report_id.desc(), RECORDS.c.record_no)
             .limit(limit).offset(offset))
    return with_results(conn, [_row(row) for row in conn.execute(query)])


def report_records(conn: Connection, report_id: int, limit: int, offset: int) -> list[RecordRow]:
    """One report's records in document order (conflicting copies included: asked for by id)."""
    query = (select(*_base(RecordFilter()).selected_columns)
             .select_from(RECORDS.join(REPORTS, RECORDS.c.report_id == REPORTS.c.id))
             .where(RECORDS.c.report_id == report_id)
             .order_by(RECORDS.c.record_no).limit(limit).offset(offset))
    return with_results(conn, [_row(row) for row in conn.execute(query)])


def all_records(conn: Connection, flt: RecordFilter, page: int = 5000) -> Iterator[RecordRow]:
    """Every matching record in page order, read in keyset pages (for CSV exports)."""
    after: tuple[int, int] | None = None
    while True:
        query = _base(flt).order_by(RECORDS.c.report_id.desc(), RECORDS.c.record_no).limit(page)
        if after is not None:
            query = query.where(or_(RECORDS.c.report_id < after[0],
                                    and_(RECORDS.c.report_id == after[0], RECORDS.c.record_no > after[1])))
        rows = with_results(conn, [_row(row) for row in conn.execute(query)])
        yield from rows
        if len(rows) < page:
            return
        after = (rows[-1].report_id, rows[-1].record_no)


def with_results(conn: Connection, rows: list[RecordRow]) -> list[RecordRow]:
    """Attach reasons, DKIM/SPF results, Rua's verdict and the source's identity to a page of
    records (five queries)."""
    if not rows:
        return rows
    by_key = {(row.report_id, row.record_no): row for row in rows}
    keys = list(by_key)
    for table, attribute, columns in (
        (REASONS, "reasons", ("type", "comment")),
        (DKIM_RESULTS, "dkim_results", ("domain", "selector", "result", "human_result")),
        (SPF_RESULTS, "spf_results", ("domain", "scope", "result", "human_result")),
    ):
        for part in conn.execute(select(table.c.report_id, table.c.record_no, *(table.c[c] for c in columns))
                                 .where(_keys_condition(table, keys))
                                 .order_by(table.c.report_id, table.c.record_no, table.c.seq)):
            getattr(by_key[(part[0], part[1])], attribute).append(dict(zip(columns, part[2:], strict=True)))
    for verdict in conn.execute(select(VERDICTS).where(_keys_condition(VERDICTS, keys))):
        by_key[(verdict.report_id, verdict.record_no)].verdict = verdict_json(verdict)
    addresses = {row.source_ip for row in rows if row.source_ip}
    senders = {found.ip: {name: getattr(found, name) for name in SENDER_FIELDS} for found in conn.execute(
        select(ADDRESSES.c.ip, *(ADDRESSES.c[name] for name in SENDER_FIELDS))
        .where(ADDRESSES.c.ip.in_(addresses), ADDRESSES.c.identified_at.is_not(None)))}
    for row in rows:
        row.sender = senders.get(row.source_ip or "")
    return rows


def _keys_condition(table: Table, keys: Sequence[tuple[int, int]]) -> ColumnElement[bool]:
    """One key range per report: SQLite answers a row-value IN over several reports by
    scanning the whole table, but an OR of per-report ranges through the primary key."""
    by_report: dict[int, list[int]] = {}
    for report, number in keys:
        by_report.setdefault(report, []).append(number)
    return or_(*(and_(table.c.report_id == report, table.c.record_no.in_(numbers))
                 for report, numbers in by_report.items()))


def _row(row: Any) -> RecordRow:
    return RecordRow(**row._mapping)


def verdict_json(row: Any) -> dict[str, Any]:
    """A stored verdict as the API shows it."""
    dkim = row.dkim if not isinstance(row.dkim, str) else json.loads(row.dkim)
    return {"class": row.record_class, "dmarc": row.dmarc, "spf_aligned": row.spf_aligned,
            "dkim_aligned": row.dkim_aligned, "spf_result": row.spf_result,
            "own_spf_result": row.own_spf_result, "dkim": dkim, "reasons": row.reasons,
            "org_domain": row.org_domain, "discovery_method": row.discovery_method,
            "dns_as_of": row.dns_as_of}
