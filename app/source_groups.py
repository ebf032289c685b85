"""Sources grouped by who they are: service, base domain, AS, country, or address.

The address grouping is app.grouped_query's (ranked from the daily source totals). The
others group the same totals through `source_address`, where enrichment wrote each address's
identity, so a service with five thousand addresses is one row summed in one query. The
classes of the DNS issue are not in the daily totals (they are judged after ingest); they are
summed from the verdicts, for the page's groups only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import ColumnElement, String, case, cast, func, literal, literal_column, select
from sqlalchemy.engine import Connection

from app.grouped_query import Group, GroupPage, group_of, grouped, records_sums, totals_sums
from app.models import ReportClassTotals, ReportSourceClasses, table_of
from app.record_filter import ADDRESSES, RECORDS, REPORTS, SOURCE_TOTALS, VERDICTS, RecordFilter
from ingest.record_class import RecordClass
from ingest.source_enrichment import IDENTITY_COLUMNS

SourceGrouping = Literal["service", "base_domain", "asn", "country", "ip"]
PENDING = "pending"
"""the key of addresses not identified yet, and the class of records not judged yet"""
UNKNOWN = "unknown"
SOURCE_CLASSES = table_of(ReportSourceClasses)
CLASS_TOTALS = table_of(ReportClassTotals)


@dataclass(slots=True)
class SourceGroup:
    group: Group
    sources: int
    identity: dict[str, Any] = field(default_factory=dict)
    classes: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class SourceGroupPage:
    total: int
    groups: list[SourceGroup]


def _key(by: SourceGrouping) -> ColumnElement[Any]:
    a = ADDRESSES.c
    identified = a.identified_at.is_not(None)
    if by == "service":
        return case((identified, func.coalesce(a.sender, UNKNOWN)), else_=PENDING)
    if by == "base_domain":
        return case((identified, func.coalesce(a.base_domain, UNKNOWN)), else_=PENDING)
    if by == "asn":
        # the AS number where the network database has one, else its name: both name one AS
        return case((identified, func.coalesce(cast(a.asn, String), a.as_name, UNKNOWN)), else_=PENDING)
    if by == "country":
        return case((identified, func.coalesce(a.country, UNKNOWN)), else_=PENDING)
    return a.ip


def source_groups(conn: Connection, flt: RecordFilter, by: SourceGrouping, limit: int | None,
                  offset: int) -> SourceGroupPage:
    if by == "ip":
        page = grouped(conn, flt, "source_ip", limit, offset)
        groups = [SourceGroup(group, 1) for group in page.groups]
    else:
        groups, total = _by_identity(conn, flt, by, limit, offset)
        page = GroupPage(total, [], "")
    keys = [group.group.key for group in groups]
    if keys:
        _add_identity(conn, by, groups)
        classes = _classes(conn, flt, by, keys)
        for group in groups:
            group.classes = classes.get(group.group.key, {})
    return SourceGroupPage(page.total, groups)


def _by_identity(conn: Connection, flt: RecordFilter, by: SourceGrouping, limit: int | None,
                 offset: int) -> tuple[list[SourceGroup], int]:
    key = _key(by).label("group_key")
    if flt.source_totals_answer:
        table = SOURCE_TOTALS
        sources = func.count(func.distinct(table.c.source_id)).label("sources")
        query = (select(key, *totals_sums(table), sources)
                 .select_from(table.join(ADDRESSES, ADDRESSES.c.id == table.c.source_id))
                 .where(*flt.totals_conditions(table)))
        from_records = False
    else:
        query = (select(key, *records_sums(), func.count(func.distinct(RECORDS.c.source_ip)).label("sources"))
                 .select_from(RECORDS.join(REPORTS, RECORDS.c.report_id == REPORTS.c.id)
                              .join(ADDRESSES, ADDRESSES.c.ip == func.coalesce(RECORDS.c.source_ip, "")))
                 .where(*flt.analysed_reports(), *flt.record_conditions()))
        from_records = True
    query = (query.group_by(key).add_columns(func.count().over().label("group_count"))
             .order_by(literal_column("messages").desc(), literal_column("group_key")).offset(offset))
    if limit is not None:
        query = query.limit(limit)
    rows = conn.execute(query).all()
    total = int(rows[0].group_count) if rows else 0
    if not rows and offset:
        inner = query.limit(None).offset(None).order_by(None).subquery()
        total = int(conn.execute(select(func.count()).select_from(inner)).scalar_one())
    return [SourceGroup(group_of(row, from_records), int(row.sources)) for row in rows], total


_IDENTITY = IDENTITY_COLUMNS
_SHARED = {"service": ("service", "service_type"), "base_domain": (), "asn": ("asn", "as_name"),
           "country": ()}


def _add_identity(conn: Connection, by: SourceGrouping, groups: list[SourceGroup]) -> None:
    """An address's whole identity; for the other groupings, what all of a group's addresses
    share (a service's type, an AS's name)."""
    keys = [group.group.key for group in groups]
    if by == "ip":
        columns = [getattr(ADDRESSES.c, name) for name in _IDENTITY]
        found = {row.ip: row for row in conn.execute(
            select(ADDRESSES.c.ip, ADDRESSES.c.identified_at, *columns).where(ADDRESSES.c.ip.in_(keys)))}
        for group in groups:
            row = found.get(group.group.key)
            identified = row is not None and row.identified_at is not None
            group.identity = {name: getattr(row, name) if identified else None for name in _IDENTITY}
            if not identified:
                group.identity["sender"] = PENDING
        return
    shared = _SHARED[by]
    if not shared:
        return
    key = _key(by)
    values: dict[str, dict[str, set[Any]]] = defaultdict(lambda: defaultdict(set))
    for row in conn.execute(select(key.label("k"), *(getattr(ADDRESSES.c, name) for name in shared))
                            .where(key.in_(keys)).distinct()):
        for name in shared:
            values[row.k][name].add(getattr(row, name))
    for group in groups:
        seen = values.get(group.group.key, {})
        group.identity = {name: next(iter(seen[name])) if len(seen.get(name, ())) == 1 else None
                          for name in shared}


def source_classes_in_window(flt: RecordFilter) -> ColumnElement[bool]:
    """The per-address class rows of the window's reports, read report by report: the rows of
    one report lie together under its id, and a window is a fraction of the history."""
    return SOURCE_CLASSES.c.report_id.in_(select(REPORTS.c.id).where(*flt.analysed_reports()))


def never_judged_reports(conn: Connection, flt: RecordFilter) -> list[int]:
    """The window's reports the judge has not reached yet (no class totals): usually none, as
    it runs right after ingest, so their records are rarely read."""
    judged = select(CLASS_TOTALS.c.report_id).where(CLASS_TOTALS.c.report_id == REPORTS.c.id).exists()
    return list(conn.execute(select(REPORTS.c.id).where(*flt.analysed_reports(), ~judged)).scalars())


def _classes(conn: Connection, flt: RecordFilter, by: SourceGrouping,
             keys: list[str]) -> dict[str, dict[str, int]]:
    """Messages per class of the page's groups, from the verdicts; records not judged yet count
    as `pending`.

    Without a record-level filter, the judged part is read from the per-address class rows the
    judge writes (report_source_classes: one row per address, class and report, not per record),
    and only reports never judged are read record by record, as pending."""
    key = _key(by)
    found: dict[str, dict[str, int]] = defaultdict(dict)
    if not flt.has_record_filters:
        s = SOURCE_CLASSES.c
        # one row per group, a sum per class (grouping by class too costs a third more)
        per_class = [func.sum(case((s.record_class == name, s.messages), else_=0)) for name in RecordClass]
        judged = (select(key.label("k"), *per_class)
                  .select_from(SOURCE_CLASSES.join(ADDRESSES, ADDRESSES.c.id == s.source_id))
                  .where(source_classes_in_window(flt), key.in_(keys))
                  .group_by(key))
        for k, *sums in conn.execute(judged):
            found[k].update((str(name), int(m)) for name, m in zip(RecordClass, sums, strict=True) if m)
        never_judged = never_judged_reports(conn, flt)
        for chunk in range(0, len(never_judged), 500):
            unjudged = (select(key.label("k"), func.sum(func.coalesce(RECORDS.c["count"], 0)).label("m"))
                        .select_from(RECORDS.join(ADDRESSES,
                                                  ADDRESSES.c.ip == func.coalesce(RECORDS.c.source_ip, "")))
                        .where(RECORDS.c.report_id.in_(never_judged[chunk:chunk + 500]), key.in_(keys))
                        .group_by(key))
            for pending in conn.execute(unjudged):
                found[pending.k][PENDING] = found[pending.k].get(PENDING, 0) + int(pending.m or 0)
        return found
    record_class = func.coalesce(VERDICTS.c.record_class, literal(PENDING))
    messages = func.sum(func.coalesce(RECORDS.c["count"], 0))
    query = (select(key.label("k"), record_class.label("c"), messages.label("m"))
             .select_from(RECORDS.join(REPORTS, RECORDS.c.report_id == REPORTS.c.id)
                          .join(ADDRESSES, ADDRESSES.c.ip == func.coalesce(RECORDS.c.source_ip, ""))
                          .outerjoin(VERDICTS, (VERDICTS.c.report_id == RECORDS.c.report_id)
                                     & (VERDICTS.c.record_no == RECORDS.c.record_no)))
             .where(*flt.analysed_reports(), *flt.record_conditions(), key.in_(keys))
             .group_by(key, record_class))
    for row in conn.execute(query):
        found[row.k][row.c] = int(row.m or 0)
    return found
