"""A dashboard's front page: the summary, the top sources, and each domain's policy over time.

The figures are the summary's and the sources' own queries (`summarise`, `grouped`), so the
front page never disagrees with the pages behind it, and both are answered from the daily
totals. What is new here is the policy history of each domain, told twice: as the reports
restate it (what receivers found published) and as Rua's own DNS history recorded it, since
the two disagreeing is itself a finding (a receiver's stale cache, or a change that has not
reached everyone yet).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, overload

from sqlalchemy import select
from sqlalchemy.engine import Connection

from app.grouped_query import Group, grouped
from app.record_filter import ADDRESSES, REPORTS, RecordFilter
from app.record_query import SENDER_FIELDS
from app.summary_query import Summary, summarise
from ingest.dmarc_record import is_dmarc_record, parse_dmarc_record
from ingest.dns_history import SnapshotInterval
from ingest.dns_snapshot_store import load_history

TOP_SOURCES = 10


class Policy(NamedTuple):
    """The tags that decide what happens to failing mail, with RFC 7489's defaults filled in
    (sp from p, pct 100, relaxed alignment), so a reporter that leaves a default tag out agrees
    with one that spells it; `np` stays null where it is not known (RFC 7489 reporters never
    say it, and a record without np leaves it to sp)."""

    p: str | None
    sp: str | None
    pct: int | None
    adkim: str | None
    aspf: str | None
    np: str | None

    @classmethod
    def reported(cls, p: str | None, sp: str | None, pct: int | None, adkim: str | None, aspf: str | None,
                 np: str | None) -> Policy:
        p = _folded(p)
        return cls(p, _folded(sp) or p, 100 if pct is None else pct, _folded(adkim) or "r",
                   _folded(aspf) or "r", _folded(np))

    def agrees(self, other: Policy) -> bool:
        """Equal but for an np that one side does not know."""
        return self[:5] == other[:5] and (self.np is None or other.np is None or self.np == other.np)


@dataclass(slots=True)
class ReportedPeriod:
    """A run of consecutive reports (by begin) that restate the same policy."""

    since: datetime
    until: datetime
    policy: Policy
    reports: int


@dataclass(slots=True)
class PublishedPeriod:
    """One interval of the `_dmarc.<domain>` TXT history: it holds from its first check until
    the next different answer was first seen (None: it is still the latest)."""

    since: datetime
    until: datetime | None
    last_checked: datetime
    outcome: str
    records: list[str]
    policy: Policy | None
    """None unless exactly one DMARC record was published"""


@dataclass(slots=True)
class DomainPolicy:
    domain: str
    policy: Policy | None
    """as published in the latest matching report"""
    reported_at: datetime | None
    reported: list[ReportedPeriod] = field(default_factory=list)
    published: list[PublishedPeriod] = field(default_factory=list)


@dataclass(slots=True)
class TopSource:
    group: Group
    """keyed by the source address"""
    sender: dict[str, Any] | None
    """who the address is (`SENDER_FIELDS`); None until it is identified"""


@dataclass(slots=True)
class Overview:
    summary: Summary
    top_sources: list[TopSource]
    policies: list[DomainPolicy]


def overview(conn: Connection, flt: RecordFilter) -> Overview:
    return Overview(summarise(conn, flt), top_sources(conn, flt), domain_policies(conn, flt))


def top_sources(conn: Connection, flt: RecordFilter) -> list[TopSource]:
    """The largest source addresses, with who each is.

    By address rather than by sender: addresses are ranked from the daily source totals with
    each address's lifetime bounds (app.source_ranking), a few dozen milliseconds over a month
    of a million records, where summing every address of the window into its sender costs
    several times that; each address still names its sender, and /sources?group=service
    has the senders whole.
    """
    groups = grouped(conn, flt, "source_ip", TOP_SOURCES, 0).groups
    senders = {row.ip: {name: getattr(row, name) for name in SENDER_FIELDS} for row in conn.execute(
        select(ADDRESSES.c.ip, *(ADDRESSES.c[name] for name in SENDER_FIELDS))
        .where(ADDRESSES.c.ip.in_([group.key for group in groups]), ADDRESSES.c.identified_at.is_not(None)))}
    return [TopSource(group, senders.get(group.key)) for group in groups]


def domain_policies(conn: Connection, flt: RecordFilter) -> list[DomainPolicy]:
    """Each policy domain of the matching reports, by name, with its policy as reported and as
    recorded in DNS over the window."""
    query = (select(REPORTS.c.policy_domain, REPORTS.c.date_begin, REPORTS.c.date_end, REPORTS.c.p,
                    REPORTS.c.sp, REPORTS.c.pct, REPORTS.c.adkim, REPORTS.c.aspf, REPORTS.c.np)
             .where(*flt.matching_reports(conflicting_copies=False), REPORTS.c.policy_domain.is_not(None),
                    REPORTS.c.policy_domain != "")
             # undated reports first: the latest dated report is each domain's last row, as in /domains
             .order_by(REPORTS.c.policy_domain, REPORTS.c.date_begin.nulls_first(), REPORTS.c.id))
    domains: dict[str, DomainPolicy] = {}
    for row in conn.execute(query):
        policy = Policy.reported(row.p, row.sp, row.pct, row.adkim, row.aspf, row.np)
        entry = domains.setdefault(row.policy_domain, DomainPolicy(row.policy_domain, None, None))
        begin, end = _utc(row.date_begin), _utc(row.date_end)
        entry.policy, entry.reported_at = policy, begin
        if begin is not None and end is not None:
            _extend(entry.reported, begin, end, policy)
    history = load_history(conn, (f"_dmarc.{name}" for name in domains))
    for name, entry in domains.items():
        run = history.runs.get((f"_dmarc.{name}", "TXT"), [])
        entry.published = list(_published(run, flt))
    return list(domains.values())


def _extend(periods: list[ReportedPeriod], begin: datetime, end: datetime, policy: Policy) -> None:
    last = periods[-1] if periods else None
    if last is not None and last.policy.agrees(policy):
        last.until = max(last.until, end)
        last.reports += 1
        if last.policy.np is None and policy.np is not None:
            last.policy = policy  # the run's np, once a reporter tells it
        return
    periods.append(ReportedPeriod(begin, end, policy, 1))


def _published(run: list[SnapshotInterval], flt: RecordFilter) -> Iterable[PublishedPeriod]:
    since, until = flt.window.since, flt.window.until
    for index, interval in enumerate(run):
        begins = _utc(interval.first_seen)
        ends = _utc(run[index + 1].first_seen) if index + 1 < len(run) else None
        if (since and ends and ends <= since) or (until and begins >= until):
            continue  # held only outside the window
        yield PublishedPeriod(begins, ends, _utc(interval.last_seen), str(interval.outcome),
                              list(interval.records), _dns_policy(interval.records))


def _dns_policy(records: Iterable[str]) -> Policy | None:
    """The policy receivers apply from the published record: an invalid p (or sp, np) makes
    them apply p=none when rua is usable, or nothing (RFC 9989 §4.10.1)."""
    texts = [text for text in records if is_dmarc_record(text)]
    if len(texts) != 1:
        return None  # none, or several: receivers then apply no policy at all
    record, _ = parse_dmarc_record(texts[0])
    if record is None:
        return None
    valid = record.policy_valid
    pct = 100 if record.pct is None else record.pct
    return Policy(record.effective_p, record.subdomain_policy(exists=True), pct, record.adkim, record.aspf,
                  record.np if valid else None)


@overload
def _utc(moment: datetime) -> datetime: ...
@overload
def _utc(moment: None) -> None: ...
def _utc(moment: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes; every one stored is UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _folded(value: str | None) -> str | None:
    return (value.strip().lower() or None) if value is not None else None
