"""A domain's DNS as Rua last recorded it, checked; its history; and every watched domain at once.

The API (`/api/v1/dns`) and the dashboard (`/dns`) both call these, so a page and its JSON
twin show the same records, the same problems and the same count of them. Checking reads the
latest snapshot only (never a live lookup): a page renders from the store alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.engine import Connection

from app.api.dns_models import (
    DkimKeyOut,
    DmarcState,
    DnsDomainItem,
    DnsHistoryOut,
    DomainDns,
    IntervalOut,
    Problem,
    SpfState,
)
from app.problems import Problem as HttpProblem
from app.record_filter import REPORTS
from ingest.dmarc_record import ERROR, WARNING, RecordProblem
from ingest.dns_history import Key, SnapshotInterval
from ingest.dns_snapshot_store import (
    SNAPSHOTS,
    LatestSource,
    dkim_key_names,
    domain_checked_at,
    domain_intervals,
    load_history,
)
from ingest.dns_source import DnsAnswer, DnsOutcome, RecordType, domain_name
from ingest.domain_dns_state import domain_dns_state

_BATCH = 400


def checked_name(domain: str) -> str:
    """The domain as snapshots name it; 422 for what cannot be a domain name."""
    name = domain_name(domain.strip())
    if not name or len(name) > 253 or " " in name:
        raise HttpProblem(422, "invalid-domain", "Invalid domain", f"{domain!r} is not a domain name")
    return name


def not_snapshotted(name: str) -> HttpProblem:
    return HttpProblem(404, "not-snapshotted", "Not snapshotted",
                       f"no DNS has been recorded for {name}; it is looked up when a report names it, "
                       f"or run `rua dns snapshot {name}`")


# -- one domain ---------------------------------------------------------------------------------

def domain_dns(conn: Connection, name: str) -> DomainDns:
    """The domain's DMARC, SPF, DKIM and MX as last looked up, with every problem found; 404
    (as a Problem) until the domain has been snapshotted."""
    checked_at = domain_checked_at(conn, name)
    if checked_at is None:
        raise not_snapshotted(name)
    return _checked(name, checked_at, LatestSource(conn), dkim_key_names(conn, name))


def _checked(name: str, checked_at: datetime | None, source: LatestSource, key_names: list[str]) -> DomainDns:
    state = domain_dns_state(name, source, key_names)
    keys = [DkimKeyOut(selector=k.selector, name=k.name, record=k.record, state=str(k.key.state),
                       key_type=k.key.key_type, bits=k.key.bits, testing=k.key.testing,
                       problems=list(k.key.problems)) for k in state.dkim]
    serious = sum(p.severity in (ERROR, WARNING) for p in (*state.dmarc_problems, *state.spf.problems))
    serious += sum(k.state not in ("present",) for k in keys)
    return DomainDns(
        domain=name, checked_at=checked_at,
        dmarc=DmarcState(name=f"_dmarc.{state.discovery.policy_domain or name}", record=state.dmarc_record,
                         policy_domain=state.discovery.policy_domain, applies_as=state.discovery.applies_as,
                         org_domain=state.discovery.org_domain, psl_org_domain=state.psl_org_domain,
                         tags=state.dmarc_tags, problems=[_problem(p) for p in state.dmarc_problems]),
        spf=SpfState(record=state.spf.record, dns_terms=state.spf.dns_terms,
                     void_lookups=state.spf.void_lookups, includes=state.spf.includes,
                     problems=[_problem(p) for p in state.spf.problems]),
        dkim=keys, mx=state.mx, problems=serious,
        not_snapshotted=sorted(f"{n} {t}" for n, t in source.missing))


def _problem(problem: RecordProblem) -> Problem:
    return Problem(severity=str(problem.severity), code=problem.code, tag=problem.tag,
                   message=problem.message)


def domain_history(conn: Connection, name: str) -> DnsHistoryOut:
    """Every interval of the domain and the names under it; 404 when there is none."""
    intervals = domain_intervals(conn, name)
    if not intervals:
        raise not_snapshotted(name)
    return DnsHistoryOut(domain=name, intervals=[IntervalOut(
        name=i.name, type=i.rdtype, outcome=str(i.outcome), records=list(i.records), ttl=i.ttl,
        first_seen=i.first_seen, last_seen=i.last_seen, checks=i.checks) for i in intervals])


@dataclass(frozen=True, slots=True)
class RecordChange:
    """One (name, type) answering differently from one check to a later one."""

    at: datetime
    """the first check that saw the new answer"""
    name: str
    type: str
    before: str
    after: str


def shown_answer(interval: IntervalOut) -> str:
    """What an interval answered, in one readable text: its records, or why there were none."""
    if interval.outcome == DnsOutcome.ANSWER:
        return "\n".join(interval.records) if interval.records else "(empty answer)"
    return {"nxdomain": "no such name (NXDOMAIN)", "nodata": "no record of this type (NODATA)",
            "servfail": "server failure (SERVFAIL)", "timeout": "no answer (timeout)"}.get(
        interval.outcome, interval.outcome)


def record_changes(history: DnsHistoryOut) -> list[RecordChange]:
    """Newest first: each interval after the first of its (name, type) is a change."""
    changes: list[RecordChange] = []
    previous: IntervalOut | None = None
    for interval in history.intervals:  # by name, type, then time
        if previous is not None and (previous.name, previous.type) == (interval.name, interval.type):
            changes.append(RecordChange(interval.first_seen, interval.name, interval.type,
                                        shown_answer(previous), shown_answer(interval)))
        previous = interval
    return sorted(changes, key=lambda change: (change.at, change.name, change.type), reverse=True)


# -- every watched domain -----------------------------------------------------------------------

def watched_domains(conn: Connection, configured: Iterable[str] = ()) -> dict[str, tuple[bool, bool]]:
    """The policy domains seen in reports and the configured ones (what the DNS watcher looks
    up first), by name, with (seen in reports, configured)."""
    seen = {domain_name(value) for value in conn.execute(
        select(REPORTS.c.policy_domain).distinct()).scalars() if value}
    wanted = {domain_name(value) for value in configured if value.strip()}
    return {name: (name in seen, name in wanted) for name in sorted((seen | wanted) - {""})}


class _PrefetchedSource(LatestSource):
    """`LatestSource` with the names every domain needs read beforehand, a few queries for a
    whole page of domains; a name outside them (an SPF include, a parent's `_dmarc`) is still
    read when asked, once for all the domains."""

    def __init__(self, conn: Connection, latest: dict[Key, SnapshotInterval], asked: set[Key]) -> None:
        super().__init__(conn)
        self._latest = latest
        self._asked = asked

    def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
        key = (domain_name(name), rdtype)
        if key in self._asked and key not in self.used and key not in self.missing:
            interval = self._latest.get(key)
            if interval is None:
                self.missing.add(key)
            else:
                self.used[key] = interval
        return super().lookup(name, rdtype)


def domain_items(conn: Connection, domains: Sequence[str],
                 origins: dict[str, tuple[bool, bool]]) -> list[DnsDomainItem]:
    """The state of each domain as `domain_dns` finds it, summed up, read for all of them at once."""
    if not domains:
        return []
    key_names: dict[str, list[str]] = {name: [] for name in domains}
    for start in range(0, len(domains), _BATCH):
        chunk = domains[start:start + _BATCH]
        found = conn.execute(select(SNAPSHOTS.c.name).distinct().where(SNAPSHOTS.c.rdtype == "TXT", or_(
            *(SNAPSHOTS.c.name.endswith(f"._domainkey.{name}", autoescape=True) for name in chunk))))
        for key_name in found.scalars():
            owner = key_name.split("._domainkey.", 1)[1]
            if owner in key_names:
                key_names[owner].append(key_name)
    own_names = {name: [name, f"_dmarc.{name}", *key_names[name]] for name in domains}
    history = load_history(conn, [each for names in own_names.values() for each in names])
    latest = {key: run[-1] for key, run in history.runs.items()}
    asked = {(each, rdtype) for names in own_names.values() for each in names for rdtype in ("TXT", "MX")}
    source = _PrefetchedSource(conn, latest, asked)
    items = []
    for name in domains:
        seen = [latest[(each, rdtype)].last_seen for each in own_names[name] for rdtype in ("TXT", "MX")
                if (each, rdtype) in latest]
        in_reports, configured = origins.get(name, (False, False))
        if not seen:
            items.append(DnsDomainItem(domain=name, in_reports=in_reports, configured=configured,
                                       checked_at=None, policy=None, applies_as=None, rua=None,
                                       spf_dns_terms=None, dkim_keys=len(key_names[name]), problems=None))
            continue
        state = _checked(name, max(seen), source, sorted(key_names[name]))
        items.append(DnsDomainItem(
            domain=name, in_reports=in_reports, configured=configured, checked_at=state.checked_at,
            policy=policy_in_force(state), applies_as=state.dmarc.applies_as,
            rua=state.dmarc.tags.get("rua"), spf_dns_terms=state.spf.dns_terms if state.spf.record else None,
            dkim_keys=len(state.dkim), problems=state.problems))
    return items


def policy_in_force(state: DomainDns) -> str | None:
    """p for the domain's own record; a parent's sp (else p) when it inherits one."""
    tags = state.dmarc.tags
    if state.dmarc.applies_as == "subdomain":
        return tags.get("sp") or tags.get("p")
    return tags.get("p")


def watched_page(conn: Connection, origins: dict[str, tuple[bool, bool]], only: Iterable[str],
                 limit: int | None, offset: int) -> tuple[int, list[DnsDomainItem]]:
    """The watched domains (`watched_domains`) by name, only those in `only` when given, a page
    of them summed up."""
    wanted = {checked_name(value) for value in only if value.strip()}
    names = [name for name in origins if not wanted or name in wanted]
    chosen = names[offset:] if limit is None else names[offset:offset + limit]
    return len(names), domain_items(conn, chosen, origins)
