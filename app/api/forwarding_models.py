"""What /api/v1/forwarding answers: forwarded mail, who forwards it, and which signatures break.

Forwarding is where DMARC hurts legitimate mail: SPF never survives it, DKIM survives only
when the forwarder leaves the message alone. These shapes let a domain owner see how much of
the domain's mail travels that way, which forwarders lose it, and whose changes break the
domain's own signatures.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.api.read_models import Window
from app.forwarding_query import BrokenSignatures, Forwarder, SenderGroup, Volume


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


class ClassShare(BaseModel):
    messages: int
    records: int
    share: float | None = Field(description="fraction of all messages in the window; null when there are "
                                            "none")

    @classmethod
    def of(cls, volume: Volume, all_messages: int) -> ClassShare:
        return cls(messages=volume.messages, records=volume.records,
                   share=_rate(volume.messages, all_messages))


_TOTALS = {"messages": 1200,
           "forwarded": {"messages": 90, "records": 12, "share": 0.075},
           "forwarding_failure": {"messages": 30, "records": 9, "share": 0.025},
           "broken_signatures": {"messages": 18, "records": 4, "share": 0.015}}


class ForwardingTotals(BaseModel):
    model_config = _example(_TOTALS)

    messages: int = Field(description="every message in the window, whatever its class")
    forwarded: ClassShare = Field(description="DMARC passed through an intact aligned DKIM signature after "
                                              "forwarding (class `forwarded`)")
    forwarding_failure: ClassShare = Field(description="forwarded mail that failed DMARC (class "
                                                       "`forwarding_failure`)")
    broken_signatures: ClassShare = Field(description="the forwarding failures whose aligned signature was "
                                                      "broken in transit (see `broken_signatures`)")


_DAY = {"day": "2026-11-01", "messages": 400, "forwarded": 30, "forwarding_failure": 10}


class ForwardingDay(BaseModel):
    model_config = _example(_DAY)

    day: date = Field(description="a report counts on its first day (or the window's first day)")
    messages: int = Field(description="every message of the day, whatever its class")
    forwarded: int
    forwarding_failure: int


_SENDER = {"key": "Example Forwarder", "keyed_by": "sender", "sender": "Example Forwarder",
           "service": "Example Forwarder", "service_type": "forwarder", "sources": 3, "messages": 40,
           "records": 7}


class SenderFields(BaseModel):
    key: str = Field(description="the sender identification named, else the source address")
    keyed_by: str = Field(description="`sender`, or `ip` when the address is not identified yet or "
                                      "identification found nothing")
    sender: str | None = Field(description="what every address of the group shares; null where they differ "
                                           "or are not identified")
    service: str | None
    service_type: str | None = Field(description="mailbox_provider, esp, crm, forwarder, security_gateway "
                                                 "or hosting")
    sources: int = Field(description="distinct source addresses")
    messages: int
    records: int

    @staticmethod
    def fields_of(group: SenderGroup) -> dict[str, Any]:
        return {"key": group.key, "keyed_by": group.keyed_by, "sources": group.sources,
                "messages": group.messages, "records": group.records, **group.identity}


_FORWARDER = {**_SENDER, "forwarded": 30, "forwarding_failure": 10, "dmarc_pass": 30, "dmarc_pass_rate": 0.75}


class ForwarderItem(SenderFields):
    model_config = _example(_FORWARDER)

    forwarded: int = Field(description="messages of class `forwarded`")
    forwarding_failure: int = Field(description="messages of class `forwarding_failure`")
    dmarc_pass: int = Field(description="messages that passed DMARC as the receiver evaluated it")
    dmarc_pass_rate: float | None

    @classmethod
    def of(cls, group: Forwarder) -> ForwarderItem:
        return cls(**cls.fields_of(group), forwarded=group.forwarded,
                   forwarding_failure=group.forwarding_failure, dmarc_pass=group.dmarc_pass,
                   dmarc_pass_rate=_rate(group.dmarc_pass, group.messages))


_BROKEN = {"domain": "example.com", **_SENDER, "messages": 8, "records": 2}


class BrokenSignatureItem(SenderFields):
    model_config = _example(_BROKEN)

    domain: str = Field(description="d= of the signature that broke")

    @classmethod
    def of(cls, group: BrokenSignatures) -> BrokenSignatureItem:
        return cls(**cls.fields_of(group), domain=group.domain)


class ForwardingOut(BaseModel):
    model_config = _example({
        "window": {"since": "2026-11-01T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "totals": _TOTALS,
        "days": [_DAY], "forwarders": [_FORWARDER], "forwarders_total": 1,
        "broken_signatures": [_BROKEN], "broken_signatures_total": 1})

    window: Window
    totals: ForwardingTotals
    days: list[ForwardingDay]
    forwarders: list[ForwarderItem] = Field(description="sources of forwarded and forwarding-failure "
                                                        "records, by messages, at most `limit`")
    forwarders_total: int = Field(description="forwarder groups in all")
    broken_signatures: list[BrokenSignatureItem] = Field(
        description="forwarding failures whose aligned DKIM signature was broken in transit, by signing "
                    "domain and sender, at most `limit`: DMARC failed, the reporter found a signature of a "
                    "domain aligned with header_from and its result was `fail`, its key was present and "
                    "sound at the time, and the domain's own SPF does not authorise the source")
    broken_signatures_total: int = Field(description="broken-signature groups in all")
