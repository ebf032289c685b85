"""Recorded DNS answers as validity intervals, and a `DnsSource` that answers as of a past time.

History is kept per (name, type) as a run of intervals: an answer seen again unchanged only
moves its interval's `last_seen`, a different answer (records, or outcome: NXDOMAIN, NODATA,
SERVFAIL and timeout are kept apart) opens a new interval. Storage therefore grows with
changes, not with checks.

An interval is taken to hold from its `first_seen` until the next interval's `first_seen`:
between two checks nobody knows when a record changed, and assuming it held until it was seen
to change is the reading that never invents a change. A time before the first check is
answered with the first interval, and the `HistorySource` notes it, so verdicts that had to
borrow a later answer say so (`no_snapshot`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from ingest.dns_source import DnsAnswer, DnsOutcome, RecordType, domain_name

Key = tuple[str, str]
"""(name, record type): what one run of intervals describes."""


@dataclass(frozen=True, slots=True)
class SnapshotInterval:
    name: str
    rdtype: RecordType
    outcome: DnsOutcome
    records: tuple[str, ...]
    """Sorted: servers return record sets in any order, and order never changes meaning here."""
    ttl: int | None
    first_seen: datetime
    last_seen: datetime
    checks: int = 1

    def answer(self) -> DnsAnswer:
        return DnsAnswer(self.name, self.rdtype, self.outcome, self.records, self.ttl)

    def same_answer(self, answer: DnsAnswer) -> bool:
        return self.outcome == answer.outcome and self.records == canonical_records(answer.records)


def canonical_records(records: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(records))


@dataclass(slots=True)
class DnsHistory:
    """Every interval of the names loaded, in memory, for replaying answers fast.

    Recomputation asks the same few names millions of times, so lookups are a dict access and
    a bisect; `version` identifies the exact intervals chosen, so results can be memoised per
    (question, answers used).
    """

    runs: dict[Key, list[SnapshotInterval]] = field(default_factory=dict)
    _starts: dict[Key, list[datetime]] = field(default_factory=dict)
    _changes: list[datetime] = field(default_factory=list)

    @classmethod
    def of(cls, intervals: Iterable[SnapshotInterval]) -> DnsHistory:
        history = cls()
        for interval in intervals:
            history.runs.setdefault((interval.name, interval.rdtype), []).append(interval)
        for key, run in history.runs.items():
            run.sort(key=lambda interval: interval.first_seen)
            history._starts[key] = [interval.first_seen for interval in run]
        history._changes = sorted({start for starts in history._starts.values() for start in starts})
        return history

    def epoch(self, at: datetime) -> int:
        """Which stretch of unchanged DNS `at` falls in: two instants of one epoch see the same
        answer to every question, so a result computed for one holds for the other."""
        return bisect_right(self._changes, at)

    def has(self, name: str, rdtype: str) -> bool:
        return (name, rdtype) in self.runs

    def interval_at(self, name: str, rdtype: str, at: datetime) -> tuple[SnapshotInterval, bool] | None:
        """The interval holding at `at`, and whether it had to be borrowed from after `at`
        (no check was made before it); None when the name was never looked up."""
        key = (name, rdtype)
        run = self.runs.get(key)
        if run is None:
            return None
        index = bisect_right(self._starts[key], at) - 1
        if index < 0:
            return run[0], True
        return run[index], False

    def latest(self, name: str, rdtype: str) -> SnapshotInterval | None:
        run = self.runs.get((name, rdtype))
        return run[-1] if run else None

    def source_at(self, at: datetime) -> HistorySource:
        return HistorySource(self, at)


class HistorySource:
    """The DNS as recorded at one instant; remembers what it could not answer faithfully.

    A name never looked up is answered as a timeout — an evaluation must not read absence of
    evidence as "no record" — and listed in `missing`, so the verdict can name the gap.
    """

    __slots__ = ("_history", "at", "borrowed", "missing", "used")

    def __init__(self, history: DnsHistory, at: datetime) -> None:
        self._history = history
        self.at = at
        self.missing: set[Key] = set()
        self.borrowed: set[Key] = set()
        self.used: dict[Key, SnapshotInterval] = {}

    def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
        shown = domain_name(name)
        found = self._history.interval_at(shown, rdtype, self.at)
        if found is None:
            self.missing.add((shown, rdtype))
            return DnsAnswer(shown, rdtype, DnsOutcome.TIMEOUT)
        interval, borrowed = found
        if borrowed:
            self.borrowed.add((shown, rdtype))
        self.used[(shown, rdtype)] = interval
        if interval.name == shown:
            return interval.answer()
        return DnsAnswer(shown, rdtype, interval.outcome, interval.records, interval.ttl)
