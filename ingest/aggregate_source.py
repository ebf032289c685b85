"""Open an aggregate report document with the parser that suits it.

Small documents, and any the parallel parser cannot split safely, are read by the serial
streaming parser; large well-formed ones are split across worker processes; damaged ones the
streaming parser cannot finish are parsed whole. All give the same header, the same batches
of rows and the same problems, so callers do not care which.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO, Protocol

from ingest.aggregate_parser import AggregateParser, WholeDocumentParser
from ingest.aggregate_report import RawReportHeader
from ingest.aggregate_xml import JUNK_NOTE, PROLOG_LIMIT, check_prolog, junk_before_declaration
from ingest.parallel_parser import ParallelAggregateReader, ParallelUnsuitable, cores, pool_ready
from ingest.read_mode import ReadMode
from ingest.record_batch import RecordBatch

PARALLEL_MIN_BYTES = 4 * 1024 * 1024
PARALLEL_COLD_MIN_BYTES = 8 * 1024 * 1024
# a damaged document is parsed whole (about ten times its size in memory) up to this size
WHOLE_DOCUMENT_MAX_BYTES = 16 * 1024 * 1024


class AggregateSource(Protocol):
    problems: list[str]

    def header(self) -> RawReportHeader: ...

    def batches(self) -> Iterator[RecordBatch]: ...


class SerialAggregateSource:
    def __init__(self, stream: BinaryIO, accept_partial: bool = False) -> None:
        self._parser = AggregateParser(stream, accept_partial)
        self.problems = self._parser.problems

    def header(self) -> RawReportHeader:
        return self._parser.header()

    def batches(self) -> Iterator[RecordBatch]:
        return self._parser.batches()


class _Prefixed(io.RawIOBase):
    """Bytes already read, then the rest of the stream."""

    def __init__(self, prefix: bytes, rest: BinaryIO) -> None:
        self._prefix = prefix
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def open_aggregate(stream: BinaryIO, mode: ReadMode = ReadMode.AUTO,
                   workers: int | None = None) -> AggregateSource:
    """The right parser for this document in this mode (see `ReadMode`).

    `workers` defaults to one per core; a caller that does heavy work of its own on the
    batches (the store's writer) should leave a core for it.
    """
    if mode is ReadMode.WHOLE:
        data = _read_up_to(stream, WHOLE_DOCUMENT_MAX_BYTES + 1, b"")
        if len(data) <= WHOLE_DOCUMENT_MAX_BYTES:
            return WholeDocumentParser(data)
        return SerialAggregateSource(_rewound(data, stream), accept_partial=True)
    workers = cores() if workers is None else workers
    if mode is ReadMode.SERIAL or workers < 1 or cores() < 2:
        return SerialAggregateSource(stream)
    block = _read_up_to(stream, PARALLEL_MIN_BYTES, b"")
    if len(block) == PARALLEL_MIN_BYTES and not pool_ready(workers):
        # starting workers takes about a second, which only a big document repays;
        # smaller ones are read serially while the pool starts for the next
        block = _read_up_to(stream, PARALLEL_COLD_MIN_BYTES, block)
        if len(block) < PARALLEL_COLD_MIN_BYTES:
            return SerialAggregateSource(_rewound(block, stream))
    if len(block) < PARALLEL_MIN_BYTES:
        return SerialAggregateSource(_rewound(block, stream))
    prolog = check_prolog(block[:PROLOG_LIMIT])
    start = prolog + block[PROLOG_LIMIT:]
    try:
        reader = ParallelAggregateReader(stream, start, workers)
        if junk_before_declaration(block[:PROLOG_LIMIT], prolog):
            reader.problems.append(JUNK_NOTE)
        return reader
    except ParallelUnsuitable:
        return SerialAggregateSource(_rewound(block, stream))


def _read_up_to(stream: BinaryIO, size: int, block: bytes) -> bytes:
    while len(block) < size:
        more = stream.read(size - len(block))
        if not more:
            break
        block += more
    return block


def _rewound(block: bytes, stream: BinaryIO) -> BinaryIO:
    """The stream as if nothing had been read from it."""
    return io.BufferedReader(_Prefixed(block, stream), buffer_size=256 * 1024)
