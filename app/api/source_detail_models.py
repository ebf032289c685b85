"""What /api/v1/sources/{group}/{key} answers: one group of sources in a window.

The drill-down from a row of /api/v1/sources: who the group's addresses are (reverse DNS, AS,
country, the catalogue rule that named them), what fails and why (the classes and reason
codes of Rua's verdicts on its mail), and its records, each with the report it came in.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.api.read_models import RecordItem, Volume, Window
from app.source_detail_query import ADDRESS_CAP, Address, Cause, GroupDetail


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


_IDENTITY = {"sender": "Example Mail", "service": "Example Mail", "service_type": "esp", "matched_by": "ptr",
             "ptr": "o1.mta.example.net", "reverse_dns": "confirmed", "base_domain": "example.net",
             "asn": 64500, "as_name": "EXAMPLE-NET", "country": "NL"}
_ADDRESS = {"ip": "192.0.2.10", "messages": 57, "identified": True, **_IDENTITY}


class SourceAddressItem(BaseModel):
    """One address of the group, with its mail in the window and who it is."""

    model_config = _example(_ADDRESS)

    ip: str
    messages: int = Field(description="in the window, with the filters")
    identified: bool = Field(description="false until sender identification has looked at it")
    sender: str | None = Field(description="catalogue service, else PTR base domain, else AS name, else "
                                           "unknown")
    service: str | None
    service_type: str | None = Field(description="mailbox_provider, esp, crm, forwarder, security_gateway "
                                                 "or hosting")
    matched_by: str | None = Field(description="the catalogue rule that named the service")
    ptr: str | None = Field(description="reverse DNS name")
    reverse_dns: str | None = Field(description="confirmed (the name resolves back to the address), "
                                                "unconfirmed, no_ptr or temperror")
    base_domain: str | None
    asn: int | None
    as_name: str | None
    country: str | None

    @classmethod
    def of(cls, address: Address) -> SourceAddressItem:
        return cls(ip=address.ip, messages=address.messages, identified=address.identified,
                   **address.identity)


class ReasonCount(BaseModel):
    code: str = Field(description="a reason code of Rua's verdicts (see the README)")
    messages: int
    records: int

    @classmethod
    def of(cls, cause: Cause) -> ReasonCount:
        return cls(code=cause.code, messages=cause.messages, records=cause.records)


_JUDGED = {"records": 3, "messages": 57, "complete": True,
           "classes": {"aligned": 45, "forwarded": 0, "forwarding_failure": 0, "misconfigured": 12,
                       "unauthorised": 0, "pending": 0},
           "reasons": [{"code": "spf_result_differs", "messages": 12, "records": 1}]}


class JudgedClasses(BaseModel):
    """Messages per class of Rua's verdicts (`pending`: records not judged yet)."""

    aligned: int = 0
    forwarded: int = 0
    forwarding_failure: int = 0
    misconfigured: int = 0
    unauthorised: int = 0
    pending: int = 0


class Judged(BaseModel):
    """What fails and why, from the verdicts on the group's records: all of them in the window,
    or, for a big group, those among the window's latest records (`complete` false)."""

    model_config = _example(_JUDGED)

    records: int = Field(description="records whose verdicts are counted")
    messages: int
    complete: bool = Field(description="true when every record of the group in the window is counted")
    classes: JudgedClasses
    reasons: list[ReasonCount] = Field(description="reason codes of the verdicts, most messages first")


_DETAIL = {"messages": 57, "records": 3, "dmarc_pass": 45, "dmarc_fail": 12, "dmarc_pass_rate": 0.789474,
           "spf_aligned_pass": 40, "spf_aligned_pass_rate": 0.701754, "dkim_aligned_pass": 45,
           "dkim_aligned_pass_rate": 0.789474,
           "dispositions": {"none": 50, "quarantine": 7, "reject": 0, "unknown": 0},
           "group": "service", "key": "Example Mail",
           "window": {"since": "2026-11-01T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "sources": 1,
           "first_day": "2026-11-01", "last_day": "2026-11-01", "service": "Example Mail",
           "service_type": "esp",
           "addresses": [_ADDRESS], "judged": _JUDGED, "limit": 100, "offset": 0, "items": []}


class SourceGroupDetail(Volume):
    """One group of /api/v1/sources: its row (volumes, pass rates, the identity it shares), its
    addresses, what fails and why, and a page of its records (`items`: `limit` from `offset`)."""

    model_config = _example(_DETAIL)

    group: str = Field(description="service, base_domain, asn, country or ip")
    key: str
    window: Window
    sources: int = Field(description="addresses of the group with mail in the window")
    first_day: date | None
    last_day: date | None
    sender: str | None = None
    service: str | None = None
    service_type: str | None = None
    matched_by: str | None = None
    ptr: str | None = None
    reverse_dns: str | None = None
    base_domain: str | None = None
    asn: int | None = None
    as_name: str | None = None
    country: str | None = None
    addresses: list[SourceAddressItem] = Field(
        description=f"the group's addresses with mail in the window, most first, at most {ADDRESS_CAP}")
    judged: Judged
    limit: int
    offset: int
    items: list[RecordItem] = Field(description="a page of the group's records (`records` in all), newest "
                                                "report first")

    @classmethod
    def build(cls, detail: GroupDetail, window: Window, limit: int, offset: int) -> SourceGroupDetail:
        classes = JudgedClasses(**detail.classes)
        return cls.model_validate({
            **Volume.of(detail.tally).model_dump(), **detail.identity,
            "group": detail.by, "key": detail.key, "window": window, "sources": detail.sources,
            "first_day": detail.first_day, "last_day": detail.last_day,
            "addresses": [SourceAddressItem.of(address) for address in detail.addresses],
            "judged": Judged(records=detail.judged_records, messages=sum(detail.classes.values()),
                             complete=not detail.sampled, classes=classes,
                             reasons=[ReasonCount.of(cause) for cause in detail.causes]),
            "limit": limit, "offset": offset,
            "items": [RecordItem.model_validate(row, from_attributes=True) for row in detail.records]})
