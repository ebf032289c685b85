"""The normalised shape of an aggregate report's header, and the notes on what was repaired.

Records are carried as rows (see `record_batch`), not objects: at a million records per
report an object per record and per result costs more than the parse itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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

    def merge(self, other: RepairNotes) -> None:
        """Fold in notes gathered elsewhere (another batch, another process)."""
        for message, count in other._counts.items():
            first = other._first[message]
            if message in self._counts:
                self._counts[message] += count
                mine = self._first[message]
                if first is not None and (mine is None or first < mine):
                    self._first[message] = first
            else:
                self._counts[message] = count
                self._first[message] = first

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


@dataclass(slots=True)
class RawReportHeader:
    """The document-level texts: version, report_metadata and policy_published."""

    namespace: str | None = None
    version: str | None = None
    metadata: dict[str, str | None] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    policy: dict[str, str | None] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
