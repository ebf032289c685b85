"""The normalised shape of an aggregate report, as the store keeps it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class PublishedPolicy:
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


@dataclass(frozen=True, slots=True)
class ReportHeader:
    """Everything about a report except its records."""

    org_name: str | None
    email: str | None
    extra_contact_info: str | None
    report_id: str | None
    begin: datetime | None
    end: datetime | None
    errors: tuple[str, ...]
    generator: str | None
    version: str | None
    xml_namespace: str | None
    policy: PublishedPolicy


class PolicyOverride(NamedTuple):
    type: str | None
    comment: str | None
    type_raw: str | None = None


class DkimResult(NamedTuple):
    domain: str | None
    selector: str | None
    result: str | None
    human_result: str | None
    result_raw: str | None = None


class SpfResult(NamedTuple):
    domain: str | None
    scope: str | None
    result: str | None
    human_result: str | None
    result_raw: str | None = None


@dataclass(slots=True)
class AggregateRecord:
    """One row of a report; `raw` keeps original values that normalisation changed."""

    position: int
    source_ip: str | None
    source_ip_packed: bytes | None
    count: int | None
    disposition: str | None
    dkim: str | None
    spf: str | None
    header_from: str | None
    envelope_from: str | None
    envelope_to: str | None
    reasons: tuple[PolicyOverride, ...] = ()
    dkim_results: tuple[DkimResult, ...] = ()
    spf_results: tuple[SpfResult, ...] = ()
    raw: dict[str, str] | None = None


@dataclass(slots=True)
class RepairNotes:
    """What had to be repaired or guessed, grouped so 100k identical problems make one line."""

    _counts: dict[str, int] = field(default_factory=dict)
    _first: dict[str, int | None] = field(default_factory=dict)

    def add(self, message: str, position: int | None = None) -> None:
        if message in self._counts:
            self._counts[message] += 1
        else:
            self._counts[message] = 1
            self._first[message] = position

    def extend(self, messages: list[str]) -> None:
        for message in messages:
            self.add(message)

    def lines(self) -> list[str]:
        out = []
        for message, count in self._counts.items():
            first = self._first[message]
            if first is None:
                out.append(message if count == 1 else f"{message} (×{count})")
            elif count == 1:
                out.append(f"record {first}: {message}")
            else:
                out.append(f"{message}: {count} records, first is record {first}")
        return out

    def __bool__(self) -> bool:
        return bool(self._counts)
