"""A domain's DNS as Rua last recorded it, checked, and the history of every change."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.dns_models import (
    DkimKeyOut,
    DmarcState,
    DnsHistoryOut,
    DomainDns,
    IntervalOut,
    Problem,
    SpfState,
)
from app.deps import EngineDep, ReadAccess
from app.problems import Problem as HttpProblem
from app.problems import problem_responses
from ingest.dmarc_record import ERROR, WARNING, RecordProblem
from ingest.dns_snapshot_store import LatestSource, dkim_key_names, domain_checked_at, domain_intervals
from ingest.dns_source import domain_name
from ingest.domain_dns_state import domain_dns_state

router = APIRouter(prefix="/api/v1/dns", tags=["dns"], responses=problem_responses(401, 403, 404, 422))


@router.get("/{domain}", response_model=DomainDns)
def read_domain_dns(domain: str, engine: EngineDep, _: ReadAccess) -> Any:
    """The domain's DMARC, SPF, DKIM and MX records as last looked up, with every problem found.

    The DMARC record shown is the one that applies (the RFC 9989 tree walk over the recorded
    answers); SPF is checked across its includes. 404 until the domain has been snapshotted
    (it is on first sight in a report, or by `rua dns snapshot DOMAIN`).
    """
    name = _name(domain)
    with engine.connect() as conn:
        checked_at, key_names = _recorded(conn, name)
        source = LatestSource(conn)
        state = domain_dns_state(name, source, key_names)
    dmarc_problems = [_problem(p) for p in state.dmarc_problems]
    spf_problems = [_problem(p) for p in state.spf.problems]
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
                         tags=state.dmarc_tags, problems=dmarc_problems),
        spf=SpfState(record=state.spf.record, dns_terms=state.spf.dns_terms,
                     void_lookups=state.spf.void_lookups, includes=state.spf.includes, problems=spf_problems),
        dkim=keys, mx=state.mx, problems=serious,
        not_snapshotted=sorted(f"{n} {t}" for n, t in source.missing))


@router.get("/{domain}/history", response_model=DnsHistoryOut)
def read_domain_history(domain: str, engine: EngineDep, _: ReadAccess) -> Any:
    """Every recorded answer for the domain and the names under it (_dmarc, DKIM keys, hosts),
    as validity intervals: an unchanged answer extends its interval, a change opens one."""
    name = _name(domain)
    with engine.connect() as conn:
        intervals = domain_intervals(conn, name)
    if not intervals:
        raise _not_snapshotted(name)
    return DnsHistoryOut(domain=name, intervals=[IntervalOut(
        name=i.name, type=i.rdtype, outcome=str(i.outcome), records=list(i.records), ttl=i.ttl,
        first_seen=i.first_seen, last_seen=i.last_seen, checks=i.checks) for i in intervals])


def _recorded(conn: Any, name: str) -> tuple[Any, list[str]]:
    checked_at = domain_checked_at(conn, name)
    if checked_at is None:
        raise _not_snapshotted(name)
    return checked_at, dkim_key_names(conn, name)


def _name(domain: str) -> str:
    name = domain_name(domain.strip())
    if not name or len(name) > 253 or " " in name:
        raise HttpProblem(422, "invalid-domain", "Invalid domain", f"{domain!r} is not a domain name")
    return name


def _not_snapshotted(name: str) -> HttpProblem:
    return HttpProblem(404, "not-snapshotted", "Not snapshotted",
                       f"no DNS has been recorded for {name}; it is looked up when a report names it, "
                       f"or run `rua dns snapshot {name}`")


def _problem(problem: RecordProblem) -> Problem:
    return Problem(severity=str(problem.severity), code=problem.code, tag=problem.tag,
                   message=problem.message)
