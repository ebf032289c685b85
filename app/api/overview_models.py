"""What /api/v1/overview answers: the figures a dashboard's front page shows at a glance."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.api.read_models import ClassVolume, Dispositions, Sender, Window
from app.overview_query import DomainPolicy, Policy, PublishedPeriod, ReportedPeriod
from app.overview_query import TopSource as TopSourceFound
from app.summary_query import Tally

_WHEN = "2026-11-01T00:00:00Z"


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]}, populate_by_name=True,
                      serialize_by_alias=True)


_CLASSES = {"aligned": 340, "forwarded": 30, "forwarding_failure": 10, "misconfigured": 5,
            "unauthorised": 15, "pending": 0}
_DAY = {"day": "2026-11-01", "messages": 400, "dmarc_pass": 370, "dmarc_fail": 30, "dmarc_pass_rate": 0.925,
        "classes": _CLASSES}


class OverviewDay(BaseModel):
    model_config = _example(_DAY)

    day: date = Field(description="a report counts on its first day (or the window's first day)")
    messages: int
    dmarc_pass: int = Field(description="as the receivers evaluated it")
    dmarc_fail: int
    dmarc_pass_rate: float | None
    classes: ClassVolume = Field(description="messages per class of Rua's verdicts; `pending`: not judged "
                                             "yet")

    @classmethod
    def of(cls, day: date, tally: Tally, classes: dict[str, int]) -> OverviewDay:
        return cls(day=day, messages=tally.messages, dmarc_pass=tally.dmarc_pass,
                   dmarc_fail=tally.messages - tally.dmarc_pass, dmarc_pass_rate=tally.rate(tally.dmarc_pass),
                   classes=ClassVolume.of(classes, tally.messages))


_SOURCE = {"source_ip": "192.0.2.10", "messages": 300, "dmarc_pass": 297, "dmarc_pass_rate": 0.99,
           "first_day": "2026-11-01", "last_day": "2026-11-30",
           "sender": {"sender": "Example Mail", "service": "Example Mail", "service_type": "esp",
                      "ptr": "o1.mta.example.net", "base_domain": "example.net", "asn": 64500,
                      "as_name": "EXAMPLE-NET", "country": "NL"}}


class TopSource(BaseModel):
    """A source address as /api/v1/sources shows it, with who it is."""

    model_config = _example(_SOURCE)

    source_ip: str
    messages: int
    dmarc_pass: int = Field(description="as the receivers evaluated it")
    dmarc_pass_rate: float | None
    first_day: date | None
    last_day: date | None
    sender: Sender | None = Field(description="who the address is; null until identified")

    @classmethod
    def of(cls, found: TopSourceFound) -> TopSource:
        tally = found.group.tally
        return cls(source_ip=found.group.key, messages=tally.messages, dmarc_pass=tally.dmarc_pass,
                   dmarc_pass_rate=tally.rate(tally.dmarc_pass), first_day=found.group.first_day,
                   last_day=found.group.last_day,
                   sender=None if found.sender is None else Sender(**found.sender))


_POLICY = {"p": "quarantine", "sp": "quarantine", "pct": 100, "adkim": "r", "aspf": "r", "np": None}


class PolicyOut(BaseModel):
    """RFC 7489 defaults filled in (sp from p, pct 100, relaxed alignment); `np` is null where it
    is not known."""

    model_config = _example(_POLICY)

    p: str | None
    sp: str | None
    pct: int | None
    adkim: str | None
    aspf: str | None
    np: str | None

    @classmethod
    def of(cls, policy: Policy | None) -> PolicyOut | None:
        return None if policy is None else cls(**policy._asdict())


_REPORTED = {"from": _WHEN, "until": "2026-11-15T00:00:00Z", "policy": _POLICY, "reports": 42}


class ReportedPeriodOut(BaseModel):
    """Consecutive reports (by begin) restating the same policy."""

    model_config = _example(_REPORTED)

    from_: datetime = Field(alias="from", description="the begin of the run's first report")
    until: datetime = Field(description="the latest end of the run's reports")
    policy: PolicyOut
    reports: int

    @classmethod
    def of(cls, period: ReportedPeriod) -> ReportedPeriodOut:
        policy = PolicyOut.of(period.policy)
        assert policy is not None
        return cls.model_validate({"from": period.since, "until": period.until, "policy": policy,
                                   "reports": period.reports})


_PUBLISHED = {"from": _WHEN, "until": None, "last_checked": "2026-11-30T18:00:00Z", "outcome": "answer",
              "records": ["v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com"], "policy": _POLICY}


class PublishedPeriodOut(BaseModel):
    """One interval of the `_dmarc.<domain>` TXT history."""

    model_config = _example(_PUBLISHED)

    from_: datetime = Field(alias="from", description="the first lookup that gave this answer")
    until: datetime | None = Field(description="when a different answer was first seen; null while it is "
                                               "still the latest")
    last_checked: datetime = Field(description="the last lookup that gave this answer")
    outcome: str = Field(description="answer, nxdomain, nodata, servfail or timeout")
    records: list[str]
    policy: PolicyOut | None = Field(description="as receivers apply it; null unless exactly one DMARC "
                                                 "record was published")

    @classmethod
    def of(cls, period: PublishedPeriod) -> PublishedPeriodOut:
        return cls.model_validate({"from": period.since, "until": period.until,
                                   "last_checked": period.last_checked, "outcome": period.outcome,
                                   "records": period.records, "policy": PolicyOut.of(period.policy)})


_DOMAIN = {"domain": "example.com", "policy": _POLICY, "reported_at": "2026-11-30T00:00:00Z",
           "reported": [_REPORTED], "dns": [_PUBLISHED]}


class DomainPolicyOut(BaseModel):
    model_config = _example(_DOMAIN)

    domain: str
    policy: PolicyOut | None = Field(description="the policy in force: as published in the latest matching "
                                                 "report")
    reported_at: datetime | None = Field(description="date_begin of that report")
    reported: list[ReportedPeriodOut] = Field(description="the policy over the window as reports restate it")
    dns: list[PublishedPeriodOut] = Field(
        description="the `_dmarc.<domain>` TXT answers Rua recorded that held during the window; empty until "
                    "the name is looked up (a domain without a record of its own shows nxdomain or nodata: "
                    "its policy then comes from its organisational domain)")

    @classmethod
    def of(cls, found: DomainPolicy) -> DomainPolicyOut:
        return cls(domain=found.domain, policy=PolicyOut.of(found.policy), reported_at=found.reported_at,
                   reported=[ReportedPeriodOut.of(period) for period in found.reported],
                   dns=[PublishedPeriodOut.of(period) for period in found.published])


class OverviewOut(BaseModel):
    model_config = _example({
        "window": {"since": _WHEN, "until": "2026-12-01T00:00:00Z"}, "reports": 90, "messages": 400,
        "dmarc_pass": 370, "dmarc_fail": 30, "dmarc_pass_rate": 0.925, "classes": _CLASSES, "days": [_DAY],
        "dispositions": {"none": 380, "quarantine": 15, "reject": 5, "unknown": 0}, "top_sources": [_SOURCE],
        "policies": [_DOMAIN]})

    window: Window
    reports: int = Field(description="reports with a matching record (conflicting copies left out)")
    messages: int
    dmarc_pass: int
    dmarc_fail: int
    dmarc_pass_rate: float | None
    classes: ClassVolume
    days: list[OverviewDay]
    dispositions: Dispositions
    top_sources: list[TopSource] = Field(description="the ten largest source addresses, with who each is")
    policies: list[DomainPolicyOut] = Field(description="each policy domain of the matching reports, by name")
