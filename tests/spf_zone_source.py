"""A `DnsSource` built from the openspf test suite's `zonedata`, as its drivers read it.

The suite's conventions, which a real zone file cannot express:
- `SPF: text` also serves as the name's TXT record, unless the name lists TXT records of its
  own ("Selecting records" checks that type SPF is ignored); `TXT: NONE` lists none.
- A list of strings is one record of several character-strings, joined without separator.
- `TIMEOUT` makes every query for a type the name has no records of time out, so
  `- TXT: v=spf1 -all` plus `- TIMEOUT` answers TXT but times out MX.
- A name that is absent is NXDOMAIN; a name that is present without the type is NODATA.
- CNAMEs are followed for every other type; a loop is SERVFAIL, as a resolver reports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any

from ingest.dns_source import DnsAnswer, DnsOutcome, RecordType, domain_name, mx_record, record_name

_MAX_CNAME_CHAIN = 8


@dataclass(slots=True)
class _Node:
    records: dict[str, list[str]] = field(default_factory=dict)
    spf: list[str] = field(default_factory=list)
    lists_txt: bool = False
    times_out: bool = False
    cname: str | None = None


class ZoneSource:
    def __init__(self, zonedata: Mapping[str, Sequence[Any]]) -> None:
        self._nodes: dict[str, _Node] = {}
        for name, entries in zonedata.items():
            node = self._nodes.setdefault(domain_name(name), _Node())
            for entry in entries:
                _add(node, entry)
        for node in self._nodes.values():
            if not node.lists_txt and node.spf:
                node.records["TXT"] = node.spf

    def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
        asked = domain_name(name)
        current = asked
        seen = {current}
        for _ in range(_MAX_CNAME_CHAIN):
            node = self._nodes.get(current)
            if node is None:
                return DnsAnswer(asked, rdtype, DnsOutcome.NXDOMAIN)
            if node.cname is None:
                if node.records.get(rdtype):
                    return DnsAnswer(asked, rdtype, DnsOutcome.ANSWER, tuple(node.records[rdtype]))
                return DnsAnswer(asked, rdtype, DnsOutcome.TIMEOUT if node.times_out else DnsOutcome.NODATA)
            current = domain_name(node.cname)
            if current in seen:
                break
            seen.add(current)
        return DnsAnswer(asked, rdtype, DnsOutcome.SERVFAIL)


def _add(node: _Node, entry: Any) -> None:
    if entry == "TIMEOUT":
        node.times_out = True
        return
    ((rdtype, value),) = entry.items()
    if rdtype == "SPF":
        node.spf.append(_text(value))
    elif rdtype == "TXT":
        node.lists_txt = True
        if value != "NONE":
            node.records.setdefault("TXT", []).append(_text(value))
    elif rdtype == "MX":
        preference, exchange = value
        node.records.setdefault("MX", []).append(mx_record(int(preference), exchange))
    elif rdtype == "CNAME":
        node.cname = value
    elif rdtype == "PTR":
        node.records.setdefault(rdtype, []).append(record_name(value))
    elif rdtype in ("A", "AAAA"):
        node.records.setdefault(rdtype, []).append(str(ip_address(value)))
    else:
        raise ValueError(f"zonedata entry of unknown type {rdtype!r}")


def _text(value: str | Sequence[str]) -> str:
    return value if isinstance(value, str) else "".join(value)
