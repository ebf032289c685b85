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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.engine import Connection

from ingest.address_group import fill_address_groups
from ingest.cyclic_gc import cyclic_gc_paused
from ingest.dbapi_rows import fetch_rows, placeholder
from ingest.dns_source import DnsSource
from ingest.ip_network_db import NetworkDb, network_db
from ingest.recompute import ADDRESSES, DKIM, RECORDS, REPORTS, SPF
from ingest.reverse_dns import check_many
from ingest.sender_catalogue import SenderCatalogue, Service
from ingest.source_identity import IdentityRow, MemoisedCatalogue, identity_row
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

KnownIdentity = tuple[str | None, str | None, str | None]
"""sender, service and service type, as identification last wrote them"""
PendingSource = tuple[int, str, bytes | None, KnownIdentity | None]
"""A source to identify: id, address, packed address, and what it was identified as before (None
if never: a plain row, as a hundred thousand of them are read at once)."""


@dataclass(slots=True)
class EnrichmentStats:
    sources: int = 0
    matched: int = 0
    """sources a catalogue rule named"""
    retyped: int = 0
    """sources whose service type changed"""
    regrouped: int = 0
    """sources whose identity (sender, service or type) changed, whose reports were made due
    again: their verdicts' classes may depend on the type, and their per-address rows keep
    the identity (ingest.address_group)"""
    grouped_rows: int = 0
    """per-address class rows judged before their address was identified, given its group"""
    seconds: float = 0.0

    @property
    def sources_per_second(self) -> float:
        return self.sources / self.seconds if self.seconds else 0.0


def identify_sources(engine: Engine, dns: DnsSource, catalogue: SenderCatalogue, *,
                     everything: bool = False, stale_after: timedelta | None = None,
                     limit: int | None = None, workers: int = 16, db: NetworkDb | None = None,
                     now: datetime | None = None) -> EnrichmentStats:
    """Identify the sources never identified (or all, or those identified before `stale_after`
    ago), at most `limit` of them, and store who they are.

    With the DNS answers cached, a source costs tens of microseconds, so the loop is kept to
    plain rows and tuples: the database is read and written through DB-API cursors, catalogue
    answers for repeated networks and domains are kept for the run, and the cyclic garbage
    collector, which would rescan the growing batches over and over, is paused. (Reading the
    next batch and writing the last on threads of their own, while this one is identified, was
    tried: the threads' own Python work made it no quicker on two cores.)
    """
    started = time.perf_counter()
    when = now or datetime.now(UTC)
    db = db or network_db()
    stats = EnrichmentStats()
    with cyclic_gc_paused():
        with engine.connect() as conn:
            rows = _pending(conn, everything, None if stale_after is None else when - stale_after, limit)
            # compiling every catalogued include costs a few dozen queries: not on the idle cycles
            includes = SpfIncludeIndex.build(conn, catalogue) if rows else SpfIncludeIndex()
        lookups = MemoisedCatalogue(catalogue)
        network = db.lookup
        include_service: Callable[[str], Service | None] = includes.service_of if len(includes) else _nobody
        for start in range(0, len(rows), BATCH):
            batch = rows[start:start + BATCH]
            reverse = check_many(dns, [row[1] for row in batch], workers=workers).get
            with engine.connect() as conn:
                dkim_domains, envelope_domains = _seen_domains(conn, batch[0][0], batch[-1][0])
            dkim, envelope = dkim_domains.get, envelope_domains.get
            identities = [identity_row(reverse(ip), network(ip), include_service(ip), dkim(source_id, ()),
                                       envelope(source_id, ()), lookups)
                          for source_id, ip, _, _ in batch]
            retyped, regrouped = _store(engine, batch, identities, when)
            stats.retyped += retyped
            stats.regrouped += regrouped
            stats.sources += len(batch)
            stats.matched += sum(1 for identity in identities if identity[1])
        with engine.begin() as conn:  # rows judged before their address was identified, if any
            stats.grouped_rows = fill_address_groups(conn)
    stats.seconds = time.perf_counter() - started
    return stats


def _nobody(ip: str) -> Service | None:
    """An SPF include index with nothing in it answers this for every address."""
    return None


def _pending(conn: Connection, everything: bool, identified_before: datetime | None,
             limit: int | None) -> list[PendingSource]:
    """The sources to identify, by id; whether one was identified before is all that is needed of
    its identified_at, so the moment is not read back."""
    mark = placeholder(conn.dialect)
    parameters: list[Any] = [""]
    where = "ip != " + mark
    if not everything:
        where += " AND (identified_at IS NULL"
        if identified_before is not None:  # bound as SQLAlchemy binds it in a comparison
            column_type = ADDRESSES.c.identified_at.type.dialect_impl(conn.dialect)
            stamp = column_type.bind_processor(conn.dialect)
            parameters.append(stamp(identified_before) if stamp else identified_before)
            where += " OR identified_at < " + mark
        where += ")"
    sql = (f"SELECT id, ip, packed, sender, service, service_type, identified_at IS NOT NULL "
           f"FROM {ADDRESSES.name} WHERE {where} ORDER BY id")
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [(source_id, ip, packed, (sender, service, service_type) if identified else None)
            for source_id, ip, packed, sender, service, service_type, identified
            in fetch_rows(conn, sql, parameters)]


def _seen_domains(conn: Connection, first_id: int, last_id: int
                  ) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """The d= domains of passing signatures and the SPF domains seen with each address of the
    id range, by message volume, most frequent first. The range, not a list of addresses: a
    list of thousands of bound values costs more to send than the join costs to run."""
    mark = placeholder(conn.dialect)
    found: list[dict[int, list[str]]] = []
    sources, records = ADDRESSES.name, RECORDS.name
    for table in (DKIM.name, SPF.name):
        # a failing signature proves nothing about who signed
        passing = f" AND {table}.result = 'pass'" if table == DKIM.name else ""
        sql = (f"SELECT {sources}.id, lower({table}.domain), sum(coalesce({records}.count, 1)) AS volume "
               f"FROM {sources} JOIN {records} ON {records}.source_ip_packed = {sources}.packed "
               f"JOIN {table} ON {table}.report_id = {records}.report_id "
               f"AND {table}.record_no = {records}.record_no "
               f"WHERE {sources}.id BETWEEN {mark} AND {mark} AND {table}.domain IS NOT NULL{passing} "
               f"GROUP BY {sources}.id, lower({table}.domain) ORDER BY {sources}.id, volume DESC")
        seen: dict[int, list[str]] = {}
        for source_id, name, _ in fetch_rows(conn, sql, (first_id, last_id)):
            names = seen.get(source_id)
            if names is None:
                seen[source_id] = [name]
            else:
                names.append(name)
        found.append(seen)
    return found[0], found[1]


def _store(engine: Engine, batch: Sequence[PendingSource], identities: Sequence[IdentityRow],
           when: datetime) -> tuple[int, int]:
    """Write the batch's identities through the DB-API cursor; make the judged reports of
    sources whose identity changed due again. (Retyped, regrouped) sources."""
    if not identities:
        return 0, 0
    changed = [(packed, known[2] != identity[2]) for (_, _, packed, known), identity
               in zip(batch, identities, strict=True)
               if known is not None and known != identity[:3] and packed]
    regrouped = [packed for packed, _ in changed]
    with engine.begin() as conn:
        stamp = ADDRESSES.c.identified_at.type.bind_processor(conn.dialect)
        at = stamp(when) if stamp else when
        cursor: Any = conn.connection.cursor()
        try:
            if conn.dialect.name == "postgresql":
                _update_through_copy(cursor, batch, identities, at)
            else:
                _update_each(cursor, placeholder(conn.dialect), batch, identities, at)
        finally:
            cursor.close()
        for start in range(0, len(regrouped), 500):
            chunk = regrouped[start:start + 500]
            conn.execute(update(REPORTS).where(REPORTS.c.id.in_(
                select(RECORDS.c.report_id).where(RECORDS.c.source_ip_packed.in_(chunk))))
                .values(verdicts_at=None))
    return sum(1 for _, retyped in changed if retyped), len(regrouped)


def _update_each(cursor: Any, mark: str, batch: Sequence[PendingSource], identities: Sequence[IdentityRow],
                 at: Any) -> None:
    """One UPDATE by primary key per source, in one executemany. SQLite plans an UPDATE ... FROM a
    scratch table as a scan of the whole table probing the scratch table, so that form cost
    every batch a pass over every source ever seen; by key, a batch costs its own rows."""
    if isinstance(at, datetime):  # as the sqlite3 module's own adapter writes it, once and not per row
        at = at.isoformat(" ")
    assignments = ", ".join(f"{column} = {mark}" for column in IDENTITY_COLUMNS)
    cursor.executemany(f"UPDATE {ADDRESSES.name} SET {assignments}, identified_at = {mark} WHERE id = {mark}",
                       [(*identity, at, row[0]) for row, identity in zip(batch, identities, strict=True)])


def _update_through_copy(cursor: Any, batch: Sequence[PendingSource], identities: Sequence[IdentityRow],
                         at: Any) -> None:
    """PostgreSQL: COPY into a scratch table, then one UPDATE ... FROM it, several times quicker
    than a statement per row there."""
    cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS identified ({_SCRATCH_COLUMNS})")
    cursor.execute("TRUNCATE identified")
    with cursor.copy(f"COPY identified (id, {', '.join(IDENTITY_COLUMNS)}) FROM STDIN") as copy:
        for row, identity in zip(batch, identities, strict=True):
            copy.write_row((row[0], *identity))
    assignments = ", ".join(f"{column} = identified.{column}" for column in IDENTITY_COLUMNS)
    cursor.execute(f"UPDATE {ADDRESSES.name} SET {assignments}, identified_at = %s "
                   f"FROM identified WHERE {ADDRESSES.name}.id = identified.id", (at,))
