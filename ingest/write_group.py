"""The read half of a write group: a mailbox input kept, unpacked and parsed before any lock.

`IngestPipeline.ingest_group` writes many small inputs in one transaction. On SQLite that
transaction holds the database's one write lock, so whatever is done inside it is done while
every other writer (another ingest worker, an upload) waits. Everything that needs no
database is therefore done first, here, for each input of the group: its bytes are kept on
disk, its MIME parts and archives unpacked, and each small aggregate report parsed into
memory. The transaction then only writes. An input this cannot prepare whole (one holding a
failure or TLS report, whose stores open transactions of their own, or a large report) is
marked `alone` and is ingested the ordinary way after the group.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field

from ingest.aggregate_report import RawReportHeader
from ingest.aggregate_source import open_aggregate
from ingest.errors import IngestError
from ingest.limits import DecompressionBudget, UnpackLimits
from ingest.original_store import OriginalStore, StoredOriginal
from ingest.read_mode import ReadAgain, ReadMode
from ingest.record_batch import RecordBatch
from ingest.unpack import Opener, Payload, ReportKind, UnpackFailure, unpack

PREPARED_BYTES = 4 * 1024 * 1024
"""Largest report document (inflated) read into memory ahead of its write; larger ones stream."""


@dataclass(slots=True)
class ParsedAggregate:
    """A small aggregate report, parsed whole; an `AggregateSource` that reads from memory."""

    mode: ReadMode
    raw_header: RawReportHeader
    records: tuple[RecordBatch, ...]
    problems: list[str]

    def header(self) -> RawReportHeader:
        return self.raw_header

    def batches(self) -> Iterator[RecordBatch]:
        return iter(self.records)


@dataclass(frozen=True, slots=True)
class ParsedPayload(Payload):
    """A payload held in memory, with its parse when that succeeded in the read half."""

    parsed: ParsedAggregate | None = None


@dataclass(slots=True)
class PreparedInput:
    source: str
    original: StoredOriginal | None = None
    """None when it could not be kept (too large): then it is also `alone`."""
    alone: bool = False
    items: list[Payload | UnpackFailure] = field(default_factory=list)
    error: IngestError | None = None
    """What ended the walk through the input (a limit), raised again where the walk ended."""

    def replay(self) -> Iterator[Payload | UnpackFailure]:
        """The input's items, as `unpack` gave them, ending as its walk ended."""
        yield from self.items
        if self.error is not None:
            raise self.error


def prepare(originals: OriginalStore, limits: UnpackLimits, body: bytes, source: str) -> PreparedInput:
    """Keep one input's bytes and read it as far as can be done without the database."""
    try:
        original = originals.keep(io.BytesIO(body), limits.max_input_bytes)
    except OverflowError:
        return PreparedInput(source, alone=True)  # the ordinary path refuses it, in its words
    prepared = PreparedInput(source, original)
    try:
        for item in unpack(lambda: io.BytesIO(body), source, DecompressionBudget(limits)):
            if isinstance(item, UnpackFailure):
                prepared.items.append(item)
                continue
            if item.kind is not ReportKind.AGGREGATE:
                prepared.alone = True
                return prepared
            try:
                with item.open() as stream:
                    data = stream.read(PREPARED_BYTES + 1)
            except IngestError:  # damage inside one report fails that report only: as it does there
                data = b""
            if not data or len(data) > PREPARED_BYTES:
                prepared.alone = True
                return prepared
            prepared.items.append(ParsedPayload(item.location, item.kind, _opener(data), item.notes,
                                                parsed=parse_small(data)))
    except IngestError as exc:
        prepared.error = exc
    return prepared


def parse_small(data: bytes) -> ParsedAggregate | None:
    """The report parsed whole, or None when it should be read at write time instead: it is
    damaged (the write half reads it again and answers for it in its own words) or it holds
    more than one batch of records."""
    mode = ReadMode.AUTO
    while True:
        try:
            source = open_aggregate(io.BytesIO(data), mode, workers=1)
            header = source.header()
            records: list[RecordBatch] = []
            for batch in source.batches():
                records.append(batch)
                if len(records) > 1:
                    return None
            return ParsedAggregate(mode, header, tuple(records), list(source.problems))
        except ReadAgain as again:
            if again.mode is mode:
                return None
            mode = again.mode
        except Exception:  # whatever it is, the write half meets it again and answers for it
            return None


def _opener(data: bytes) -> Opener:
    return lambda: io.BytesIO(data)
