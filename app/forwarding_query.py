"""Forwarded mail and its failures: how much there is, who forwards it, which signatures break.

The volumes per class and per day come from the per-report class totals, as the summary's
classes do; who forwards and which signatures break from the per-report, per-address class
rows the judge writes (report_source_classes), ranked by the sender group each row keeps
(app.sender_ranking). A record-level filter (header_from, disposition, ...) needs the records and their
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
from app.record_filter import RECORDS, REPORTS, VERDICTS, RecordFilter
from app.sender_ranking import IDENTITY, address_rows, judged_rows, rank_by_sender
from app.source_groups import SOURCE_CLASSES, source_classes_in_window
from app.summary_query import CLASS_TOTALS, day_rows
from ingest.daily_totals import dmarc_result, report_days

FORWARDED = "forwarded"
FORWARDING_FAILURE = "forwarding_failure"
FORWARDING_CLASSES = (FORWARDED, FORWARDING_FAILURE)


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
        rows = judged_rows(conn, [s.messages, s.records,
                                  case((s.record_class == FORWARDED, s.messages), else_=0).label(FORWARDED),
                                  case((s.record_class == FORWARDING_FAILURE, s.messages), else_=0)
                                  .label(FORWARDING_FAILURE), s.dmarc_pass],
                           [source_classes_in_window(flt), s.record_class.in_(FORWARDING_CLASSES)])
        return _forwarders(conn, rows, limit, two_steps=True)
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
    return _forwarders(conn, address_rows(per_address), limit, two_steps=conn.dialect.name == "sqlite")


def _forwarders(conn: Connection, address_rows: FromClause, limit: int | None,
                two_steps: bool) -> Ranking[Forwarder]:
    rows = rank_by_sender(conn, address_rows, (FORWARDED, FORWARDING_FAILURE, "dmarc_pass"), limit,
                          two_steps=two_steps)
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
        summed = (select(broken.c.domain, broken.c.ip, func.sum(broken.c.messages).label("messages"),
                         func.count().label("records"))
                  .group_by(broken.c.domain, broken.c.ip).subquery("per_address"))
        per_address, two_steps = address_rows(summed), conn.dialect.name == "sqlite"
    else:  # the judge wrote each record's broken d= into its per-address class row
        s = SOURCE_CLASSES.c
        per_address = judged_rows(conn, [s.broken_domain.label("domain"), s.messages, s.records],
                                  [source_classes_in_window(flt), s.record_class == FORWARDING_FAILURE,
                                   s.broken_domain != ""])
        two_steps = True
    rows = rank_by_sender(conn, per_address, (), limit, by_domain=True, two_steps=two_steps)
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


def _group_fields(row: Any) -> dict[str, Any]:
    return {"key": row.group_key, "keyed_by": row.keyed_by, "sources": int(row.sources),
            "messages": int(row.messages or 0), "records": int(row.records or 0),
            "identity": {name: getattr(row, name) for name in IDENTITY}}


def _total(rows: Sequence[Any]) -> int:
    return int(rows[0].group_count) if rows else 0
