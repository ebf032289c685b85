"""The alignment stage: judge stored records against the DNS history and store the verdicts.

It runs over what ingest stored, never inside ingest, so a slow or dead DNS cannot slow the
intake. A report is due while its `verdicts_at` is empty: new reports are, and reports whose
domain's DNS history changed are made due again (`mark_due`). The history is loaded once per
run and kept in memory; reports are read, judged and written in batches, each batch in one
transaction that replaces the batch's verdicts whole.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, or_, select, update
from sqlalchemy.engine import Connection

from app.db import BEGIN_MODE, writer_turn
from app.models import (
    Record,
    RecordDkimResult,
    RecordSpfResult,
    Report,
    SourceAddress,
    table_of,
)
from ingest.cyclic_gc import cyclic_gc_paused
from ingest.dns_snapshot_store import SNAPSHOTS, load_history
from ingest.record_class import FORWARDING_SOURCE_TYPES
from ingest.record_verdict import RecordJudge, ReportPolicy, Verdict
from ingest.verdict_rows import RecordReader, StoredRecord, VerdictWriter

log = logging.getLogger(__name__)

REPORTS = table_of(Report)
RECORDS = table_of(Record)
DKIM = table_of(RecordDkimResult)
SPF = table_of(RecordSpfResult)
ADDRESSES = table_of(SourceAddress)
MAX_PASSES = 3
BATCH_RECORDS = 20_000
"""Records judged and written per transaction: large enough to amortise each statement,
small enough that memory stays flat and concurrent ingest is not held up for long."""


@dataclass(slots=True)
class RecomputeStats:
    reports: int = 0
    records: int = 0
    seconds: float = 0.0

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def recompute(engine: Engine, *, everything: bool = False, domains: Sequence[str] | None = None,
              batch_records: int = BATCH_RECORDS, workers: int = 1,
              progress: Callable[[RecomputeStats], None] | None = None) -> RecomputeStats:
    """Judge due reports (or all with `everything`), optionally only those of `domains`;
    with `workers` > 1, that many processes share the reports (by id), each with its own copy
    of the history: judging is CPU work, and the batches' writes interleave.

    If the DNS history grows while this runs (a snapshot taken by another process), the reports
    this run judged are judged once more against the new history, so none keeps verdicts on
    DNS that had already changed when it was written.
    """
    if workers > 1:
        return _in_processes(engine, everything, domains, batch_records, workers)
    return _recompute_share(engine, everything, domains, batch_records, progress)


def _recompute_share(engine: Engine, everything: bool, domains: Sequence[str] | None, batch_records: int,
                     progress: Callable[[RecomputeStats], None] | None, share: tuple[int, int] = (0, 1)
                     ) -> RecomputeStats:
    started = time.perf_counter()
    stats = RecomputeStats()
    condition: list[Any] = [] if everything else [REPORTS.c.verdicts_at.is_(None)]
    if domains:
        condition.append(REPORTS.c.policy_domain.in_([domain.lower() for domain in domains]))
    mine = [REPORTS.c.id % share[1] == share[0]] if share[1] > 1 else []
    condition += mine
    with cyclic_gc_paused():
        for _ in range(MAX_PASSES):
            run_started = datetime.now(UTC)
            with engine.connect() as conn:
                history_mark = _history_mark(conn)
                judge = RecordJudge(load_history(conn))
                source_types = forwarding_sources(conn)
            _run(engine, judge, source_types, condition, batch_records, stats, started, progress)
            with engine.connect() as conn:
                if _history_mark(conn) == history_mark:
                    break
            log.info("DNS history changed while judging; judging this run's reports again")
            condition = [REPORTS.c.verdicts_at >= run_started, *mine]
    stats.seconds = time.perf_counter() - started
    return stats


def _in_processes(engine: Engine, everything: bool, domains: Sequence[str] | None, batch_records: int,
                  workers: int) -> RecomputeStats:
    started = time.perf_counter()
    url = engine.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        shares = pool.starmap(_worker, [(url, everything, list(domains or ()), batch_records,
                                         (share, workers)) for share in range(workers)])
    return RecomputeStats(reports=sum(s.reports for s in shares), records=sum(s.records for s in shares),
                          seconds=time.perf_counter() - started)


def _worker(url: str, everything: bool, domains: list[str], batch_records: int,
            share: tuple[int, int]) -> RecomputeStats:
    from app.db import create_db_engine

    engine = create_db_engine(url)
    try:
        return _recompute_share(engine, everything, domains or None, batch_records, None, share)
    finally:
        engine.dispose()


def _run(engine: Engine, judge: RecordJudge, source_types: dict[str, str], condition: list[Any],
         batch_records: int, stats: RecomputeStats, started: float,
         progress: Callable[[RecomputeStats], None] | None) -> None:
    """One pass: each batch read in a read transaction, judged, then written in a write
    transaction of its own (SQLite: taken up front, in turn with the other processes' batches
    through app.db.writer_turn), so ingest is never held up for the judging, and a writer that
    came between cannot make the write fail."""
    after = 0
    writer: VerdictWriter | None = None
    reader = RecordReader(engine.dialect.name, source_types)
    while True:
        with engine.connect() as conn:
            ids = _next_batch(conn, condition, after, batch_records)
            if not ids:
                return
            policies, stored = _read_batch(conn, ids, reader)
        after = ids[-1]
        rows, totals, sources = _judge_batch(judge, policies, stored)
        with writer_turn(engine), engine.connect().execution_options(**{BEGIN_MODE: "IMMEDIATE"}) as conn, \
                conn.begin():
            stored_now = _lock_reports(conn, ids)
            if len(stored_now) < len(ids):  # deleted since the batch was read
                ids = [report_id for report_id in ids if report_id in stored_now]
                rows = [row for row in rows if row[0] in stored_now]
                totals = [row for row in totals if row[0] in stored_now]
                sources = [row for row in sources if row[0] in stored_now]
            writer = writer or VerdictWriter(conn)
            computed_at = datetime.now(UTC)
            writer.replace(conn, ids, rows, totals, computed_at, sources)
            conn.execute(update(REPORTS).where(REPORTS.c.id.in_(ids)).values(verdicts_at=computed_at))
        stats.records += len(rows)
        stats.reports += len(ids)
        stats.seconds = time.perf_counter() - started
        if progress:
            progress(stats)


def _lock_reports(conn: Connection, ids: list[int]) -> set[int]:
    """The batch's reports still stored, kept so until the write commits: the check the
    verdict rows' foreign keys made once per row (migration 0012), made once per batch.
    PostgreSQL locks them as a key check does (FOR KEY SHARE); SQLite's write lock, taken
    up front, already keeps every other writer out."""
    return set(conn.execute(select(REPORTS.c.id).where(REPORTS.c.id.in_(ids))
                            .with_for_update(key_share=True)).scalars())


def _history_mark(conn: Connection) -> tuple[Any, ...]:
    """Changes only when an interval is added: an unchanged answer seen again changes no verdict."""
    return tuple(conn.execute(select(func.count(), func.max(SNAPSHOTS.c.first_seen))).one())


def _next_batch(conn: Connection, condition: list[Any], after: int, batch_records: int) -> list[int]:
    """The next reports after `after` holding about `batch_records` records (at least one report)."""
    ids: list[int] = []
    total = 0
    for report_id, record_count in conn.execute(
            select(REPORTS.c.id, REPORTS.c.record_count).where(REPORTS.c.id > after, *condition)
            .order_by(REPORTS.c.id).limit(5000)):
        if ids and total + record_count > batch_records:
            break
        ids.append(report_id)
        total += record_count
    return ids


def mark_due(conn: Connection, domains: Iterable[str] = (), dkim_keys: Iterable[tuple[str, str]] = ()) -> int:
    """Make the reports that a DNS change can affect due again: those of the changed domains
    (their policy domain) and those with a signature by a changed (d=, selector) key."""
    touched = 0
    names = sorted({domain.lower() for domain in domains})
    if names:
        touched += conn.execute(update(REPORTS).where(REPORTS.c.policy_domain.in_(names))
                                .values(verdicts_at=None)).rowcount
    keys = sorted(set(dkim_keys))
    for start in range(0, len(keys), 200):
        chunk = keys[start:start + 200]
        signed = select(DKIM.c.report_id).where(or_(*(
            (DKIM.c.domain == domain) & (DKIM.c.selector == selector) for domain, selector in chunk)))
        touched += conn.execute(update(REPORTS).where(REPORTS.c.id.in_(signed))
                                .values(verdicts_at=None)).rowcount
    return touched


def forwarding_sources(conn: Connection) -> dict[str, str]:
    """The addresses sender identification named forwarders or mailbox providers: the only
    service types a verdict depends on, and few enough to hold for the run."""
    return {ip: kind for ip, kind in conn.execute(
        select(ADDRESSES.c.ip, ADDRESSES.c.service_type)
        .where(ADDRESSES.c.service_type.in_(sorted(FORWARDING_SOURCE_TYPES))))}


def _read_batch(conn: Connection, ids: list[int], reader: RecordReader
                ) -> tuple[list[ReportPolicy], dict[int, list[StoredRecord]]]:
    policies = [ReportPolicy(row.id, row.policy_domain, row.p, row.adkim, row.aspf, row.discovery_method,
                             row.date_begin, row.date_end, row.ingested_at)
                for row in conn.execute(select(
                    REPORTS.c.id, REPORTS.c.policy_domain, REPORTS.c.p, REPORTS.c.adkim, REPORTS.c.aspf,
                    REPORTS.c.discovery_method, REPORTS.c.date_begin, REPORTS.c.date_end,
                    REPORTS.c.ingested_at).where(REPORTS.c.id.in_(ids)))]
    return policies, reader.read(conn, ids)


SourceRow = tuple[int, str, str, str, int, int, int]
"""a report_source_classes row: report, address, class, broken d=, messages, records, passed"""


def _judge_batch(judge: RecordJudge, policies: list[ReportPolicy], stored: dict[int, list[StoredRecord]]
                 ) -> tuple[list[tuple[int, int, Verdict, datetime]], list[tuple[int, str, int, int]],
                            list[SourceRow]]:
    rows: list[tuple[int, int, Verdict, datetime]] = []
    totals: dict[tuple[int, str], list[int]] = {}
    sources: dict[tuple[int, str, str, str], list[int]] = {}
    for policy in policies:
        records = stored.get(policy.report_id, [])
        as_of = policy.judged_at
        verdicts = judge.judge_report(policy, [facts for _, _, facts in records])
        for (record_no, count, facts), verdict in zip(records, verdicts, strict=True):
            rows.append((policy.report_id, record_no, verdict, as_of))
            tally = totals.setdefault((policy.report_id, verdict.record_class), [0, 0])
            tally[0] += count or 0
            tally[1] += 1
            key = (policy.report_id, facts.source_ip or "", str(verdict.record_class), broken_domain(verdict))
            source = sources.setdefault(key, [0, 0, 0])
            source[0] += count or 0
            source[1] += 1
            if "pass" in (facts.policy_dkim, facts.policy_spf):
                source[2] += count or 0
    return (rows, [(report_id, str(record_class), messages, number)
                   for (report_id, record_class), (messages, number) in totals.items()],
            [(*key, *values) for key, values in sources.items()])  # type: ignore[misc]


def broken_domain(verdict: Verdict) -> str:
    """The d= of the signature a forwarding failure's message lost in transit, or "".

    The rules are those of app.forwarding_query.broken_signatures: DMARC failed, the source is
    not authorised by the domain's own SPF, and an aligned signature failed verification with
    a key that was published and usable at the time (the first such d= by name).
    """
    if verdict.record_class != "forwarding_failure" or verdict.dmarc != "fail" \
            or verdict.own_spf_result == "pass":
        return ""
    broken = [s.domain for s in verdict.signatures
              if s.aligned and s.result == "fail" and s.key_state == "present" and s.domain]
    return min(broken) if broken else ""
