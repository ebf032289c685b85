"""What the read API answers: the JSON shapes of reports, records, summaries, sources, domains.

Every model carries an example, so the OpenAPI document shows a real-looking answer, and
field descriptions say what a DMARC user needs to know to read them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from app.summary_query import Tally

_WHEN = "2026-11-01T00:00:00Z"
Item = TypeVar("Item", bound=BaseModel)


class Page(BaseModel, Generic[Item]):
    """One page of a list: `total` matches in all, `items` from `offset`, at most `limit`."""

    total: int
    limit: int
    offset: int
    items: list[Item]


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


# -- records ------------------------------------------------------------------------------------

class Reason(BaseModel):
    type: str | None
    comment: str | None


class DkimResult(BaseModel):
    domain: str | None
    selector: str | None
    result: str | None
    human_result: str | None


class SpfResult(BaseModel):
    domain: str | None
    scope: str | None = Field(description="mfrom or helo")
    result: str | None
    human_result: str | None


RECORD_EXAMPLE: dict[str, Any] = {
    "report_id": 42, "record_no": 1, "org_name": "google.com", "policy_domain": "example.com",
    "date_begin": _WHEN, "date_end": "2026-11-01T23:59:59Z", "source_ip": "192.0.2.10", "count": 12,
    "disposition": "none", "dkim": "pass", "spf": "fail", "dmarc": "pass", "header_from": "example.com",
    "envelope_from": "bounces.example.com", "envelope_to": None, "reasons": [],
    "dkim_results": [{"domain": "example.com", "selector": "s1", "result": "pass", "human_result": None}],
    "spf_results": [{"domain": "bounces.example.com", "scope": "mfrom", "result": "pass",
                     "human_result": None}],
    "verdict": {"class": "aligned", "dmarc": "pass", "spf_aligned": True, "dkim_aligned": True,
                "spf_result": "pass", "own_spf_result": "pass",
                "dkim": [{"domain": "example.com", "selector": "s1", "result": "pass", "aligned": True,
                          "key_state": "present"}],
                "reasons": [], "org_domain": "example.com", "discovery_method": "psl",
                "dns_as_of": "2026-11-01T12:00:00Z"},
    "sender": {"sender": "Example Mail", "service": "Example Mail", "service_type": "esp",
               "ptr": "o1.mta.example.net", "base_domain": "example.net", "asn": 64500,
               "as_name": "EXAMPLE-NET", "country": "NL"},
}


class SignatureVerdict(BaseModel):
    domain: str | None
    selector: str | None
    result: str | None = Field(description="as the reporter saw it")
    aligned: bool = Field(description="d= aligned with header_from under the report's adkim")
    key_state: str = Field(description="the key at the time: present, revoked, missing, malformed, weak "
                                       "or unknown")


class Verdict(BaseModel):
    """Rua's own judgement of the record against the DNS of the report's dates."""

    class_: str = Field(alias="class", description="aligned, forwarded, forwarding_failure, misconfigured "
                                                   "or unauthorised")
    dmarc: str = Field(description="pass, fail or temperror, recomputed")
    spf_aligned: bool
    dkim_aligned: bool
    spf_result: str | None = Field(description="source_ip against the envelope domain's SPF of the time")
    own_spf_result: str | None = Field(description="source_ip against the header_from domain's SPF")
    dkim: list[SignatureVerdict]
    reasons: list[str] = Field(description="reason codes: where Rua and the reporter disagree, or what "
                                           "in DNS explains a failure")
    org_domain: str | None
    discovery_method: str = Field(description="psl or treewalk, from the report")
    dns_as_of: datetime = Field(description="the instant whose DNS the record was judged against")

    model_config = {"populate_by_name": True, "serialize_by_alias": True}


class Sender(BaseModel):
    """Who the source address is, as sender identification found (ingest.source_identity)."""

    sender: str | None = Field(description="catalogue service, else PTR base domain, else AS name, "
                                           "else unknown")
    service: str | None
    service_type: str | None = Field(description="mailbox_provider, esp, crm, forwarder, security_gateway "
                                                 "or hosting")
    ptr: str | None
    base_domain: str | None
    asn: int | None
    as_name: str | None
    country: str | None


class RecordItem(BaseModel):
    """One `<record>`: a source address, a message count, and what the receiver decided."""

    model_config = _example(RECORD_EXAMPLE)

    report_id: int
    record_no: int = Field(description="position in the report, from 1")
    org_name: str | None = Field(description="the reporter")
    policy_domain: str | None
    date_begin: datetime | None
    date_end: datetime | None
    source_ip: str | None
    count: int | None = Field(description="messages this row stands for")
    disposition: str | None = Field(description="none, quarantine or reject, as applied")
    dkim: str | None = Field(description="aligned DKIM result as the receiver evaluated it")
    spf: str | None = Field(description="aligned SPF result as the receiver evaluated it")
    dmarc: str = Field(description="pass when aligned DKIM or SPF passed")
    header_from: str | None
    envelope_from: str | None
    envelope_to: str | None
    reasons: list[Reason] = Field(description="policy overrides the receiver applied")
    dkim_results: list[DkimResult] = Field(description="each DKIM signature, unaligned results included")
    spf_results: list[SpfResult]
    verdict: Verdict | None = Field(description="Rua's verdict; null until the record has been judged")
    sender: Sender | None = Field(default=None, description="who the source is; null until identified")


class RecordPage(Page[RecordItem]):
    model_config = _example({"total": 1, "limit": 100, "offset": 0, "items": [RECORD_EXAMPLE]})


# -- reports ------------------------------------------------------------------------------------

REPORT_EXAMPLE: dict[str, Any] = {
    "id": 42, "org_name": "google.com", "report_id": "1234567890123456789", "policy_domain": "example.com",
    "date_begin": _WHEN, "date_end": "2026-11-01T23:59:59Z", "record_count": 3, "message_count": 57,
    "p": "quarantine", "conflict_of_id": None, "repair_notes": [], "ingested_at": "2026-11-02T08:15:00Z",
}


class ReportSummary(BaseModel):
    model_config = _example(REPORT_EXAMPLE)

    id: int
    org_name: str | None
    report_id: str | None = Field(description="the reporter's own id for the report")
    policy_domain: str | None
    date_begin: datetime | None
    date_end: datetime | None
    record_count: int
    message_count: int
    p: str | None
    conflict_of_id: int | None = Field(
        description="set on a second copy whose content differs from the first (kept, never merged)")
    repair_notes: list[str] = Field(description="what was wrong with the document and how it was read")
    ingested_at: datetime


class ReportPage(Page[ReportSummary]):
    model_config = _example({"total": 1, "limit": 100, "offset": 0, "items": [REPORT_EXAMPLE]})


POLICY_EXAMPLE: dict[str, Any] = {
    "domain": "example.com", "adkim": "r", "aspf": "r", "p": "quarantine", "sp": None, "np": None, "pct": 100,
    "fo": None, "testing": None, "discovery_method": None,
}


class PublishedPolicy(BaseModel):
    """The DMARC policy the reporter found published (RFC 7489 and RFC 9990 fields)."""

    model_config = _example(POLICY_EXAMPLE)

    domain: str | None
    adkim: str | None
    aspf: str | None
    p: str | None
    sp: str | None
    np: str | None
    pct: int | None
    fo: str | None
    testing: str | None
    discovery_method: str | None


class Delivery(BaseModel):
    """One input the report arrived in (the first, and every duplicate delivery)."""

    original_sha256: str
    location: str = Field(description="where in the input the report was found")
    received_at: datetime
    source: str
    container: str
    size: int


class ReportDetail(ReportSummary):
    model_config = _example({
        **REPORT_EXAMPLE, "email": "noreply-dmarc-support@google.com", "extra_contact_info": None,
        "errors": [], "generator": None, "version": "1.0", "xml_namespace": None, "policy": POLICY_EXAMPLE,
        "deliveries": [{"original_sha256": "9f" * 32, "location": "upload:google.xml.zip!google.xml",
                        "received_at": "2026-11-02T08:15:00Z", "source": "upload:google.xml.zip",
                        "container": "zip", "size": 1830}],
        "records": [RECORD_EXAMPLE], "records_offset": 0, "records_limit": 1000,
    })

    email: str | None
    extra_contact_info: str | None
    errors: list[str] = Field(description="<error> elements the reporter included")
    generator: str | None
    version: str | None
    xml_namespace: str | None
    policy: PublishedPolicy
    deliveries: list[Delivery]
    records: list[RecordItem] = Field(description="records_limit records from records_offset, in order")
    records_offset: int
    records_limit: int


# -- analytics ----------------------------------------------------------------------------------

class Dispositions(BaseModel):
    none: int = 0
    quarantine: int = 0
    reject: int = 0
    unknown: int = Field(default=0, description="records without a disposition")


class Volume(BaseModel):
    """Messages and how they fared; rates are fractions of `messages` (null when there are none)."""

    messages: int
    records: int
    dmarc_pass: int
    dmarc_fail: int
    dmarc_pass_rate: float | None
    spf_aligned_pass: int
    spf_aligned_pass_rate: float | None
    dkim_aligned_pass: int
    dkim_aligned_pass_rate: float | None
    dispositions: Dispositions

    @classmethod
    def of(cls, tally: Tally, **extra: Any) -> Any:
        return cls(messages=tally.messages, records=tally.records, dmarc_pass=tally.dmarc_pass,
                   dmarc_fail=tally.messages - tally.dmarc_pass, dmarc_pass_rate=tally.rate(tally.dmarc_pass),
                   spf_aligned_pass=tally.spf_aligned_pass,
                   spf_aligned_pass_rate=tally.rate(tally.spf_aligned_pass),
                   dkim_aligned_pass=tally.dkim_aligned_pass,
                   dkim_aligned_pass_rate=tally.rate(tally.dkim_aligned_pass),
                   dispositions=Dispositions(**tally.dispositions), **extra)


_VOLUME = {"messages": 57, "records": 3, "dmarc_pass": 45, "dmarc_fail": 12, "dmarc_pass_rate": 0.789474,
           "spf_aligned_pass": 40, "spf_aligned_pass_rate": 0.701754, "dkim_aligned_pass": 45,
           "dkim_aligned_pass_rate": 0.789474,
           "dispositions": {"none": 50, "quarantine": 7, "reject": 0, "unknown": 0}}


class ClassVolume(BaseModel):
    """Messages by the class of Rua's verdict; `pending`: records not judged yet."""

    aligned: int = 0
    forwarded: int = 0
    forwarding_failure: int = 0
    misconfigured: int = 0
    unauthorised: int = 0
    pending: int = 0

    @classmethod
    def of(cls, classes: dict[str, int], messages: int) -> ClassVolume:
        known = {name: classes.get(name, 0) for name in cls.model_fields if name != "pending"}
        return cls(**known, pending=max(0, messages - sum(known.values())))


_CLASSES = {"aligned": 40, "forwarded": 5, "forwarding_failure": 2, "misconfigured": 0, "unauthorised": 10,
            "pending": 0}


class DayVolume(Volume):
    model_config = _example({"day": "2026-11-01", **_VOLUME, "classes": _CLASSES})

    day: date = Field(description="a report counts on its first day (or the window's first day)")
    classes: ClassVolume


class Window(BaseModel):
    since: datetime | None
    until: datetime | None = Field(description="exclusive")


class SummaryOut(Volume):
    model_config = _example({"window": {"since": _WHEN, "until": "2026-12-01T00:00:00Z"}, "reports": 1,
                             **_VOLUME, "classes": _CLASSES,
                             "days": [{"day": "2026-11-01", **_VOLUME, "classes": _CLASSES}]})

    window: Window
    reports: int = Field(description="reports with a matching record (conflicting copies left out)")
    classes: ClassVolume
    days: list[DayVolume]


_SOURCE = {"group": "ip", "key": "192.0.2.10", "source_ip": "192.0.2.10", "sources": 1, **_VOLUME,
           "classes": _CLASSES, "first_day": "2026-11-01", "last_day": "2026-11-01",
           "sender": "Example Mail", "service": "Example Mail", "service_type": "esp", "matched_by": "ptr",
           "ptr": "o1.mta.example.net", "reverse_dns": "confirmed", "base_domain": "example.net",
           "asn": 64500, "as_name": "EXAMPLE-NET", "country": "NL"}


class SourceItem(Volume):
    """One group of source addresses. By address (`group=ip`), every identity field is the
    address's own; by service or AS, those all its addresses share; otherwise null."""

    model_config = _example(_SOURCE)

    group: str = Field(description="service, base_domain, asn, country or ip")
    key: str = Field(description="the group's value: `pending` while its addresses are not identified, "
                                 "`unknown` when identification found nothing")
    source_ip: str | None = Field(default=None, description="the address, when grouped by ip")
    sources: int = Field(description="distinct source addresses in the group")
    classes: ClassVolume
    first_day: date | None
    last_day: date | None
    sender: str | None = Field(default=None, description="catalogue service, else PTR base domain, else "
                                                         "AS name, else unknown")
    service: str | None = Field(default=None, description="the catalogue's name for it")
    service_type: str | None = Field(default=None, description="mailbox_provider, esp, crm, forwarder, "
                                                               "security_gateway or hosting")
    matched_by: str | None = Field(default=None, description="the catalogue rule that named the service")
    ptr: str | None = None
    reverse_dns: str | None = Field(default=None, description="confirmed, unconfirmed, no_ptr or temperror")
    base_domain: str | None = None
    asn: int | None = None
    as_name: str | None = None
    country: str | None = None


class SourcePage(Page[SourceItem]):
    model_config = _example({"total": 1, "limit": 100, "offset": 0, "items": [_SOURCE]})


_DOMAIN = {"domain": "example.com", "reports": 1, **_VOLUME, "first_day": "2026-11-01",
           "last_day": "2026-11-01", "policy": POLICY_EXAMPLE, "policy_reported_at": _WHEN}


class DomainItem(Volume):
    model_config = _example(_DOMAIN)

    domain: str
    reports: int
    first_day: date | None
    last_day: date | None
    policy: PublishedPolicy | None = Field(description="the policy in the latest matching report")
    policy_reported_at: datetime | None = Field(description="date_begin of that report")


class DomainPage(Page[DomainItem]):
    model_config = _example({"total": 1, "limit": 100, "offset": 0, "items": [_DOMAIN]})
