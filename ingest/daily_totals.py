"""Keep the pre-aggregated daily totals in step with the stored records.

Called inside a report's own write transaction, so the totals can never disagree with the
records they sum: either both are committed or neither is. One grouped INSERT ... SELECT per
table over the report's fresh rows, added onto existing totals by an upsert; rows are
produced in key order so that concurrent PostgreSQL writers lock totals rows in the same
order and cannot deadlock each other.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Date, Select, String, Table, bindparam, case, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Executable

from app.models import UNDATED, DailySourceTotals, DailyTotals, Record, SourceAddress, table_of

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
    values = {"report": report_id, "first_day": first_day, "last_day": last_day,
              "policy_domain": policy_domain or "", "org_name_key": org_name_key or ""}
    for statement in _statements(conn.dialect.name):
        conn.execute(statement, values)


@cache
def _statements(dialect: str) -> tuple[Executable, ...]:
    """The upserts, built once per dialect (building them costs more than running them)."""
    records, addresses = table_of(Record), table_of(SourceAddress)
    this_report = records.c.report_id == bindparam("report")
    source_ip = func.coalesce(records.c.source_ip, "")
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    messages = func.coalesce(records.c["count"], 0)
    first_day, last_day = bindparam("first_day", type_=Date), bindparam("last_day", type_=Date)
    # addresses first, in order (concurrent PostgreSQL writers then wait, never deadlock):
    # new ones numbered, known ones' lifetime count and days widened
    address_rows = insert(addresses).from_select(
        ["ip", "packed", "messages", "first_day", "last_day"],
        select(source_ip, records.c.source_ip_packed, func.sum(messages), first_day, last_day)
        .where(this_report).group_by(source_ip, records.c.source_ip_packed).order_by(source_ip),
    )
    new_addresses = address_rows.on_conflict_do_update(
        index_elements=[addresses.c.ip],
        set_={"messages": addresses.c.messages + address_rows.excluded.messages,
              "first_day": case((address_rows.excluded.first_day < addresses.c.first_day,
                                 address_rows.excluded.first_day), else_=addresses.c.first_day),
              "last_day": case((address_rows.excluded.last_day > addresses.c.last_day,
                                address_rows.excluded.last_day), else_=addresses.c.last_day)})

    disposition = func.coalesce(records.c.disposition, "")
    dmarc = dmarc_result(records.c.dkim, records.c.spf)
    sums = (
        func.sum(messages),
        func.count(),
        func.sum(case((records.c.spf == "pass", messages), else_=0)),
        func.sum(case((records.c.dkim == "pass", messages), else_=0)),
    )
    fixed = (first_day, last_day, bindparam("policy_domain", type_=String))
    totals = _upsert(dialect, table_of(DailyTotals),
                     ("first_day", "last_day", "policy_domain", "org_name_key", "disposition", "dmarc"),
                     select(*fixed, bindparam("org_name_key", type_=String), disposition, dmarc, *sums)
                     .where(this_report).group_by(disposition, dmarc).order_by(disposition, dmarc))
    source_id = addresses.c.id
    sources = _upsert(dialect, table_of(DailySourceTotals),
                      ("first_day", "last_day", "policy_domain", "source_id", "disposition", "dmarc"),
                      select(*fixed, source_id, disposition, dmarc, *sums)
                      .select_from(records.join(addresses, addresses.c.ip == source_ip))
                      .where(this_report).group_by(source_id, disposition, dmarc)
                      .order_by(source_id, disposition, dmarc))
    return new_addresses, totals, sources


def _upsert(dialect: str, table: Table, key: tuple[str, ...], rows: Select[Any]) -> Executable:
    insert = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(table)
    statement = insert.from_select([*key, *_SUMS], rows)
    return statement.on_conflict_do_update(
        index_elements=[table.c[name] for name in key],
        set_={name: table.c[name] + statement.excluded[name] for name in _SUMS})

