"""What is wrong with a domain's SPF record, read without a sender: the problems a receiver
would hit for every message (too many lookups, a missing include) and the risky choices
(+all, ptr), for the DNS page and the API.

Lookups are counted over the whole include/redirect tree as RFC 7208 §4.6.4 counts them at
a receiver: each include, a, mx, ptr, exists and redirect term costs one, wherever it sits.
Terms whose target needs the sender (macros) are counted but not followed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.dmarc_record import ERROR, NOTICE, WARNING, RecordProblem
from ingest.dns_source import DnsOutcome, DnsSource, domain_name
from ingest.spf_evaluator import MAX_DNS_TERMS, MAX_VOID_LOOKUPS
from ingest.spf_record import SpfSyntaxError, fixed_target, parse_record, select_record

MAX_DEPTH = 12


@dataclass(slots=True)
class SpfAudit:
    domain: str
    record: str | None = None
    dns_terms: int = 0
    void_lookups: int = 0
    includes: list[str] = field(default_factory=list)
    problems: list[RecordProblem] = field(default_factory=list)


def audit_spf(domain: str, source: DnsSource) -> SpfAudit:
    audit = SpfAudit(domain_name(domain))
    answer = source.lookup(audit.domain, "TXT")
    if answer.failed:
        audit.problems.append(RecordProblem(WARNING, "dns_failure", None,
                                            f"the TXT lookup of {audit.domain} failed ({answer.outcome})"))
        return audit
    try:
        audit.record = select_record(answer.records)
    except SpfSyntaxError as exc:
        audit.problems.append(RecordProblem(ERROR, "multiple_spf", None,
                                            f"{exc}: receivers return permerror for every message"))
        return audit
    if audit.record is None:
        audit.problems.append(RecordProblem(WARNING, "no_spf", None, f"{audit.domain} publishes no SPF "
                                            "record: SPF can never pass, so DMARC rests on DKIM alone"))
        return audit
    _walk(audit, audit.domain, audit.record, source, depth=0, seen={audit.domain})
    if audit.dns_terms > MAX_DNS_TERMS:
        audit.problems.append(RecordProblem(ERROR, "too_many_lookups", None, (
            f"{audit.dns_terms} DNS-querying terms across the record and its includes; receivers stop "
            f"at {MAX_DNS_TERMS} with permerror, so SPF fails for every message")))
    if audit.void_lookups > MAX_VOID_LOOKUPS:
        audit.problems.append(RecordProblem(ERROR, "too_many_void_lookups", None, (
            f"{audit.void_lookups} lookups find nothing; over {MAX_VOID_LOOKUPS} gives permerror")))
    return audit


def _walk(audit: SpfAudit, name: str, text: str, source: DnsSource, depth: int, seen: set[str]) -> None:
    try:
        record = parse_record(text)
    except SpfSyntaxError as exc:
        audit.problems.append(RecordProblem(ERROR, "syntax", None, f"SPF record of {name}: {exc}"))
        return
    top = depth == 0
    for mechanism in record.mechanisms:
        if mechanism.kind in ("include", "a", "mx", "ptr", "exists"):
            audit.dns_terms += 1
        if mechanism.kind == "ptr":
            audit.problems.append(RecordProblem(WARNING, "ptr_mechanism", mechanism.text, (
                f"{name} uses {mechanism.text}: slow and unreliable; receivers may skip it (RFC 7208 §5.5)")))
        if mechanism.kind == "all" and top and mechanism.verdict in ("pass", "neutral"):
            audit.problems.append(RecordProblem(ERROR if mechanism.verdict == "pass" else WARNING,
                                                "permissive_all", mechanism.text, (
                f"{mechanism.text} lets any host on the internet pass (or not fail) SPF for {name}")))
        if mechanism.kind == "include":
            target = fixed_target(mechanism.target, name)
            if target is None:
                continue
            audit.includes.append(target)
            _follow(audit, name, target, mechanism.text, source, depth, seen)
        elif mechanism.kind == "mx":
            target = fixed_target(mechanism.target, name) or name
            if source.lookup(target, "MX").outcome in (DnsOutcome.NXDOMAIN, DnsOutcome.NODATA):
                audit.void_lookups += 1
    if record.redirect is not None:
        audit.dns_terms += 1
        target = fixed_target(record.redirect, name)
        if target is not None:
            _follow(audit, name, target, f"redirect={target}", source, depth, seen)
    elif top and not any(mechanism.kind == "all" for mechanism in record.mechanisms):
        audit.problems.append(RecordProblem(NOTICE, "no_all", None, (
            f"{name}'s record ends without an all mechanism: unlisted hosts get neutral, not fail")))


def _follow(audit: SpfAudit, name: str, target: str, term: str, source: DnsSource, depth: int,
            seen: set[str]) -> None:
    if target in seen or depth >= MAX_DEPTH:
        if depth >= MAX_DEPTH:
            audit.problems.append(RecordProblem(ERROR, "include_loop", term, f"{term} nests too deep"))
        return
    answer = source.lookup(target, "TXT")
    if answer.failed:
        audit.problems.append(RecordProblem(WARNING, "dns_failure", term,
                                            f"{term} in {name}: the lookup of {target} failed"))
        return
    try:
        text = select_record(answer.records) if answer.outcome is DnsOutcome.ANSWER else None
    except SpfSyntaxError:
        text = None
    if text is None:
        if answer.outcome is not DnsOutcome.ANSWER:
            audit.void_lookups += 1
        audit.problems.append(RecordProblem(ERROR, "include_missing", term, (
            f"{term} in {name}: {target} publishes no single SPF record; receivers return permerror")))
        return
    _walk(audit, target, text, source, depth + 1, seen | {target})
