"""Forwarded mail and its failures: how much there is, who forwards it, which signatures break.

The volumes per class and per day come from the per-report class totals, as the summary's
classes do; who forwards and which signatures break from the per-report, per-address class
rows the judge writes (report_source_classes), summed per address and only then regrouped by
sender. A record-level filter (header_from, disposition, ...) needs the records and their
verdicts themselves: those are then read, only in reports whose class totals hold forwarding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, FromClause, and_, case, column, func, select, true
from sqlalchemy.engine import Connection

from app.models import UNDATED, JsonColumn
from app.record_filter import ADDRESSES, RECORDS, REPORTS, VERDICTS, RecordFilter
from app.source_groups import SOURCE_CLASSES, UNKNOWN, source_classes_in_window
from app.summary_query import CLASS_TOTALS, day_rows
from ingest.daily_totals import dmarc_result, report_days

FORWARDED = "forwarded"
FORWARDING_FAILURE = "forwarding_failure"
FORWARDING_CLASSES = (FORWARDED, FORWARDING_FAILURE)
IDENTITY = ("sender", "service", "service_type")


@dataclass(slots=True)
class Volume:
    messages: int = 0
    records: int = 0


@dataclass(slots=True)
class ForwardingDay:
    messages: int = 0
    """every message of the day, whatever its class: the base of the shares"""
    forwarded: int = 0
    forwarding_failure: int = 0


@dataclass(slots=True)
class ForwardingTotals:
    messages: int
    """every message in the window, whatever its class"""
    forwarded: Volume
    forwarding_failure: Volume
    days: dict[date, ForwardingDay]


@dataclass(slots=True)
class SenderGroup:
    """Records grouped by who sent them: the identified sender, else the address itself."""

    key: str
    keyed_by: str
    """`sender` when sender identification named the addresses, `ip` otherwise"""
    sources: int
    messages: int
    records: int
    identity: dict[str, str | None] = field(default_factory=dict)


@dataclass(slots=True)
class Forwarder(SenderGroup):
    forwarded: int = 0
    forwarding_failure: int = 0
    dmarc_pass: int = 0


@dataclass(slots=True)
class BrokenSignatures(SenderGroup):
    domain: str = ""
    """the d= of the broken signature"""


Group = TypeVar("Group", bound=SenderGroup)


@dataclass(slots=True)
class Ranking(Generic[Group]):
    total: int
    """groups in all, beyond the page too"""
    groups: list[Group]


# -- volumes ------------------------------------------------------------------------------------

def forwarding_totals(conn: Connection, flt: RecordFilter) -> ForwardingTotals:
    """Messages and records of the two forwarding classes, and per day, beside all messages.

    A report counts on its first day, or the window's first day when it began before, as in
    the summary; all messages come from the summary's own rows (the daily totals when they
    can answer), so the shares are of the very figures the summary shows.
    """
    since_day = flt.window.since_day
    days: dict[date, ForwardingDay] = {}

    def day_of(first_day: date) -> ForwardingDay | None:
        if first_day == UNDATED:
            return None  # counted in the totals; has no day of its own
        return days.setdefault(max(first_day, since_day) if since_day else first_day, ForwardingDay())

    rows, _ = day_rows(conn, flt)
    messages = 0
    for first_day, _disposition, _dmarc, day_messages, *_ in rows:
        messages += day_messages
        if (day := day_of(first_day)) is not None:
            day.messages += day_messages
    volumes = {name: Volume() for name in FORWARDING_CLASSES}
    for first_day, record_class, class_messages, records in _class_rows(conn, flt):
        volumes[record_class].messages += class_messages
        volumes[record_class].records += records
        if (day := day_of(first_day)) is not None:
            setattr(day, record_class, getattr(day, record_class) + class_messages)
    return ForwardingTotals(messages, volumes[FORWARDED], volumes[FORWARDING_FAILURE],
                            dict(sorted(days.items())))


def _class_rows(conn: Connection, flt: RecordFilter) -> Iterator[tuple[date, str, int, int]]:
    """(first day, class, messages, records) per report, for the forwarding classes: the
    summary's `class_rows` with the records counted too."""
    if flt.has_record_filters:
        record_class = VERDICTS.c.record_class
        query = (select(REPORTS.c.date_begin, REPORTS.c.date_end, record_class,
                        func.sum(func.coalesce(RECORDS.c["count"], 0)), func.count())
                 .select_from(_judged_records())
                 .where(*flt.analysed_reports(), *flt.record_conditions(),
                        record_class.in_(FORWARDING_CLASSES))
                 .group_by(REPORTS.c.id, REPORTS.c.date_begin, REPORTS.c.date_end, record_class))
    else:
        query = (select(REPORTS.c.date_begin, REPORTS.c.date_end, CLASS_TOTALS.c.record_class,
                        CLASS_TOTALS.c.messages, CLASS_TOTALS.c.records)
                 .select_from(CLASS_TOTALS.join(REPORTS, CLASS_TOTALS.c.report_id == REPORTS.c.id))
                 .where(*flt.analysed_reports(), CLASS_TOTALS.c.record_class.in_(FORWARDING_CLASSES)))
    for begin, end, record_class, messages, records in conn.execute(query):
        yield report_days(begin, end)[0], record_class, int(messages or 0), int(records or 0)


# -- who forwards -------------------------------------------------------------------------------

def forwarders(conn: Connection, flt: RecordFilter, limit: int | None) -> Ranking[Forwarder]:
    """Sources of forwarded and forwarding-failure records, by sender, largest first.

    The DMARC pass rate is the receivers' (as everywhere in the API), so a forwarder whose
    forwarded mail passes while its failures fail shows how much of its traffic survives.
    """
    if not flt.has_record_filters:  # the per-address class rows answer, without the records
        s = SOURCE_CLASSES.c
        # the rows themselves, summed once by sender (summing per address first costs more)
        per_address = (select(s.source_id.label("source_id"), s.messages, s.records,
                              case((s.record_class == FORWARDED, s.messages), else_=0).label(FORWARDED),
                              case((s.record_class == FORWARDING_FAILURE, s.messages), else_=0)
                              .label(FORWARDING_FAILURE), s.dmarc_pass)
                       .where(source_classes_in_window(flt), s.record_class.in_(FORWARDING_CLASSES))
                       .subquery("per_address"))
        return _forwarders(conn, per_address, limit)
    messages = func.coalesce(RECORDS.c["count"], 0)
    record_class = VERDICTS.c.record_class
    address = _record_address()
    per_address = (select(address.label("ip"), *_volume_sums(),
                          func.sum(case((record_class == FORWARDED, messages), else_=0)).label(FORWARDED),
                          func.sum(case((record_class == FORWARDING_FAILURE, messages), else_=0))
                          .label(FORWARDING_FAILURE),
                          func.sum(case((dmarc_result(RECORDS.c.dkim, RECORDS.c.spf) == "pass", messages),
                                        else_=0)).label("dmarc_pass"))
                   .select_from(_judged_records())
                   .where(*flt.analysed_reports(), *flt.record_conditions(),
                          record_class.in_(FORWARDING_CLASSES), _reports_holding(FORWARDING_CLASSES))
                   .group_by(address).subquery("per_address"))
    return _forwarders(conn, per_address, limit)


def _forwarders(conn: Connection, per_address: FromClause, limit: int | None) -> Ranking[Forwarder]:
    rows = _by_sender(conn, per_address, (FORWARDED, FORWARDING_FAILURE, "dmarc_pass"), limit)
    groups = [Forwarder(**_group_fields(row), forwarded=int(row.forwarded or 0),
                        forwarding_failure=int(row.forwarding_failure or 0),
                        dmarc_pass=int(row.dmarc_pass or 0)) for row in rows]
    return Ranking(_total(rows), groups)


# -- which signatures break ---------------------------------------------------------------------

def broken_signatures(conn: Connection, flt: RecordFilter,
                      limit: int | None) -> tuple[Volume, Ranking[BrokenSignatures]]:
    """Failures caused by a DKIM signature of the domain's own that was broken in transit:
    their volume, and their groups by signing domain (d=) and sender, largest first.

    A record counts when all of these hold in Rua's verdict on it:

    - DMARC failed (`fail`: neither an aligned SPF pass nor an aligned DKIM pass; a
      `temperror`, where DNS of the time failed, is left out as unproven);
    - it carries a DKIM signature whose d= is aligned with header_from under the report's
      adkim, and the reporter's result for that signature is `fail`: the receiver had the
      signature and the key and the hashes did not match, i.e. the message was changed after
      signing (`none`, `neutral`, `policy`, `temperror` and `permerror` say something else:
      no usable signature, or no usable key);
    - the key that signature names was published and usable at the time (`key_state`
      `present`): a missing, revoked, malformed or weak key explains the failure without any
      change to the message (those records carry the `dkim_key_*` reason codes instead), and a
      key never looked up (`unknown`) proves nothing;
    - the source is not authorised by the header_from domain's own SPF (`own_spf_result` is
      not `pass`): mail that left the domain's own servers with a failing signature was
      signed wrongly there, not changed on the way;
    - its class is `forwarding_failure`. With the conditions above this only leaves out
      records Rua calls `misconfigured` because a signature of the domain's own organisation
      passed unaligned beside the broken one: a signature that survived the trip.

    A record with broken signatures of two aligned domains (rare: `example.com` and
    `mail.example.com` under relaxed alignment) counts once, under the first by name, so the
    groups add up to the volume, which comes with them from the same query.
    """
    if flt.has_record_filters:
        broken = _broken_records(conn, flt)
        per_address = (select(broken.c.domain, broken.c.ip, func.sum(broken.c.messages).label("messages"),
                              func.count().label("records"))
                       .group_by(broken.c.domain, broken.c.ip).subquery("per_address"))
    else:  # the judge wrote each record's broken d= into its per-address class row
        s = SOURCE_CLASSES.c
        per_address = (select(s.broken_domain.label("domain"), s.source_id.label("source_id"), s.messages,
                              s.records)
                       .where(source_classes_in_window(flt), s.record_class == FORWARDING_FAILURE,
                              s.broken_domain != "")
                       .subquery("per_address"))
    rows = _by_sender(conn, per_address, (), limit, by_domain=True)
    groups = [BrokenSignatures(**_group_fields(row), domain=row.domain) for row in rows]
    volume = Volume(int(rows[0].all_messages or 0), int(rows[0].all_records or 0)) if rows else Volume()
    return volume, Ranking(_total(rows), groups)


def _broken_records(conn: Connection, flt: RecordFilter) -> FromClause:
    """Each record `broken_signatures` counts: its address and messages, and the d= of its
    broken signature (the first by name, if it has several)."""
    expand = func.jsonb_array_elements if conn.dialect.name == "postgresql" else func.json_each
    # the verdict's signatures, one row each (its `dkim` is a JSON array of objects)
    signature = expand(VERDICTS.c.dkim).table_valued(column("value", JsonColumn)).alias("signature")
    value = signature.c.value
    domain = value["domain"].as_string()
    # one row per signature: the record's own columns are the same in each, max() picks them
    query = (select(func.min(domain).label("domain"), func.max(_record_address()).label("ip"),
                    func.max(func.coalesce(RECORDS.c["count"], 0)).label("messages"))
             .select_from(_judged_records().join(signature, true()))
             .where(*flt.analysed_reports(), *flt.record_conditions(),
                    _reports_holding((FORWARDING_FAILURE,)), VERDICTS.c.record_class == FORWARDING_FAILURE,
                    VERDICTS.c.dmarc == "fail", func.coalesce(VERDICTS.c.own_spf_result, "") != "pass",
                    value["aligned"].as_boolean().is_(True), value["result"].as_string() == "fail",
                    value["key_state"].as_string() == "present", domain.is_not(None))
             .group_by(VERDICTS.c.report_id, VERDICTS.c.record_no))
    return query.subquery("broken")


# -- shared parts -------------------------------------------------------------------------------

def _judged_records() -> FromClause:
    return RECORDS.join(REPORTS, RECORDS.c.report_id == REPORTS.c.id).join(VERDICTS, and_(
        VERDICTS.c.report_id == RECORDS.c.report_id, VERDICTS.c.record_no == RECORDS.c.record_no))


def _record_address() -> ColumnElement[str]:
    """As `source_address.ip` holds it."""
    return func.coalesce(RECORDS.c.source_ip, "")


def _reports_holding(classes: tuple[str, ...]) -> ColumnElement[bool]:
    """Only reports whose class totals hold these classes: the others' records are never read."""
    return REPORTS.c.id.in_(select(CLASS_TOTALS.c.report_id).where(CLASS_TOTALS.c.record_class.in_(classes)))


def _volume_sums() -> list[Any]:
    return [func.sum(func.coalesce(RECORDS.c["count"], 0)).label("messages"), func.count().label("records")]


def _by_sender(conn: Connection, per_address: FromClause, sums: tuple[str, ...], limit: int | None,
               by_domain: bool = False) -> Sequence[Any]:
    """Sums by sender, largest first, with what the group's addresses share and, beside each
    group, the number of groups and the volume of all of them. `per_address` holds rows of an
    address (by `source_id`, or by `ip` when summed from the records), one or more each.

    With a limit, SQLite takes two steps: the ranking groups every row of the window by its
    key with only the messages summed (a month holds tens of thousands of groups, most of them
    one address seen once, and SQLite sorts each row with all it carries: the full sums on
    every row took twice as long), then the page's groups alone are summed in full.
    PostgreSQL groups in parallel workers at little cost per column, and the second step only
    added to its time, so it sums everything in one pass.
    """
    a = ADDRESSES.c
    named = and_(a.identified_at.is_not(None), a.sender.is_not(None), a.sender != UNKNOWN)
    # the sender identification named, else the address: `unknown` and not yet identified
    # addresses would otherwise be one meaningless group
    group_key = case((named, a.sender), else_=a.ip)
    keys = [*([per_address.c.domain] if by_domain else []), group_key.label("group_key"),
            case((named, "sender"), else_="ip").label("keyed_by")]
    joined = per_address.join(ADDRESSES, a.id == per_address.c.source_id
                              if "source_id" in per_address.c else a.ip == per_address.c.ip)
    messages = func.sum(per_address.c.messages)
    ranking = [*keys, messages.label("messages"), func.count().over().label("group_count"),
               func.sum(messages).over().label("all_messages"),
               func.sum(func.sum(per_address.c.records)).over().label("all_records")]
    shared = []
    for name in IDENTITY:  # null where the addresses differ, or one is not identified
        same = and_(func.min(a[name]) == func.max(a[name]), func.count(a[name]) == func.count(),
                    func.count(a.identified_at) == func.count())
        shared.append(case((same, func.min(a[name]))).label(name))
    details = [func.sum(per_address.c.records).label("records"),
               *(func.sum(per_address.c[name]).label(name) for name in sums),
               func.count(func.distinct(case((a.ip != "", a.id)))).label("sources"), *shared]
    if limit is None or conn.dialect.name != "sqlite":  # one pass
        return conn.execute(select(*ranking, *details).select_from(joined).group_by(*keys)
                            .order_by(messages.desc(), *keys[:-1]).limit(limit)).all()
    ranked = conn.execute(select(*ranking).select_from(joined).group_by(*keys)
                          .order_by(messages.desc(), *keys[:-1]).limit(limit)).all()
    if not ranked:
        return ranked
    page = [*([per_address.c.domain.in_({row.domain for row in ranked})] if by_domain else []),
            group_key.in_({row.group_key for row in ranked})]
    found = {tuple(row[:len(keys)]): row for row in conn.execute(
        select(*keys, *details).select_from(joined).where(*page).group_by(*keys))}
    # a group whose addresses were named between the two statements is not found again:
    # left out of this page, back in the next
    return [_Row({**row._asdict(), **found[key]._asdict()}) for row in ranked
            if (key := tuple(row[:len(keys)])) in found]


class _Row(dict[str, Any]):
    """A ranking row and its details, read as the one-pass query's rows are."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _group_fields(row: Any) -> dict[str, Any]:
    return {"key": row.group_key, "keyed_by": row.keyed_by, "sources": int(row.sources),
            "messages": int(row.messages or 0), "records": int(row.records or 0),
            "identity": {name: getattr(row, name) for name in IDENTITY}}


def _total(rows: Sequence[Any]) -> int:
    return int(rows[0].group_count) if rows else 0
