"""Volumes and pass rates grouped by one key (source address or policy domain), paged.

Like the summary, each group is summed from the daily totals when the filters allow and from
the records otherwise; the page and the number of groups come from one query (a window
count over the groups), ordered by volume.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, Table, case, func, literal_column, select
from sqlalchemy.engine import Connection

from app.models import UNDATED
from app.record_filter import ADDRESSES, RECORDS, REPORTS, SOURCE_TOTALS, TOTALS, RecordFilter
from app.source_ranking import count_sources, top_sources
from app.summary_query import DISPOSITIONS, Tally
from ingest.daily_totals import dmarc_result, report_days

GroupKey = Literal["source_ip", "policy_domain"]


@dataclass(slots=True)
class Group:
    key: str
    tally: Tally
    first_day: date | None
    last_day: date | None


@dataclass(slots=True)
class GroupPage:
    total: int
    groups: list[Group]
    answered_from: str


def grouped(conn: Connection, flt: RecordFilter, by: GroupKey, limit: int | None, offset: int) -> GroupPage:
    if by == "source_ip" and flt.source_totals_answer:
        return _ranked_sources(conn, flt, limit, offset)
    if by == "policy_domain" and flt.totals_answer:
        query, answered_from = _totals_query(TOTALS, flt, TOTALS.c.policy_domain), "daily_totals"
    elif by == "policy_domain" and flt.source_totals_answer:
        query, answered_from = _totals_query(SOURCE_TOTALS, flt, SOURCE_TOTALS.c.policy_domain), \
            "daily_source_totals"
    else:
        query, answered_from = _records_query(flt, by), "records"
    query = query.order_by(literal_column("messages").desc(), literal_column("group_key")).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    rows = conn.execute(query).all()
    total = int(rows[0].group_count) if rows else _count_groups(conn, query, offset)
    return GroupPage(total, [group_of(row, answered_from == "records") for row in rows], answered_from)


def _ranked_sources(conn: Connection, flt: RecordFilter, limit: int | None, offset: int) -> GroupPage:
    """Sources by volume from the daily source totals, in two steps.

    A month can hold a hundred thousand sources. The page's ids are found first, on the
    message count alone (app.source_ranking), and only then is everything else summed for
    those few ids: several times cheaper than carrying every sum through a grouping and sort.
    """
    table = SOURCE_TOTALS
    conditions = flt.totals_conditions(table)
    address = ADDRESSES.c.ip.label("group_key")
    if limit is None:  # an export: everything, in one pass
        query = (_totals_query(table, flt, address, with_count=False)
                 .select_from(table.join(ADDRESSES, ADDRESSES.c.id == table.c.source_id))
                 .group_by(table.c.source_id, ADDRESSES.c.ip)
                 .order_by(literal_column("messages").desc(), table.c.source_id).offset(offset))
        groups = [group_of(row, False) for row in conn.execute(query)]
        return GroupPage(offset + len(groups), groups, "daily_source_totals")
    ids = top_sources(conn, flt, limit, offset)
    if ids is None:  # the lifetime bounds did not settle the page: group the whole window
        volume = func.sum(table.c.messages).label("volume")
        # `+ 0`: SQLite would otherwise group along the by-source index, reading every day of
        # the history through it, rather than read just the window from its covering index
        source = (table.c.source_id + literal_column("0")).label("source_id")
        ids = [row.source_id for row in conn.execute(
            select(source, volume).where(*conditions).group_by(source)
            .order_by(volume.desc(), source).offset(offset).limit(limit))]
    total = offset + len(ids) if len(ids) < limit and (ids or not offset) else count_sources(conn, flt)
    if not ids:
        return GroupPage(total, [], "daily_source_totals")
    # the page's sums, and its addresses, apart: joined, PostgreSQL would hash every address
    details = (_totals_query(table, flt, table.c.source_id, with_count=False)
               .where(table.c.source_id.in_(ids)))
    by_id = {row.group_key: group_of(row, False) for row in conn.execute(details)}
    for source_id, ip in conn.execute(select(ADDRESSES.c.id, ADDRESSES.c.ip).where(ADDRESSES.c.id.in_(ids))):
        by_id[source_id].key = ip
    return GroupPage(total, [by_id[source_id] for source_id in ids], "daily_source_totals")


def _sums(messages: ColumnElement[Any], records: ColumnElement[Any], dmarc: ColumnElement[Any],
          disposition: ColumnElement[Any], spf: ColumnElement[Any], dkim: ColumnElement[Any],
          with_count: bool = True) -> list[Any]:
    sums = [
        func.sum(messages).label("messages"),
        records.label("records"),
        func.sum(case((dmarc == "pass", messages), else_=0)).label("dmarc_pass"),
        spf.label("spf_aligned_pass"),
        dkim.label("dkim_aligned_pass"),
        *(func.sum(case((disposition == name, messages), else_=0)).label(f"disposition_{name}")
          for name in DISPOSITIONS),
    ]
    if with_count:  # the number of groups, beside each one: the page and its total in one query
        sums.append(func.count().over().label("group_count"))
    return sums


def totals_sums(table: Table, with_count: bool = False) -> list[Any]:
    """The sums of a group of daily-totals rows, and its first and last day."""
    dated = table.c.first_day != UNDATED
    return [*_sums(table.c.messages, func.sum(table.c.records), table.c.dmarc, table.c.disposition,
                   func.sum(table.c.spf_aligned_pass), func.sum(table.c.dkim_aligned_pass), with_count),
            func.min(case((dated, table.c.first_day))).label("first"),
            func.max(case((dated, table.c.last_day))).label("last")]


def records_sums(with_count: bool = False) -> list[Any]:
    """The sums of a group of records (joined with their reports), and its first and last moment."""
    messages = func.coalesce(RECORDS.c["count"], 0)
    return [*_sums(messages, func.count(), dmarc_result(RECORDS.c.dkim, RECORDS.c.spf),
                   func.coalesce(RECORDS.c.disposition, ""),
                   func.sum(case((RECORDS.c.spf == "pass", messages), else_=0)),
                   func.sum(case((RECORDS.c.dkim == "pass", messages), else_=0)), with_count),
            func.min(REPORTS.c.date_begin).label("first"), func.max(REPORTS.c.date_end).label("last")]


def _totals_query(table: Table, flt: RecordFilter, key: ColumnElement[Any],
                  with_count: bool = True) -> Select[Any]:
    return (select(key.label("group_key"), *totals_sums(table, with_count))
            .where(*flt.totals_conditions(table)).group_by(key))


def _records_query(flt: RecordFilter, by: GroupKey) -> Select[Any]:
    key = func.coalesce(RECORDS.c.source_ip if by == "source_ip" else REPORTS.c.policy_domain, "")
    return (select(key.label("group_key"), *records_sums(with_count=True))
            .select_from(RECORDS.join(REPORTS, RECORDS.c.report_id == REPORTS.c.id))
            .where(*flt.analysed_reports(), *flt.record_conditions()).group_by(key))


def _count_groups(conn: Connection, query: Select[Any], offset: int) -> int:
    """Only needed when the page is empty: past the end, or nothing matched."""
    if not offset:
        return 0
    inner = query.limit(None).offset(None).order_by(None).subquery()
    return int(conn.execute(select(func.count()).select_from(inner)).scalar_one())


def group_of(row: Any, from_records: bool) -> Group:
    tally = Tally(messages=int(row.messages or 0), records=int(row.records or 0),
                  dmarc_pass=int(row.dmarc_pass or 0), spf_aligned_pass=int(row.spf_aligned_pass or 0),
                  dkim_aligned_pass=int(row.dkim_aligned_pass or 0),
                  dispositions={name: int(getattr(row, f"disposition_{name}") or 0) for name in DISPOSITIONS})
    if from_records:
        first, last = (report_days(row.first, row.last) if row.first and row.last else (None, None))
    else:
        first, last = _as_date(row.first), _as_date(row.last)
    return Group(row.group_key, tally, first, last)


def _as_date(value: date | datetime | str | None) -> date | None:
    if value is None:
        return None
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    return value.date() if isinstance(value, datetime) else value
