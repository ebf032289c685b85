"""Which catalogued service's SPF include authorises an address, in one bisection.

Services publish the networks they send from as an SPF include for their customers
(`include:_spf.google.com`, `include:sendgrid.net`). Those includes are snapshotted like any
other SPF name (`snapshot_includes`), compiled into networks (ingest.spf_compiled) from the
history as last recorded, and laid out as disjoint segments, each owned by the narrowest
network covering it, so that identifying a hundred thousand addresses costs a hundred
thousand bisections rather than a walk of every include for each.

Only the networks an include *passes* count, in record order (`-ip4:` before an `ip4:` that
covers it cuts a hole), and a tree that cannot be compiled (macros, exists) names no one
rather than guess.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from ingest.dns_snapshot_store import LatestSource, last_checked, record_answers
from ingest.dns_snapshot_taker import RecordingSource, gather_spf
from ingest.dns_source import DnsSource
from ingest.sender_catalogue import SenderCatalogue, Service
from ingest.spf_compiled import CompiledSpf, client_number, compile_spf
from ingest.spf_record import Verdict

Range = tuple[int, int]


@dataclass(slots=True)
class SpfIncludeIndex:
    starts: dict[int, list[int]] = field(default_factory=lambda: {4: [], 6: []})
    """per IP version: the first address of each segment, ascending"""
    ends: dict[int, list[int]] = field(default_factory=lambda: {4: [], 6: []})
    owners: dict[int, list[Service]] = field(default_factory=lambda: {4: [], 6: []})

    @classmethod
    def build(cls, conn: Connection, catalogue: SenderCatalogue) -> SpfIncludeIndex:
        """From the includes' latest snapshots; includes never snapshotted add nothing."""
        source = LatestSource(conn)
        networks: dict[int, list[tuple[int, int, Service]]] = {4: [], 6: []}
        for domain in sorted(catalogue.spf_include_domains()):
            service = catalogue.by_spf_include(domain)
            if service is None:
                continue
            for version in (4, 6):
                compiled = compile_spf(domain, source, version)
                if compiled is not None:
                    networks[version] += [(low, high, service) for low, high in _passing(compiled, version)]
        index = cls()
        for version, found in networks.items():
            index._lay_out(version, found)
        return index

    def _lay_out(self, version: int, networks: list[tuple[int, int, Service]]) -> None:
        """Cut the networks into disjoint segments owned by the narrowest cover (nested
        announcements: a provider's /16 with a customer's /24 inside it)."""
        bounds = sorted({low for low, _, _ in networks} | {high + 1 for _, high, _ in networks})
        by_width = sorted(networks, key=lambda item: item[1] - item[0])
        for low, next_low in itertools.pairwise(bounds):
            owner = next((service for start, end, service in by_width
                          if start <= low and next_low - 1 <= end), None)
            if owner is None:
                continue
            starts, ends, owners = self.starts[version], self.ends[version], self.owners[version]
            if owners and owners[-1] is owner and ends[-1] + 1 == low:
                ends[-1] = next_low - 1  # adjacent pieces of one service's network: one segment
            else:
                starts.append(low)
                ends.append(next_low - 1)
                owners.append(owner)

    def service_of(self, ip: str) -> Service | None:
        number = client_number(ip)
        if number is None:
            return None
        version, value = number
        starts = self.starts[version]
        at = bisect.bisect_right(starts, value) - 1
        if at >= 0 and value <= self.ends[version][at]:
            return self.owners[version][at]
        return None

    def __len__(self) -> int:
        return len(self.starts[4]) + len(self.starts[6])


def _passing(compiled: CompiledSpf, version: int, depth: int = 0) -> list[Range]:
    """The networks `compiled` passes, in record order: a network an earlier term matches
    with another result (`-ip4:`, `~include:`) is cut out of every later one, as check_host's
    first match would."""
    if compiled.constant is not None or depth > 10:
        return []
    passing: list[Range] = []
    earlier: list[Range] = []
    for kind, payload, verdict in compiled.entries:
        if kind == "net":
            found = [(low, high) for family, low, high in payload  # type: ignore[attr-defined]
                     if family == version]
        elif kind == "include":
            assert isinstance(payload, CompiledSpf)
            found = _passing(payload, version, depth + 1)
        else:
            return passing  # nothing after an `all` or a DNS failure is ever reached
        for network in found:
            pieces = _without([network], earlier)
            if verdict is Verdict.PASS:
                passing += pieces
            earlier += pieces
    if compiled.redirect is not None:
        passing += _without(_passing(compiled.redirect, version, depth + 1), earlier)
    return passing


def _without(ranges: list[Range], holes: list[Range]) -> list[Range]:
    for hole_low, hole_high in holes:
        cut: list[Range] = []
        for low, high in ranges:
            if high < hole_low or low > hole_high:
                cut.append((low, high))
                continue
            if low < hole_low:
                cut.append((low, hole_low - 1))
            if high > hole_high:
                cut.append((hole_high + 1, high))
        ranges = cut
    return ranges


def snapshot_includes(engine: Engine, live: DnsSource, catalogue: SenderCatalogue, interval: timedelta,
                      now: datetime) -> int:
    """Snapshot the catalogued includes not looked up within `interval`; how many were."""
    domains = sorted(catalogue.spf_include_domains())
    with engine.connect() as conn:
        seen = last_checked(conn, domains)
    due = [domain for domain in domains if seen.get(domain, now - interval) <= now - interval]
    for domain in due:
        source = RecordingSource(live)
        gather_spf(domain, source)
        with engine.begin() as conn:
            record_answers(conn, source.answers.values(), now)
    return len(due)
