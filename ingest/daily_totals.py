"""Keep the pre-aggregated daily totals in step with the stored records.

Called inside a report's own write transaction, so the totals can never disagree with the
records they sum: either both are committed or neither is. One grouped INSERT ... SELECT per
table over the report's fresh rows, added onto existing totals by an upsert; rows are
produced in key order so that concurrent PostgreSQL writers lock totals rows in the same
order and cannot deadlock each other.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Table, case, func, literal, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from app.models import UNDATED, DailySourceTotals, DailyTotals, Record

_SUMS = ("messages", "records", "spf_aligned_pass", "dkim_aligned_pass")


def report_days(begin: datetime | None, end: datetime | None) -> tuple[date, date]:
    """The first and last UTC day a report's range touches; its end instant is exclusive.

    With these two days, "begin < until and end > since" for midnight bounds becomes
    "first_day < until_day and last_day >= since_day", which the totals tables can answer.
    """
    if begin is None or end is None:
        return UNDATED, UNDATED
    first = begin.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    return first, last


def dmarc_result(dkim: ColumnElement[str | None], spf: ColumnElement[str | None]) -> ColumnElement[str]:
    """DMARC passes when the reporter found aligned DKIM or aligned SPF passing (RFC 7489 §6.6.2)."""
    return case(((dkim == "pass") | (spf == "pass"), "pass"), else_="fail")


def add_report(conn: Connection, report_id: int, begin: datetime | None, end: datetime | None,
               policy_domain: str | None, org_name_key: str | None) -> None:
    first_day, last_day = report_days(begin, end)
    records = _table(Record)
    messages = func.coalesce(records.c["count"], 0)
    disposition = func.coalesce(records.c.disposition, "")
    dmarc = dmarc_result(records.c.dkim, records.c.spf)
    sums = (
        func.sum(messages),
        func.count(),
        func.sum(case((records.c.spf == "pass", messages), else_=0)),
        func.sum(case((records.c.dkim == "pass", messages), else_=0)),
    )
    fixed = (literal(first_day), literal(last_day), literal(policy_domain or ""))
    this_report = records.c.report_id == report_id

    totals = _table(DailyTotals)
    _upsert(conn, totals, ("first_day", "last_day", "policy_domain", "org_name_key", "disposition", "dmarc"),
            select(*fixed, literal(org_name_key or ""), disposition, dmarc, *sums)
            .where(this_report).group_by(disposition, dmarc).order_by(disposition, dmarc))

    source_ip = func.coalesce(records.c.source_ip, "")
    sources = _table(DailySourceTotals)
    _upsert(conn, sources, ("first_day", "last_day", "policy_domain", "source_ip", "disposition", "dmarc"),
            # the packed form follows from the text: grouping by it too changes nothing
            select(*fixed, source_ip, disposition, dmarc, *sums, records.c.source_ip_packed)
            .where(this_report).group_by(source_ip, records.c.source_ip_packed, disposition, dmarc)
            .order_by(source_ip, disposition, dmarc),
            extra=("source_ip_packed",))


def _upsert(conn: Connection, table: Table, key: tuple[str, ...], rows: object,
            extra: tuple[str, ...] = ()) -> None:
    insert = (postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)
    statement = insert.from_select([*key, *_SUMS, *extra], rows)  # type: ignore[arg-type]
    statement = statement.on_conflict_do_update(
        index_elements=[table.c[name] for name in key],
        set_={name: table.c[name] + statement.excluded[name] for name in _SUMS})
    conn.execute(statement)


def _table(model: type) -> Table:
    return model.__table__  # type: ignore[attr-defined, no-any-return]
