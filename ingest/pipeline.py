"""The fast ingest path for one input: keep the bytes, unpack, parse, normalise, store.

Every input gets an `InputOutcome` listing one `ReportOutcome` per report found (new,
duplicate, failed or deferred). Bad input never raises out of here: it is kept, its
error recorded, and the caller goes on. Only a broken store (database or disk) raises,
because then nothing can be promised and the caller must retry later.
"""

from __future__ import annotations

import gc
import io
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from itertools import chain
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from ingest.aggregate_normaliser import normalise_header
from ingest.aggregate_report import RepairNotes, ReportHeader
from ingest.aggregate_source import AggregateSource, open_aggregate
from ingest.errors import IngestError, LimitExceeded, MalformedReport
from ingest.failure_store import store_failure_report
from ingest.ingest_outcome import InputOutcome as InputOutcome
from ingest.ingest_outcome import ReportOutcome as ReportOutcome
from ingest.limits import DecompressionBudget, UnpackLimits
from ingest.original_store import OriginalStore, StoredOriginal
from ingest.parallel_parser import cores
from ingest.read_mode import ReadAgain, ReadMode
from ingest.record_batch import RecordBatch
from ingest.report_identity import ContentDigest, ReportIdentity, header_values
from ingest.report_store import ReportStore, ReportTransaction
from ingest.tls_store import store_tls_report
from ingest.unpack import Opener, Payload, ReportKind, UnpackFailure, unpack
from ingest.write_group import ParsedPayload, PreparedInput, prepare

log = logging.getLogger(__name__)

GROUP_ATTEMPTS = 4
"""Tries of a write group that PostgreSQL ends as a deadlock before the store is called broken."""
_DEADLOCK = "40P01"


class IngestPipeline:
    def __init__(self, engine: Engine, data_dir: Path, limits: UnpackLimits,
                 redact_local_parts: bool = False) -> None:
        self.engine = engine
        self.store = ReportStore(engine)
        self.redact_local_parts = redact_local_parts
        self.originals = OriginalStore(data_dir)
        self.limits = limits
        # the writer (this process) is busy too: leave it a core
        self.parse_workers = max(1, cores() - 1)

    # -- entry points -------------------------------------------------------------------

    def ingest_path(self, path: Path) -> InputOutcome:
        source = str(path)
        try:
            with open(path, "rb") as stream:
                original = self._keep(stream, source)
        except OSError as exc:
            return InputOutcome(source, None, "failed", f"cannot read {path}: {exc.strerror or exc}",
                                "unreadable_file")
        except LimitExceeded as exc:
            return InputOutcome(source, None, "failed", str(exc), exc.reason)
        return self._process(original, self._unpacked(lambda: open(path, "rb"), source), source)

    def ingest_stream(self, stream: BinaryIO, source: str) -> InputOutcome:
        """Ingest from a one-shot stream (stdin, an upload): it is kept first, then read back."""
        try:
            original = self._keep(stream, source)
        except LimitExceeded as exc:
            return InputOutcome(source, None, "failed", str(exc), exc.reason)
        path = original.storage_path
        return self._process(original, self._unpacked(lambda: self.originals.open(path), source), source)

    def ingest_group(self, inputs: Sequence[tuple[bytes, str]]) -> list[InputOutcome]:
        """Ingest (bytes, source) inputs whose source keeps them until told they are stored
        (a mailbox), with all their writes committed once, at the end (`ReportStore.grouped`).

        Each input is first read without the database (`write_group.prepare`: kept, unpacked,
        small reports parsed), so that the transaction only writes. Every input is still judged
        exactly as by `ingest_stream`, each in a savepoint of its own, so one input's failure
        never touches another's reports. An input `prepare` cannot read whole (a failure or TLS
        report, whose stores open transactions of their own, or a large report) is ingested
        alone after the group.
        A broken store raises: then no outcome is given, and an input whose writes did commit
        (the group, before a later lone input failed) is found again as a duplicate.
        """
        prepared = [prepare(self.originals, self.limits, body, source) for body, source in inputs]
        for attempt in range(1, GROUP_ATTEMPTS + 1):
            try:
                outcomes = self._grouped(prepared)
                break
            except DBAPIError as exc:
                # concurrent groups upsert the same address and daily rows in their own order
                if attempt == GROUP_ATTEMPTS or getattr(exc.orig, "sqlstate", None) != _DEADLOCK:
                    raise
                log.info("write group of %d inputs ended as a deadlock; trying it again", len(inputs))
                time.sleep(random.uniform(0.05, 0.25) * attempt)
        return [outcome if outcome is not None else self.ingest_stream(io.BytesIO(body), source)
                for outcome, (body, source) in zip(outcomes, inputs, strict=True)]

    def _grouped(self, inputs: Sequence[PreparedInput]) -> list[InputOutcome | None]:
        """The write half of a group: only writes, the reading was done by `prepare`."""
        outcomes: list[InputOutcome | None] = []
        with self.store.grouped():
            for prepared in inputs:
                if prepared.alone or prepared.original is None:
                    outcomes.append(None)
                    continue
                with self.store.savepoint():
                    self.store.note_original(prepared.original, prepared.source)
                    outcomes.append(self._process(prepared.original, prepared.replay(), prepared.source))
        return outcomes

    def retry_failed(self) -> Iterator[InputOutcome]:
        """Parse again every input that failed, partly failed, or was interrupted."""
        for original, source in self.store.originals_to_retry():
            opener = partial(self.originals.open, original.storage_path)
            yield self._process(original, self._unpacked(opener, source), source, retry=True)

    # -- one input ------------------------------------------------------------------------

    def _keep(self, stream: BinaryIO, source: str) -> StoredOriginal:
        try:
            original = self.originals.keep(stream, self.limits.max_input_bytes)
        except OverflowError as exc:
            raise LimitExceeded("max_input_bytes", self.limits.max_input_bytes,
                                "the input is larger than allowed; it was not kept") from exc
        self.store.note_original(original, source)
        return original

    def _unpacked(self, opener: Opener, source: str) -> Iterator[Payload | UnpackFailure]:
        return unpack(opener, source, DecompressionBudget(self.limits))

    def _process(self, original: StoredOriginal, items: Iterator[Payload | UnpackFailure], source: str,
                 retry: bool = False) -> InputOutcome:
        """Store what the input holds: its items as `unpack` finds them (or found them, for a
        write group's input, read beforehand by `write_group.prepare`)."""
        outcome = InputOutcome(source, original.sha256, "ok")
        try:
            for item in items:
                if isinstance(item, UnpackFailure):
                    outcome.reports.append(ReportOutcome(item.location, "unknown", "failed",
                                                         error=str(item.error), reason=item.error.reason))
                elif item.kind is ReportKind.AGGREGATE:
                    outcome.reports.append(self._store_aggregate(item, original.sha256))
                elif item.kind is ReportKind.TLS:
                    outcome.reports.append(self._guarded(item, partial(store_tls_report, self.engine),
                                                         original.sha256))
                else:
                    outcome.reports.append(self._guarded(
                        item, partial(store_failure_report, self.engine, self.redact_local_parts),
                        original.sha256))
        except IngestError as exc:
            outcome.error = str(exc)
            outcome.reason = exc.reason
        outcome.status = _input_status(outcome)
        self.store.finish_original(original.sha256, outcome.status, outcome.describe_errors(), {
            "reports_new": outcome.count("new"), "reports_duplicate": outcome.count("duplicate"),
            "reports_failed": outcome.count("failed"), "reports_deferred": outcome.count("deferred"),
        }, retry=retry)
        return outcome

    # -- one failure or TLS report ---------------------------------------------------------

    def _guarded(self, payload: Payload, store: Callable[[Payload, str], ReportOutcome],
                 sha256: str) -> ReportOutcome:
        """Store one report of a kind whose store is a single call, with the aggregate path's
        promises: bad input fails alone, a broken database raises, a bug never loses input."""
        # their stores open transactions of their own: `prepare` keeps such inputs out of groups
        assert not self.store.grouping, "a failure or TLS report inside a write group"
        for attempt in range(2):
            try:
                return store(payload, sha256)
            except IngestError as exc:
                return ReportOutcome(payload.location, str(payload.kind), "failed", error=str(exc),
                                     reason=exc.reason)
            except IntegrityError:
                if attempt:  # a concurrent writer stored the same report: the retry sees it
                    raise
            except SQLAlchemyError:
                raise
            except Exception as exc:
                log.exception("unexpected error parsing %s", payload.location)
                return ReportOutcome(payload.location, str(payload.kind), "failed", reason="internal_error",
                                     error=f"internal error while parsing ({type(exc).__name__}: {exc}); "
                                           "the input is kept and can be retried")
        raise AssertionError("unreachable")

    # -- one aggregate report -------------------------------------------------------------

    def _store_aggregate(self, payload: Payload, sha256: str) -> ReportOutcome:
        for attempt in range(2):
            try:
                return self._store_aggregate_once(payload, sha256)
            except IngestError as exc:
                return ReportOutcome(payload.location, "aggregate", "failed", error=str(exc),
                                     reason=exc.reason)
            except IntegrityError:
                # a concurrent writer won a race the identity lock should have prevented;
                # the second attempt sees its copy and answers duplicate or conflict
                if attempt:
                    raise
            except SQLAlchemyError:
                raise  # the store is unavailable: the caller must keep the input and retry
            except Exception as exc:  # a bug must not stop the service nor lose the input
                log.exception("unexpected error parsing %s", payload.location)
                return ReportOutcome(payload.location, "aggregate", "failed", reason="internal_error",
                                     error=f"internal error while parsing ({type(exc).__name__}: {exc}); "
                                           "the input is kept and can be retried")
        raise AssertionError("unreachable")

    def _store_aggregate_once(self, payload: Payload, sha256: str) -> ReportOutcome:
        mode = ReadMode.AUTO
        while True:
            try:
                return self._store_with(payload, sha256, mode)
            except ReadAgain as again:
                # found out mid-document; the transaction was rolled back: start over
                if again.mode is mode:
                    raise MalformedReport(f"cannot read the document ({again})") from again
                mode = again.mode

    def _store_with(self, payload: Payload, sha256: str, mode: ReadMode) -> ReportOutcome:
        notes = RepairNotes()
        with payload.open() as stream, _gc_paused():
            parsed = payload.parsed if isinstance(payload, ParsedPayload) else None
            source: AggregateSource = (parsed if parsed is not None and parsed.mode is mode
                                       else open_aggregate(stream, mode, self.parse_workers))
            header = normalise_header(source.header(), notes)
            identity = ReportIdentity.of(header)
            batches = _read_ahead(source.batches())
            with self.store.report_transaction(identity) as tx:
                copies = tx.existing_copies()
                if not copies:
                    return self._write(tx, source, batches, header, notes, payload, sha256, None)
                digest = ContentDigest(header_values(header))
                for batch in batches:
                    digest.add(batch.content_sum(), len(batch))
                for report_id, content in copies:
                    if content is None:
                        content = tx.store_digest(report_id)
                    if content == digest.hexdigest():
                        tx.add_origin(report_id, sha256, payload.location)
                        return ReportOutcome(payload.location, "aggregate", "duplicate",
                                             report_id=report_id, records=digest.records)
                # same identity, different content: keep it too, flagged, never merged
                with payload.open() as second_read:
                    source = open_aggregate(second_read, mode, self.parse_workers)
                    fresh_notes = RepairNotes()
                    header = normalise_header(source.header(), fresh_notes)
                    return self._write(tx, source, source.batches(), header, fresh_notes, payload, sha256,
                                       copies[0][0])

    def _write(self, tx: ReportTransaction, source: AggregateSource, batches: Iterator[RecordBatch],
               header: ReportHeader, notes: RepairNotes, payload: Payload, sha256: str,
               conflict_of: int | None) -> ReportOutcome:
        report_id = tx.insert_report(header, sha256, payload.location, conflict_of)
        records = messages = 0
        for batch in batches:
            tx.insert_batch(report_id, batch)
            records += len(batch)
            messages += batch.messages
            notes.merge(batch.notes)
        notes.extend(source.problems)
        notes.extend(payload.notes)
        if not records:
            notes.add("report holds no records")
        if conflict_of is not None:
            notes.add(f"same identity as report {conflict_of} but different content: kept as a "
                      "conflicting copy")
        lines = notes.lines()
        tx.finish_report(report_id, records, messages, lines)
        if conflict_of is None:  # a conflicting copy restates the first: count it once
            tx.add_to_daily_totals(report_id, header)
        return ReportOutcome(payload.location, "aggregate", "new", report_id=report_id,
                             records=records, conflict_of=conflict_of, notes=lines)


def _read_ahead(batches: Iterator[RecordBatch]) -> Iterator[RecordBatch]:
    """The first batch parsed now, before the report's transaction begins.

    On SQLite that transaction holds the database's one write lock, so whatever is parsed
    inside it is parsed while every other writer waits. A report of up to `BATCH_RECORDS`
    records (nearly every report a mailbox receives) is then wholly parsed outside the lock,
    and concurrent ingest workers overlap their parsing instead of taking turns. Larger
    reports go on streaming inside the transaction, one batch at a time, as before.
    """
    first = next(batches, None)
    return batches if first is None else chain((first,), batches)


def _input_status(outcome: InputOutcome) -> str:
    stored = outcome.count("new") + outcome.count("duplicate")
    failed = outcome.count("failed") + (1 if outcome.error else 0)
    deferred = outcome.count("deferred")
    if failed:
        return "partial" if stored or deferred else "failed"
    if not stored and not deferred:
        if not outcome.error:
            outcome.error, outcome.reason = "no report found in the input", "no_report"
        return "failed"
    if not stored:
        return "deferred"
    return "ok"


_gc_lock = threading.Lock()
_gc_holders = 0


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a report is parsed.

    Parsing allocates millions of short-lived, acyclic objects; the generational collector
    would scan them again and again for nothing (about 15% of parse time). Reference
    counting still frees them. Nested and concurrent users are counted.
    """
    global _gc_holders
    with _gc_lock:
        _gc_holders += 1
        if _gc_holders == 1:
            gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0:
                gc.enable()
