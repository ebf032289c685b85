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

from sqlalchemy import ColumnElement, Engine, String, case, cast, func, literal, literal_column, select
from sqlalchemy.engine import Connection

from app.concurrent_reads import Read, read_concurrently
from app.grouped_query import Group, group_of, grouped, records_sums, totals_sums
from app.models import ReportClassTotals, ReportSourceClasses, table_of
from app.record_filter import ADDRESSES, RECORDS, REPORTS, SOURCE_TOTALS, VERDICTS, RecordFilter
from app.sender_ranking import judged_rows
from app.summary_query import Tally
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
        return _named(identified, a.sender)
    if by == "base_domain":
        return _named(identified, a.base_domain)
    if by == "asn":
        # the AS number where the network database has one, else its name: both name one AS
        return _named(identified, cast(a.asn, String), a.as_name)
    if by == "country":
        return _named(identified, a.country)
    return a.ip


def _named(identified: ColumnElement[bool], *names: ColumnElement[Any]) -> ColumnElement[Any]:
    """The first of `names` an identified address has, else `unknown`; `pending` before
    identification."""
    return case((identified, func.coalesce(*names, UNKNOWN)), else_=PENDING)


def source_groups(engine: Engine, flt: RecordFilter, by: SourceGrouping, limit: int | None,
                  offset: int) -> SourceGroupPage:
    """A page of groups, largest first, each summed, named and split by class; the reads
    that need only the page's keys run at once (app.concurrent_reads).

    SQLite ranks on the messages alone and sums the page's groups in a read of their own
    (see `_ranking`); PostgreSQL, and a request for every group, sum in the ranking itself.
    """
    in_two_steps = by != "ip" and limit is not None and engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if by == "ip":
            page = grouped(conn, flt, "source_ip", limit, offset)
            groups, total = [SourceGroup(group, 1) for group in page.groups], page.total
        else:
            groups, total = _ranking(conn, flt, by, limit, offset, summed=not in_two_steps)
    keys = [group.group.key for group in groups]
    if not keys:
        return SourceGroupPage(total, [])
    reads: list[Read] = [lambda conn: _classes(conn, flt, by, keys), lambda conn: _identities(conn, by, keys)]
    if in_two_steps:
        reads.append(lambda conn: _sums(conn, flt, by, keys))
    classes, identities, *summed = read_concurrently(engine, *reads)
    if summed:
        # a group whose addresses were named in between (identification runs beside the
        # pages) is not in the second read: left out of this page, back in the next
        groups = [summed[0][key] for key in keys if key in summed[0]]
    for group in groups:
        group.classes = classes.get(group.group.key, {})
        group.identity = identities.get(group.group.key, {})
    return SourceGroupPage(total, groups)


def _grouped_rows(flt: RecordFilter, by: SourceGrouping) -> tuple[Any, list[Any], Any, list[Any], bool]:
    """What a grouping reads: the rows (daily source totals where they answer, else the
    records), their conditions, the messages summed, the full sums, and whether from records."""
    if flt.source_totals_answer:
        table = SOURCE_TOTALS
        return (table.join(ADDRESSES, ADDRESSES.c.id == table.c.source_id), flt.totals_conditions(table),
                func.sum(table.c.messages),
                [*totals_sums(table), func.count(func.distinct(table.c.source_id)).label("sources")], False)
    return (RECORDS.join(REPORTS, RECORDS.c.report_id == REPORTS.c.id)
            .join(ADDRESSES, ADDRESSES.c.ip == func.coalesce(RECORDS.c.source_ip, "")),
            [*flt.analysed_reports(), *flt.record_conditions()],
            func.sum(func.coalesce(RECORDS.c["count"], 0)),
            [*records_sums(), func.count(func.distinct(RECORDS.c.source_ip)).label("sources")], True)


def _ranking(conn: Connection, flt: RecordFilter, by: SourceGrouping, limit: int | None, offset: int,
             summed: bool) -> tuple[list[SourceGroup], int]:
    """The page's groups, and the number of groups. Not `summed`, the groups carry their
    messages only: every row of the window is grouped with nothing else summed, which SQLite
    does in half the time of the full sums (it sorts each row with all it carries)."""
    rows, conditions, messages, sums, from_records = _grouped_rows(flt, by)
    key = _key(by).label("group_key")
    columns = [*sums] if summed else [messages.label("messages")]
    query = (select(key, *columns, func.count().over().label("group_count"))
             .select_from(rows).where(*conditions).group_by(key)
             .order_by(literal_column("messages").desc(), literal_column("group_key")).offset(offset))
    if limit is not None:
        query = query.limit(limit)
    ranked = conn.execute(query).all()
    total = int(ranked[0].group_count) if ranked else 0
    if not ranked and offset:
        inner = query.limit(None).offset(None).order_by(None).subquery()
        total = int(conn.execute(select(func.count()).select_from(inner)).scalar_one())
    if summed:
        return [SourceGroup(group_of(row, from_records), int(row.sources)) for row in ranked], total
    return [SourceGroup(Group(row.group_key, Tally(messages=int(row.messages or 0)), None, None), 0)
            for row in ranked], total


def _sums(conn: Connection, flt: RecordFilter, by: SourceGrouping, keys: list[str]) -> dict[str, SourceGroup]:
    """The full sums of the groups `keys`."""
    rows, conditions, _, sums, from_records = _grouped_rows(flt, by)
    key = _key(by)
    query = (select(key.label("group_key"), *sums).select_from(rows)
             .where(*conditions, key.in_(keys)).group_by(key))
    return {row.group_key: SourceGroup(group_of(row, from_records), int(row.sources))
            for row in conn.execute(query)}


_IDENTITY = IDENTITY_COLUMNS
_SHARED = {"service": ("service", "service_type"), "base_domain": (), "asn": ("asn", "as_name"),
           "country": ()}


def _identities(conn: Connection, by: SourceGrouping, keys: list[str]) -> dict[str, dict[str, Any]]:
    """An address's whole identity; for the other groupings, what all of a group's addresses
    share (a service's type, an AS's name)."""
    if by == "ip":
        columns = [getattr(ADDRESSES.c, name) for name in _IDENTITY]
        found = {row.ip: row for row in conn.execute(
            select(ADDRESSES.c.ip, ADDRESSES.c.identified_at, *columns).where(ADDRESSES.c.ip.in_(keys)))}
        identities = {}
        for ip in keys:
            row = found.get(ip)
            identified = row is not None and row.identified_at is not None
            identities[ip] = {name: getattr(row, name) if identified else None for name in _IDENTITY}
            if not identified:
                identities[ip]["sender"] = PENDING
        return identities
    shared = _SHARED[by]
    if not shared:
        return {}
    key = _key(by)
    values: dict[str, dict[str, set[Any]]] = defaultdict(lambda: defaultdict(set))
    for row in conn.execute(select(key.label("k"), *(getattr(ADDRESSES.c, name) for name in shared))
                            .where(key.in_(keys)).distinct()):
        for name in shared:
            values[row.k][name].add(getattr(row, name))
    return {k: {name: next(iter(seen[name])) if len(seen.get(name, ())) == 1 else None for name in shared}
            for k, seen in ((k, values.get(k, {})) for k in keys)}


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
        if by == "service":  # the sender each row keeps: no address looked up (app.sender_ranking)
            rows = judged_rows(conn, [s.record_class, s.messages], [source_classes_in_window(flt)])
            row_key = _named(rows.c.identified == 1, rows.c.sender)
            judged = (select(row_key.label("k"), *_per_class(rows.c.record_class, rows.c.messages))
                      .where(row_key.in_(keys)).group_by(row_key))
        else:
            judged = (select(key.label("k"), *_per_class(s.record_class, s.messages))
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


def _per_class(record_class: ColumnElement[str], messages: ColumnElement[int]) -> list[ColumnElement[Any]]:
    return [func.sum(case((record_class == name, messages), else_=0)) for name in RecordClass]
