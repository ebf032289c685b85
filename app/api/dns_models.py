"""Response models of /api/v1/dns: a domain's DNS as last recorded, and its history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.api.read_models import Page


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


class Problem(BaseModel):
    severity: str = Field(description="error, warning or notice")
    code: str = Field(description="stable code, e.g. too_many_lookups, no_rua, missing_p")
    tag: str | None = Field(description="the tag or term concerned, if one")
    message: str


class DmarcState(BaseModel):
    name: str = Field(description="the _dmarc name whose record applies")
    record: str | None
    policy_domain: str | None = Field(description="where the applied record was found")
    applies_as: str = Field(description="domain (its own record), subdomain (a parent's) or none")
    org_domain: str = Field(description="by the RFC 9989 tree walk over the recorded DNS")
    psl_org_domain: str = Field(description="by the public suffix list (RFC 7489)")
    tags: dict[str, str]
    problems: list[Problem]


class SpfState(BaseModel):
    record: str | None
    dns_terms: int = Field(description="DNS-querying terms across includes; over 10 is permerror")
    void_lookups: int
    includes: list[str]
    problems: list[Problem]


class DkimKeyOut(BaseModel):
    selector: str
    name: str
    record: str | None
    state: str = Field(description="present, revoked, missing, malformed, weak or unknown")
    key_type: str | None
    bits: int | None
    testing: bool
    problems: list[str]


_WHEN = "2026-11-28T06:00:00Z"
_INTERVAL = {"name": "example.com", "type": "TXT", "outcome": "answer",
             "records": ["v=spf1 include:_spf.google.com -all"], "ttl": 3600,
             "first_seen": "2026-11-01T06:00:00Z", "last_seen": _WHEN, "checks": 109}


class DomainDns(BaseModel):
    model_config = _example({
        "domain": "example.com", "checked_at": _WHEN,
        "dmarc": {"name": "_dmarc.example.com", "record": "v=DMARC1; p=none; rua=mailto:d@example.com",
                  "policy_domain": "example.com", "applies_as": "domain", "org_domain": "example.com",
                  "psl_org_domain": "example.com",
                  "tags": {"v": "DMARC1", "p": "none", "rua": "mailto:d@example.com"},
                  "problems": [{"severity": "notice", "code": "monitoring_only", "tag": "p",
                                "message": "p=none only monitors: failing mail is delivered as usual"}]},
        "spf": {"record": "v=spf1 include:_spf.google.com -all", "dns_terms": 4, "void_lookups": 0,
                "includes": ["_spf.google.com"], "problems": []},
        "dkim": [{"selector": "google", "name": "google._domainkey.example.com",
                  "record": "v=DKIM1; k=rsa; p=MII...", "state": "present", "key_type": "rsa",
                  "bits": 2048, "testing": False, "problems": []}],
        "mx": ["1 smtp.google.com"], "problems": 0, "not_snapshotted": []})

    domain: str
    checked_at: datetime | None = Field(description="the latest lookup of any of the domain's names")
    dmarc: DmarcState
    spf: SpfState
    dkim: list[DkimKeyOut] = Field(description="every key seen signing for the domain in reports")
    mx: list[str] | None
    problems: int = Field(description="errors and warnings, all records together")
    not_snapshotted: list[str] = Field(description="names needed here that were never looked up")


class IntervalOut(BaseModel):
    name: str
    type: str
    outcome: str = Field(description="answer, nxdomain, nodata, servfail or timeout")
    records: list[str]
    ttl: int | None
    first_seen: datetime = Field(description="the first lookup that gave this answer")
    last_seen: datetime = Field(description="the last lookup that gave it; it holds until the next interval")
    checks: int


class DnsHistoryOut(BaseModel):
    model_config = _example({"domain": "example.com", "intervals": [_INTERVAL]})

    domain: str
    intervals: list[IntervalOut] = Field(description="by name, type, then time")


_DOMAIN_ITEM: dict[str, Any] = {
    "domain": "example.com", "in_reports": True, "configured": False, "checked_at": _WHEN, "policy": "none",
    "applies_as": "domain", "rua": "mailto:d@example.com", "spf_dns_terms": 4, "dkim_keys": 1, "problems": 0}


class DnsDomainItem(BaseModel):
    """One watched domain summed up: the figures of its `/api/v1/dns/{domain}` answer."""

    model_config = _example(_DOMAIN_ITEM)

    domain: str
    in_reports: bool = Field(description="a policy domain of stored reports")
    configured: bool = Field(description="listed in RUA_DOMAINS")
    checked_at: datetime | None = Field(description="the latest lookup; null when never snapshotted")
    policy: str | None = Field(description="the policy in force: p of its own record, sp of a parent's")
    applies_as: str | None = Field(description="domain, subdomain or none; null when never snapshotted")
    rua: str | None = Field(description="the rua tag of the record that applies")
    spf_dns_terms: int | None = Field(description="DNS-querying SPF terms across includes; null without SPF")
    dkim_keys: int = Field(description="DKIM keys seen signing for the domain")
    problems: int | None = Field(description="errors and warnings, as /api/v1/dns/{domain} counts them")


class DnsDomainPage(Page[DnsDomainItem]):
    model_config = _example({"total": 1, "limit": 100, "offset": 0, "items": [_DOMAIN_ITEM]})
