"""A domain's DNS as last recorded, checked: the DMARC policy that applies to it and what is
wrong with it, the SPF record and its problems, every DKIM key seen signing for it, its MX.

Pure over a `DnsSource`, so the API reads the latest snapshot through it and a test can hand
it any zone; nothing here looks anything up live.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.dkim_key import DkimKey, dkim_key_from_answer
from ingest.dmarc_record import ERROR, RecordProblem, is_dmarc_record, parse_dmarc_record
from ingest.dns_source import DnsOutcome, DnsSource, domain_name
from ingest.org_domain import DiscoveryMethod, PolicyDiscovery, discover_policy, psl_org_domain
from ingest.spf_audit import SpfAudit, audit_spf


@dataclass(frozen=True, slots=True)
class KeyState:
    selector: str
    name: str
    record: str | None
    key: DkimKey


@dataclass(slots=True)
class DomainDnsState:
    domain: str
    psl_org_domain: str
    discovery: PolicyDiscovery
    dmarc_record: str | None
    dmarc_tags: dict[str, str]
    dmarc_problems: list[RecordProblem]
    spf: SpfAudit
    dkim: list[KeyState] = field(default_factory=list)
    mx: list[str] | None = None
    mx_outcome: str = ""


def domain_dns_state(domain: str, source: DnsSource, key_names: list[str]) -> DomainDnsState:
    """`key_names`: the `<selector>._domainkey.<domain>` names recorded for the domain."""
    name = domain_name(domain)
    discovery = discover_policy(name, source, DiscoveryMethod.TREEWALK)
    record_text = discovery.record_text
    problems: list[RecordProblem] = []
    tags: dict[str, str] = {}
    if record_text is None:
        answer = source.lookup(f"_dmarc.{name}", "TXT")
        several = sum(is_dmarc_record(text) for text in answer.records) > 1
        problems.append(RecordProblem(ERROR, "several_dmarc" if several else "no_dmarc", None, (
            f"_dmarc.{name} publishes more than one DMARC record: receivers ignore them all" if several else
            f"no DMARC record applies to {name}: receivers apply no policy and send no reports")))
    else:
        record, problems = parse_dmarc_record(record_text)
        tags = dict(record.tags) if record else {}
    mx = source.lookup(name, "MX")
    keys = []
    for key_name in sorted(key_names):
        answer = source.lookup(key_name, "TXT")
        keys.append(KeyState(key_name.split("._domainkey.")[0], key_name,
                             answer.records[0] if len(answer.records) == 1 else None,
                             dkim_key_from_answer(answer)))
    return DomainDnsState(
        domain=name, psl_org_domain=psl_org_domain(name), discovery=discovery, dmarc_record=record_text,
        dmarc_tags=tags, dmarc_problems=problems, spf=audit_spf(name, source), dkim=keys,
        mx=list(mx.records) if mx.outcome is DnsOutcome.ANSWER else None, mx_outcome=str(mx.outcome))
