"""One group of sources in a window: its addresses and who they are, its volume, what fails and
why, and its records — the drill-down from a row of /api/v1/sources.

A group is exactly what app.source_groups puts under one key (a service, base domain, AS,
country, or one address), so a group's page and its row in the list select the same
addresses. Its records are the window's records whose source is one of those addresses,
expressed as a `RecordFilter`, so app.record_query pages them as it pages every list.

The work stays bounded whatever the group's size (a provider, or every address not yet
identified, can be most of a month): its volume and its addresses come from the window's daily
source totals, ranked in the database; a small group's records are found through the source
address index by its addresses, a big one's by walking the window newest first; and the
classes and reason codes, which only the verdicts hold, are counted over all of a small
group's records but over a big group's records among the window's latest `SAMPLED_WINDOW`
only, which the answer says. About 100 to 500 ms at a million records on SQLite, the biggest
groups (most of the window) being the slowest.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, literal, literal_column, select
from sqlalchemy.engine import Connection

from app.grouped_query import Group, group_of, records_sums, totals_sums
from app.problems import Problem
from app.record_filter import ADDRESSES, RECORDS, REPORTS, SOURCE_TOTALS, VERDICTS, RecordFilter
from app.record_query import RecordRow, record_page
from app.source_groups import _SHARED as SHARED_IDENTITY
from app.source_groups import PENDING, SourceGrouping
from app.source_groups import _key as group_key
from app.summary_query import Tally
from ingest.source_enrichment import IDENTITY_COLUMNS

ADDRESS_CAP = 200
"""addresses listed on a group's page: a provider can have thousands"""
EXACT_RECORDS = 20_000
"""a group with at most this many records in the window (and at most LISTED_ADDRESSES
addresses) has its records looked up by address, and its classes counted over all of them"""
LISTED_ADDRESSES = 5_000
SAMPLED_WINDOW = 20_000
"""a bigger group's classes are counted over its records among the window's latest this many"""


@dataclass(frozen=True, slots=True)
class GroupRecordFilter(RecordFilter):
    """The filter's records whose source address belongs to the group `by`=`key`.

    A small group names its addresses (`packed`): the records are found through the source
    address index, as a `source_ip` filter finds them. A big one is most of the window (think
    of every address not identified yet): its records are found by walking the window's
    records in page order and looking each one's address up, which finds a page at once where
    the index would read every record of thousands of addresses and sort them.
    """

    by: SourceGrouping = "ip"
    key: str = ""
    packed: tuple[bytes, ...] = ()

    @property
    def has_record_filters(self) -> bool:
        return True

    @property
    def totals_answer(self) -> bool:
        return False

    @property
    def source_totals_answer(self) -> bool:
        return False

    def record_conditions(self) -> list[ColumnElement[bool]]:
        conditions = RecordFilter.record_conditions(self)
        if self.packed:
            conditions.append(RECORDS.c.source_ip_packed.in_(self.packed))
        else:
            conditions.append(exists().where(ADDRESSES.c.ip == func.coalesce(RECORDS.c.source_ip, ""),
                                             member_of(self.by, self.key)))
        return conditions


def member_of(by: SourceGrouping, key: str) -> ColumnElement[bool]:
    """source_address rows in the group: the list's own grouping key, equal to `key`."""
    return ADDRESSES.c.ip == key if by == "ip" else group_key(by) == key


@dataclass(slots=True)
class Address:
    ip: str
    messages: int
    """in the window, with the page's filters"""
    identified: bool
    identity: dict[str, Any]


@dataclass(slots=True)
class Cause:
    """A reason code of Rua's verdicts, and the judged messages and records that carry it."""

    code: str
    messages: int = 0
    records: int = 0


@dataclass(slots=True)
class GroupDetail:
    by: SourceGrouping
    key: str
    tally: Tally
    first_day: date | None
    last_day: date | None
    sources: int
    """addresses of the group with mail in the window"""
    identity: dict[str, Any]
    """an address's identity; for a group, what its listed addresses share"""
    addresses: list[Address]
    classes: dict[str, int]
    """messages per class of the judged records (`pending`: not judged yet)"""
    causes: list[Cause]
    judged_records: int
    """records `classes` and `causes` count: all of the group's in the window, or a sample"""
    sampled: bool
    records: list[RecordRow]

    @property
    def addresses_capped(self) -> bool:
        return self.sources > len(self.addresses)


def group_detail(conn: Connection, flt: RecordFilter, by: SourceGrouping, key: str, limit: int,
                 offset: int) -> GroupDetail:
    """Everything a group's page shows; a Problem 404 when no address was ever in the group."""
    if by == "ip":
        try:
            ipaddress.ip_address(key)
        except ValueError:
            raise Problem(404, "not-found", "Not found", f"{key!r} is not an IP address") from None
    # enough to name every address of a group small enough to be looked up by address
    volumes, sources = _address_volumes(conn, flt, by, key, LISTED_ADDRESSES)
    if not volumes:
        if conn.execute(select(ADDRESSES.c.id).where(member_of(by, key)).limit(1)).first() is None:
            raise Problem(404, "not-found", "Not found", f"no source address is in the {by} group {key!r}")
        return GroupDetail(by, key, Tally(), None, None, 0, _identity(conn, by, key, []), [], {}, [], 0,
                           sampled=False, records=[])
    group = _volume(conn, flt, by, key)
    addresses = _identities(conn, volumes[:ADDRESS_CAP])
    small = group.tally.records <= EXACT_RECORDS and sources <= LISTED_ADDRESSES
    packed = _packed(conn, [source_id for source_id, _ in volumes]) if small else ()
    fields = {name: getattr(flt, name) for name in RecordFilter.__dataclass_fields__}
    records_filter = GroupRecordFilter(**fields, by=by, key=key, packed=packed)
    classes, causes, judged = _judgements(conn, records_filter, sample=not small)
    records = record_page(conn, records_filter, limit, offset)
    return GroupDetail(by, key, group.tally, group.first_day, group.last_day, sources,
                       _identity(conn, by, key, addresses), addresses, classes, causes, judged, not small,
                       records)


def _address_volumes(conn: Connection, flt: RecordFilter, by: SourceGrouping, key: str,
                     limit: int | None) -> tuple[list[tuple[int, int]], int]:
    """(source_address id, messages) of the group's addresses with mail in the window, most
    first, at most `limit`; and how many there are. One pass over the window's daily source
    totals (the records when the totals cannot answer the filters), ranked in the database:
    a big group has tens of thousands of addresses, of which a page shows a few hundred."""
    if flt.source_totals_answer:
        table = SOURCE_TOTALS
        # `+ 0`: SQLite would otherwise group along the by-source index, reading every day of the
        # history through it, rather than read just the window from its covering index
        source: ColumnElement[Any] = (table.c.source_id + literal_column("0")).label("source_id")
        messages: ColumnElement[Any] = func.sum(table.c.messages)
        records: ColumnElement[Any] = func.sum(table.c.records)
        query = (select(source, messages.label("messages"), func.count().over().label("addresses"))
                 .select_from(table.join(ADDRESSES, ADDRESSES.c.id == table.c.source_id))
                 .where(*flt.totals_conditions(table), member_of(by, key)))
    else:
        source = ADDRESSES.c.id.label("source_id")
        messages, records = func.sum(func.coalesce(RECORDS.c["count"], 0)), func.count()
        query = (select(source, messages.label("messages"), func.count().over().label("addresses"))
                 .select_from(RECORDS.join(REPORTS, RECORDS.c.report_id == REPORTS.c.id)
                              .join(ADDRESSES, ADDRESSES.c.ip == func.coalesce(RECORDS.c.source_ip, "")))
                 .where(*flt.analysed_reports(), *flt.record_conditions(), member_of(by, key)))
    query = (query.group_by(source).having((messages > 0) | (records > 0))
             .order_by(messages.desc(), source).limit(limit))
    rows = conn.execute(query).all()
    total = int(rows[0].addresses) if rows else 0
    return [(int(row.source_id), int(row.messages or 0)) for row in rows], total


def _volume(conn: Connection, flt: RecordFilter, by: SourceGrouping, key: str) -> Group:
    """The group's row of /api/v1/sources, summed the same way."""
    label = literal(key).label("group_key")
    if flt.source_totals_answer:
        table = SOURCE_TOTALS
        query = (select(label, *totals_sums(table))
                 .select_from(table.join(ADDRESSES, ADDRESSES.c.id == table.c.source_id))
                 .where(*flt.totals_conditions(table), member_of(by, key)))
    else:
        query = (select(label, *records_sums())
                 .select_from(RECORDS.join(REPORTS, RECORDS.c.report_id == REPORTS.c.id)
                              .join(ADDRESSES, ADDRESSES.c.ip == func.coalesce(RECORDS.c.source_ip, "")))
                 .where(*flt.analysed_reports(), *flt.record_conditions(), member_of(by, key)))
    return group_of(conn.execute(query).one(), not flt.source_totals_answer)


def _packed(conn: Connection, ids: list[int]) -> tuple[bytes, ...]:
    """The addresses as the records' source index holds them."""
    query = select(ADDRESSES.c.packed).where(ADDRESSES.c.id.in_(ids), ADDRESSES.c.packed.is_not(None))
    return tuple(row.packed for row in conn.execute(query))


def _identities(conn: Connection, volumes: list[tuple[int, int]]) -> list[Address]:
    a = ADDRESSES.c
    found = {row.id: row for row in conn.execute(
        select(a.id, a.ip, a.identified_at, *(a[name] for name in IDENTITY_COLUMNS))
        .where(a.id.in_([source_id for source_id, _ in volumes])))}
    return [Address(found[source_id].ip, messages, found[source_id].identified_at is not None,
                    _identity_of(found[source_id])) for source_id, messages in volumes]


def _identity_of(row: Any) -> dict[str, Any]:
    """An address's identity columns; all None until it has been identified."""
    identified = row.identified_at is not None
    return {name: getattr(row, name) if identified else None for name in IDENTITY_COLUMNS}


def _identity(conn: Connection, by: SourceGrouping, key: str, addresses: list[Address]) -> dict[str, Any]:
    """As /api/v1/sources says it: an address's whole identity (`pending` until identified),
    for a service its type, for an AS its name, when the addresses listed share it."""
    if by == "ip":
        if addresses:
            identity = dict(addresses[0].identity)
            identified = addresses[0].identified
        else:
            a = ADDRESSES.c
            row = conn.execute(select(a.identified_at, *(a[name] for name in IDENTITY_COLUMNS))
                               .where(a.ip == key)).one()
            identified = row.identified_at is not None
            identity = _identity_of(row)
        if not identified:
            identity["sender"] = PENDING
        return identity
    shared: dict[str, Any] = {}
    for name in SHARED_IDENTITY.get(by, ()):
        values = {address.identity.get(name) for address in addresses}
        shared[name] = next(iter(values)) if len(values) == 1 else None
    return shared


def _judgements(conn: Connection, records: GroupRecordFilter,
                sample: bool) -> tuple[dict[str, int], list[Cause], int]:
    """Messages per class and per reason code of the group's records (records not judged yet
    count as `pending`): all of them, or with `sample` those among the window's latest
    SAMPLED_WINDOW records."""
    window = RecordFilter(**{name: getattr(records, name) for name in RecordFilter.__dataclass_fields__})
    source = (select(RECORDS.c.report_id, RECORDS.c.record_no, RECORDS.c["count"].label("messages"),
                     RECORDS.c.source_ip)
              .select_from(RECORDS.join(REPORTS, RECORDS.c.report_id == REPORTS.c.id)))
    if sample:
        latest = (source.where(*window.analysed_reports(), *window.record_conditions())
                  .order_by(RECORDS.c.report_id.desc(), RECORDS.c.record_no).limit(SAMPLED_WINDOW)
                  .subquery("latest"))
        chosen = (select(latest).where(exists().where(ADDRESSES.c.ip == func.coalesce(latest.c.source_ip, ""),
                                                      member_of(records.by, records.key)))
                  .subquery("chosen"))
    else:
        chosen = source.where(*records.analysed_reports(), *records.record_conditions()).subquery("chosen")
    query = (select(VERDICTS.c.record_class, VERDICTS.c.reasons,
                    func.sum(func.coalesce(chosen.c.messages, 0)).label("messages"),
                    func.count().label("records"))
             .select_from(chosen.outerjoin(VERDICTS, and_(VERDICTS.c.report_id == chosen.c.report_id,
                                                          VERDICTS.c.record_no == chosen.c.record_no)))
             .group_by(VERDICTS.c.record_class, VERDICTS.c.reasons))
    classes: dict[str, int] = defaultdict(int)
    causes: dict[str, Cause] = {}
    judged = 0
    for row in conn.execute(query):
        messages, count = int(row.messages or 0), int(row.records)
        judged += count
        classes[row.record_class or PENDING] += messages
        for code in row.reasons or ():
            cause = causes.setdefault(code, Cause(code))
            cause.messages += messages
            cause.records += count
    return dict(classes), sorted(causes.values(), key=lambda cause: (-cause.messages, cause.code)), judged

