"""Keeping the DNS history current and the verdicts in step with it.

One cycle: find what should be watched (policy and header_from domains seen in reports, the
configured domains, sender domains that could align with them, every (d=, selector) seen);
snapshot what was never looked up (first sight) and what is due again; make the reports a
change can affect due for judging; judge every due report. `rua serve` runs a cycle every
minute in a thread; `rua dns snapshot` and `rua align` run its parts once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Select, Table, select

from ingest.dkim_key import dkim_key_name
from ingest.dns_snapshot_store import last_checked
from ingest.dns_snapshot_taker import SnapshotRun, take_snapshots
from ingest.dns_source import DnsSource, domain_name
from ingest.recompute import DKIM, RECORDS, REPORTS, SPF, RecomputeStats, mark_due, recompute
from ingest.reverse_dns import TtlCache
from ingest.sender_catalogue import SenderCatalogue
from ingest.source_enrichment import identify_sources
from ingest.spf_include_index import snapshot_includes

log = logging.getLogger(__name__)

CYCLE_SECONDS = 60.0
IDENTITY_REFRESH = timedelta(days=7)
"""Source addresses are identified again after this long: reverse DNS and networks move."""
IDENTIFY_PER_CYCLE = 20_000
"""At most this many addresses per cycle, so a large first backlog does not hold up judging."""


@dataclass(slots=True)
class Targets:
    domains: set[str] = field(default_factory=set)
    dkim_keys: set[tuple[str, str]] = field(default_factory=set)


def watch_targets(engine: Engine, configured: Iterable[str] = (), *,
                  due_reports_only: bool = False) -> Targets:
    """Everything worth snapshotting, from the store and the settings; with `due_reports_only`,
    only what the reports not judged yet name (cheap enough to ask every minute).

    Sender domains (DKIM d=, SPF envelope domains) are watched only when they share at least
    their last two labels with a header_from domain: others cannot align under any method,
    and their DNS changes no verdict.
    """
    targets = Targets(domains={domain_name(domain) for domain in configured})
    due = select(REPORTS.c.id).where(REPORTS.c.verdicts_at.is_(None))

    def scoped(query: Select[Any], table: Table) -> Select[Any]:
        column = table.c.id if table is REPORTS else table.c.report_id
        return query.where(column.in_(due)) if due_reports_only else query

    with engine.connect() as conn:
        authors = {domain_name(value) for value in conn.execute(
            scoped(select(REPORTS.c.policy_domain).distinct(), REPORTS)).scalars() if value}
        authors |= {domain_name(value) for value in conn.execute(
            scoped(select(RECORDS.c.header_from).distinct(), RECORDS)).scalars() if value}
        senders = {domain_name(value) for value in conn.execute(
            scoped(select(SPF.c.domain).distinct(), SPF)).scalars() if value}
        for d, selector in conn.execute(scoped(select(DKIM.c.domain, DKIM.c.selector).distinct(), DKIM)):
            if d and selector:
                targets.dkim_keys.add((domain_name(d), selector.lower()))
                senders.add(domain_name(d))
    tails = {_tail(name) for name in authors | targets.domains}
    targets.domains |= authors | {name for name in senders if _tail(name) in tails}
    targets.domains.discard("")
    return targets


def _tail(name: str) -> str:
    return ".".join(name.split(".")[-2:])


def due_targets(engine: Engine, targets: Targets, interval: timedelta,
                now: datetime | None = None) -> Targets:
    """The targets never looked up, or not looked up for `interval`."""
    when = now or datetime.now(UTC)
    key_names = {}
    for d, selector in targets.dkim_keys:
        try:
            key_names[dkim_key_name(selector, d)] = (d, selector)
        except ValueError:
            continue
    with engine.connect() as conn:
        seen = last_checked(conn, [f"_dmarc.{domain}" for domain in targets.domains] + list(key_names))
    stale = when - interval
    return Targets(
        domains={domain for domain in targets.domains if seen.get(f"_dmarc.{domain}", stale) <= stale},
        dkim_keys={pair for name, pair in key_names.items() if seen.get(name, stale) <= stale})


def snapshot_and_mark(engine: Engine, live: DnsSource, targets: Targets) -> SnapshotRun:
    run = take_snapshots(engine, live, targets.domains, targets.dkim_keys)
    if run.changed_domains or run.changed_keys:
        with engine.begin() as conn:
            mark_due(conn, run.changed_domains, run.changed_keys)
    return run


def cycle(engine: Engine, live: DnsSource, configured: Sequence[str], interval: timedelta, *,
          everything: bool = True, catalogue: SenderCatalogue | None = None,
          reverse: DnsSource | None = None) -> RecomputeStats:
    """Snapshot what is due (of everything, or of the reports not judged yet), identify the
    sources not identified yet (with `catalogue`; reverse lookups through `reverse`, a cache
    over `live`), then judge: identification first, since a source's type takes part in its
    records' class."""
    targets = due_targets(engine, watch_targets(engine, configured, due_reports_only=not everything),
                          interval)
    if targets.domains or targets.dkim_keys:
        run = snapshot_and_mark(engine, live, targets)
        log.info("DNS snapshot: %d domains, %d DKIM keys, %d answers, %d changed, %d failed lookups",
                 len(targets.domains), len(targets.dkim_keys), run.answers, len(run.changed),
                 len(run.failures))
    if catalogue is not None:
        if everything:
            snapshot_includes(engine, live, catalogue, interval, datetime.now(UTC))
        found = identify_sources(engine, reverse or live, catalogue, stale_after=IDENTITY_REFRESH,
                                 limit=IDENTIFY_PER_CYCLE)
        if found.sources:
            log.info("identified %d source addresses (%d by the sender catalogue, %d changed type, "
                     "%d changed identity) in %.1f s", found.sources, found.matched, found.retyped,
                     found.regrouped, found.seconds)
        if found.grouped_rows:
            log.info("gave %d per-address rows judged before identification their sender group",
                     found.grouped_rows)
    stats = recompute(engine)
    if stats.records:
        log.info("judged %d records of %d reports in %.1f s", stats.records, stats.reports, stats.seconds)
    return stats


class DnsWatcher:
    """The background cycle of `rua serve`; a failed cycle is logged and tried again."""

    def __init__(self, engine: Engine, live: DnsSource, configured: Sequence[str], interval: timedelta,
                 cycle_seconds: float = CYCLE_SECONDS, catalogue: SenderCatalogue | None = None) -> None:
        self._engine = engine
        self._live = live
        self._catalogue = catalogue
        self._reverse = TtlCache(live)  # reverse lookups repeat across cycles; snapshots must not be cached
        self._configured = list(configured)
        self._interval = interval
        self._cycle_seconds = cycle_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rua-dns-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        last_full: datetime | None = None
        while not self._stop.is_set():
            now = datetime.now(UTC)
            everything = last_full is None or now - last_full >= min(self._interval, timedelta(hours=1))
            try:
                cycle(self._engine, self._live, self._configured, self._interval, everything=everything,
                      catalogue=self._catalogue, reverse=self._reverse)
                if everything:
                    last_full = now
            except Exception:
                log.exception("DNS snapshot or judging cycle failed; trying again in %.0f s",
                              self._cycle_seconds)
            self._stop.wait(self._cycle_seconds)
