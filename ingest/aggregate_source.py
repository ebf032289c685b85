"""Open an aggregate report document with the parser that suits it.

Small documents, and any the parallel parser cannot split safely, are read by the serial
streaming parser; large well-formed ones are split across worker processes. Both give the
same header, the same batches of rows and the same problems, so callers do not care which.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO, Protocol

from ingest.aggregate_parser import AggregateParser
from ingest.aggregate_report import RawReportHeader
from ingest.aggregate_xml import PROLOG_LIMIT, check_prolog
from ingest.parallel_parser import ParallelAggregateReader, ParallelUnsuitable, cores
from ingest.record_batch import RecordBatch

PARALLEL_MIN_BYTES = 4 * 1024 * 1024


class AggregateSource(Protocol):
    problems: list[str]

    def header(self) -> RawReportHeader: ...

    def batches(self) -> Iterator[RecordBatch]: ...


class SerialAggregateSource:
    def __init__(self, stream: BinaryIO) -> None:
        self._parser = AggregateParser(stream)
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


def open_aggregate(stream: BinaryIO, parallel: bool = True, workers: int | None = None) -> AggregateSource:
    """The right parser for this document; `parallel=False` forces the serial one.

    `workers` defaults to one per core; a caller that does heavy work of its own on the
    batches (the store's writer) should leave a core for it.
    """
    workers = cores() if workers is None else workers
    if not parallel or workers < 1 or cores() < 2:
        return SerialAggregateSource(stream)
    block = b""
    while len(block) < PARALLEL_MIN_BYTES:
        more = stream.read(PARALLEL_MIN_BYTES - len(block))
        if not more:
            break
        block += more
    rest = io.BufferedReader(_Prefixed(block, stream), buffer_size=256 * 1024)
    if len(block) < PARALLEL_MIN_BYTES:
        return SerialAggregateSource(rest)
    start = check_prolog(block[:PROLOG_LIMIT]) + block[PROLOG_LIMIT:]
    try:
        return ParallelAggregateReader(stream, start, workers)
    except ParallelUnsuitable:
        return SerialAggregateSource(rest)
