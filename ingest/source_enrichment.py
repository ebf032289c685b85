"""The enrichment stage: find out who every stored source address is, after ingest.

Runs over `source_address` rows not identified yet (and, on request, all of them), in
batches: reverse DNS for the batch at once with bounded concurrency (through a DNS source, so
answers are cached by TTL and testable), the offline network database, the catalogued SPF
includes as recorded in the DNS history, and the DKIM and envelope domains the address was
seen with. A source whose service type changes makes its judged reports due again, since
the type takes part in the forwarding class.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, select, update
from sqlalchemy.engine import Connection

from ingest.dns_source import DnsSource
from ingest.ip_network_db import NetworkDb, network_db
from ingest.recompute import ADDRESSES, DKIM, RECORDS, REPORTS, SPF
from ingest.reverse_dns import check_many
from ingest.sender_catalogue import SenderCatalogue
from ingest.source_identity import SourceEvidence, SourceIdentity, identify
from ingest.spf_include_index import SpfIncludeIndex

log = logging.getLogger(__name__)

BATCH = 5_000
"""Sources per batch: one round of concurrent reverse lookups and one transaction."""
IDENTITY_COLUMNS = ("sender", "service", "service_type", "matched_by", "ptr", "reverse_dns", "base_domain",
                    "asn", "as_name", "country")
_SCRATCH_COLUMNS = ("id INTEGER PRIMARY KEY, sender VARCHAR(255), service VARCHAR(128), "
                    "service_type VARCHAR(24), matched_by VARCHAR(24), ptr VARCHAR(255), "
                    "reverse_dns VARCHAR(16), base_domain VARCHAR(255), asn INTEGER, as_name VARCHAR(255), "
                    "country VARCHAR(2)")


@dataclass(slots=True)
class EnrichmentStats:
    sources: int = 0
    matched: int = 0
    """sources a catalogue rule named"""
    retyped: int = 0
    """sources whose service type changed, whose reports were made due again"""
    seconds: float = 0.0

    @property
    def sources_per_second(self) -> float:
        return self.sources / self.seconds if self.seconds else 0.0


def identify_sources(engine: Engine, dns: DnsSource, catalogue: SenderCatalogue, *,
                     everything: bool = False, stale_after: timedelta | None = None,
                     limit: int | None = None, workers: int = 16, db: NetworkDb | None = None,
                     now: datetime | None = None) -> EnrichmentStats:
    """Identify the sources never identified (or all, or those identified before `stale_after`
    ago), at most `limit` of them, and store who they are."""
    started = time.perf_counter()
    when = now or datetime.now(UTC)
    db = db or network_db()
    stats = EnrichmentStats()
    with engine.connect() as conn:
        query = select(ADDRESSES.c.id, ADDRESSES.c.ip, ADDRESSES.c.packed, ADDRESSES.c.service_type,
                       ADDRESSES.c.identified_at).where(ADDRESSES.c.ip != "")
        if not everything:
            pending: ColumnElement[bool] = ADDRESSES.c.identified_at.is_(None)
            if stale_after is not None:
                pending = pending | (ADDRESSES.c.identified_at < when - stale_after)
            query = query.where(pending)
        rows = conn.execute(query.order_by(ADDRESSES.c.id).limit(limit)).all()
        # compiling every catalogued include costs a few dozen queries: not on the idle cycles
        includes = SpfIncludeIndex.build(conn, catalogue) if rows else SpfIncludeIndex()
    for start in range(0, len(rows), BATCH):
        batch = rows[start:start + BATCH]
        reverse = check_many(dns, [row.ip for row in batch], workers=workers)
        with engine.connect() as conn:
            dkim_domains, envelope_domains = _seen_domains(conn, batch[0].id, batch[-1].id)
        identities = []
        for row in batch:
            evidence = SourceEvidence(
                ip=row.ip, reverse=reverse.get(row.ip), network=db.lookup(row.ip),
                spf_include_service=includes.service_of(row.ip),
                dkim_domains=dkim_domains.get(row.id, ()),
                envelope_domains=envelope_domains.get(row.id, ()))
            identities.append((row, identify(evidence, catalogue)))
        stats.retyped += _store(engine, identities, when)
        stats.sources += len(batch)
        stats.matched += sum(1 for _, identity in identities if identity.service)
    stats.seconds = time.perf_counter() - started
    return stats


def _seen_domains(conn: Connection, first_id: int, last_id: int
                  ) -> tuple[dict[int, tuple[str, ...]], dict[int, tuple[str, ...]]]:
    """The d= domains of passing signatures and the SPF domains seen with each address of the
    id range, by message volume, most frequent first. The range, not a list of addresses: a
    list of thousands of bound values costs more to send than the join costs to run."""
    volume = func.sum(func.coalesce(RECORDS.c["count"], 1)).label("volume")
    found: list[dict[int, tuple[str, ...]]] = []
    for table in (DKIM, SPF):
        domain = func.lower(table.c.domain)
        query = (select(ADDRESSES.c.id, domain, volume)
                 .select_from(ADDRESSES.join(RECORDS, RECORDS.c.source_ip_packed == ADDRESSES.c.packed)
                              .join(table, (table.c.report_id == RECORDS.c.report_id)
                                    & (table.c.record_no == RECORDS.c.record_no)))
                 .where(ADDRESSES.c.id.between(first_id, last_id), table.c.domain.is_not(None))
                 .group_by(ADDRESSES.c.id, domain).order_by(ADDRESSES.c.id, volume.desc()))
        if table is DKIM:  # a failing signature proves nothing about who signed
            query = query.where(table.c.result == "pass")
        seen: dict[int, list[str]] = defaultdict(list)
        for source_id, name, _ in conn.execute(query):
            seen[source_id].append(name)
        found.append({source_id: tuple(names) for source_id, names in seen.items()})
    return found[0], found[1]


def _store(engine: Engine, identities: Iterable[tuple[Any, SourceIdentity]], when: datetime) -> int:
    """Write the batch's identities (plain DB-API executemany: a few thousand rows a batch, where
    SQLAlchemy's per-row parameter handling cost more than the database); make the judged
    reports of retyped sources due again."""
    identities = list(identities)
    if not identities:
        return 0
    retyped = [row.packed for row, identity in identities
               if row.identified_at is not None and row.service_type != identity.service_type and row.packed]
    with engine.begin() as conn:
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        stamp = ADDRESSES.c.identified_at.type.bind_processor(conn.dialect)
        at = stamp(when) if stamp else when
        # into a scratch table first, then one UPDATE ... FROM: an UPDATE per row would maintain
        # the table's indexes row by row, several times the cost of the whole rest
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE IF NOT EXISTS identified ({_SCRATCH_COLUMNS})")
        conn.exec_driver_sql("DELETE FROM identified")
        conn.exec_driver_sql(
            f"INSERT INTO identified VALUES ({', '.join([mark] * (len(IDENTITY_COLUMNS) + 1))})",
            [(row.id, i.sender, i.service, i.service_type, i.matched_by, i.ptr, i.reverse_dns, i.base_domain,
              i.asn, i.as_name, i.country) for row, i in identities])
        assignments = ", ".join(f"{column} = identified.{column}" for column in IDENTITY_COLUMNS)
        conn.exec_driver_sql(
            f"UPDATE {ADDRESSES.name} SET {assignments}, identified_at = {mark} FROM identified "
            f"WHERE {ADDRESSES.name}.id = identified.id", (at,))
        conn.exec_driver_sql("DELETE FROM identified")
        for start in range(0, len(retyped), 500):
            chunk = retyped[start:start + 500]
            conn.execute(update(REPORTS).where(REPORTS.c.id.in_(
                select(RECORDS.c.report_id).where(RECORDS.c.source_ip_packed.in_(chunk))))
                .values(verdicts_at=None))
    return len(retyped)
