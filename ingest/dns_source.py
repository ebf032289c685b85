"""Where DNS answers come from, as far as the evaluators are concerned.

SPF (and later DMARC) evaluation asks a `DnsSource`, never the network directly, so that a
check made today against the live resolver and a re-check against answers recorded months ago
run the same code. An answer is therefore plain data: it can be stored, compared and replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol

RecordType = Literal["A", "AAAA", "TXT", "MX", "PTR"]
"""The record types the evaluators ask for (type SPF is obsolete, RFC 7208 §14.1)."""


class DnsOutcome(StrEnum):
    """How a query ended.

    A timeout is kept apart from "no record": SPF turns the first into temperror and the
    second into a result, so confusing them would change verdicts.
    """

    ANSWER = "answer"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    SERVFAIL = "servfail"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """One query and what came back.

    `name` is the name asked for, lower-case and without the final dot; when the answer came
    through a CNAME, `records` are those of the CNAME's target. Record texts:

    - A, AAAA: the address, e.g. "192.0.2.1", "2001:db8::1" (RFC 5952 form);
    - TXT: the record's character-strings joined without separator, decoded as UTF-8 (bytes
      that are not UTF-8 become U+FFFD, which still fails every ASCII-only check);
    - MX: "<preference> <exchange>", e.g. "10 mail.example.com"; see `parse_mx`;
    - PTR: the target name.

    Names inside records keep the case served and carry no final dot; the root name (a null
    MX, RFC 7505) is ".".
    """

    name: str
    rdtype: RecordType
    outcome: DnsOutcome
    records: tuple[str, ...] = ()
    ttl: int | None = None

    def __post_init__(self) -> None:
        if (self.outcome is DnsOutcome.ANSWER) != bool(self.records):
            raise ValueError(f"{self.name} {self.rdtype}: an {self.outcome} answer "
                             f"{'needs' if self.outcome is DnsOutcome.ANSWER else 'has no'} records")

    @property
    def failed(self) -> bool:
        """True when DNS could not say whether records exist (SERVFAIL or a timeout)."""
        return self.outcome in (DnsOutcome.SERVFAIL, DnsOutcome.TIMEOUT)


class DnsSource(Protocol):
    """Anything that can answer a query: the live resolver, a stored snapshot, a test zone."""

    def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
        """Answer `name` (no final dot, any case) for `rdtype`; never raises for DNS failures."""
        ...


def domain_name(name: str) -> str:
    """The form names take in answers and snapshots: lower-case, no final dot."""
    if name.endswith(".") and name != ".":
        name = name[:-1]
    return name.lower()


def mx_record(preference: int, exchange: str) -> str:
    return f"{preference} {record_name(exchange)}"


def record_name(name: str) -> str:
    """A name inside a record: case kept as served, no final dot, the root as "."."""
    return name.removesuffix(".") or "."


def parse_mx(record: str) -> tuple[int, str]:
    """Split an MX record text into (preference, exchange); the exchange "." is a null MX."""
    preference, _, exchange = record.partition(" ")
    return int(preference), exchange
