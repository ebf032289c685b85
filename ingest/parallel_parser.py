"""Parse large, well-formed aggregate reports on every core.

A document is split at its `</record>` close tags (found with a byte search, no parsing) into
chunks of a few thousand records; worker processes parse, normalise and turn each chunk into
rows while the caller writes the previous ones. Splitting there is safe: a close tag found
inside a comment, CDATA section or attribute leaves a chunk that is not well-formed, and any
such doubt (`ParallelUnsuitable`) sends the whole document back to the serial parser, which
is the reference. So is every document that needs libxml2's recovery mode.
"""

from __future__ import annotations

import atexit
import ctypes
import multiprocessing
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import BinaryIO
from xml.sax.saxutils import quoteattr

from lxml import etree

from ingest.aggregate_report import RawReportHeader
from ingest.aggregate_xml import (
    PARSER_OPTIONS,
    in_extension,
    local_name,
    read_header_element,
    read_record,
    refuse_doctype,
)
from ingest.errors import IngestError
from ingest.read_mode import ReadAgain, ReadMode
from ingest.record_batch import RecordBatch

CHUNK_BYTES = 1024 * 1024
_READ_BYTES = 1024 * 1024
_RECORD_START = re.compile(rb"<((?:[A-Za-z_][\w.-]*:)?record)[\s>/]")
_DECLARED_ENCODING = re.compile(rb"""\A<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_UTF8_NAMES = {b"utf-8", b"utf8", b"us-ascii", b"ascii"}
_HEADER_TAGS = ("{*}feedback", "{*}report_metadata", "{*}policy_published", "{*}version", "{*}record")


class ParallelUnsuitable(ReadAgain):
    """This document must be read by the serial parser (not an input error)."""

    def __init__(self, reason: str) -> None:
        super().__init__(ReadMode.SERIAL, reason)


def cores() -> int:
    return min(os.cpu_count() or 1, 8)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(**PARSER_OPTIONS)


def _parse_strictly(data: bytes, what: str) -> etree._Element:
    """Parse a piece that must be flawless: any error or warning means "read serially"."""
    parser = _parser()
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ParallelUnsuitable(f"{what} is not well-formed: {exc}") from exc
    if len(parser.error_log):
        raise ParallelUnsuitable(f"{what} has warnings: {parser.error_log[0].message}")
    return root


def parse_chunk(data: bytes, first_position: int, expected: int) -> RecordBatch:
    """In a worker: one wrapped chunk of records to one batch of rows."""
    root = _parse_strictly(data, f"chunk at record {first_position}")
    batch = RecordBatch()
    position = first_position
    for element in root:
        if local_name(element.tag) != "record":
            raise ParallelUnsuitable(f"<{local_name(element.tag)}> between records")
        read_record(element, position, batch)
        position += 1
    if position - first_position != expected:
        raise ParallelUnsuitable("record count of a chunk differs from its close tags")
    del root
    _release_memory()
    return batch


def _release_memory() -> None:
    """Hand freed heap back to the system, so a long-lived worker stays small.

    libxml2 frees a chunk's tree into glibc's heap, which keeps it; without this a worker
    grows by several megabytes per chunk until its arenas settle.
    """
    if _malloc_trim is not None:
        _malloc_trim(0)


try:
    _malloc_trim: Callable[[int], int] | None = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):
    _malloc_trim = None


_pools: dict[int, ProcessPoolExecutor] = {}
_pool_lock = threading.Lock()


_warming: dict[int, list[Future[int]]] = {}


def _get_pool(workers: int) -> ProcessPoolExecutor:
    """A long-lived pool of `workers` processes (spawned: no fork of a threaded parent)."""
    with _pool_lock:
        pool = _pools.get(workers)
        if pool is None:
            if not _pools:
                atexit.register(shutdown_pool)
            pool = _pools[workers] = ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
            # starting a worker takes about a second (a fresh interpreter importing lxml):
            # get them all going now, in the background
            _warming[workers] = [pool.submit(os.getpid) for _ in range(workers)]
        return pool


def pool_ready(workers: int) -> bool:
    """Whether a pool of `workers` is up; if there is none, one starts in the background."""
    _get_pool(workers)
    with _pool_lock:
        return all(future.done() for future in _warming.get(workers, ()))


def shutdown_pool() -> None:
    with _pool_lock:
        pools = list(_pools.values())
        _pools.clear()
        _warming.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


class ParallelAggregateReader:
    """The header read here, the records in worker processes, batches back in order."""

    def __init__(self, stream: BinaryIO, first_block: bytes, workers: int) -> None:
        self._stream = stream
        self._workers = workers
        self.problems: list[str] = []
        declared = _DECLARED_ENCODING.match(first_block)
        if declared and declared.group(1).lower() not in _UTF8_NAMES:
            raise ParallelUnsuitable("declared encoding is not UTF-8")
        if first_block[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise ParallelUnsuitable("UTF-16 document")
        start = _RECORD_START.search(first_block)
        if start is None:
            raise ParallelUnsuitable("no record in the first block")
        self._head = first_block[:start.start()]
        self._buffer = first_block[start.start():]
        qname = start.group(1)
        self._close_tag = b"</" + qname
        self._close = re.compile(re.escape(self._close_tag) + rb"\s*>")
        self._header, nsmap = self._read_head()
        self._wrapper_open = b"<rua-chunk" + b"".join(
            (b" xmlns" if prefix is None else b" xmlns:" + prefix.encode())
            + b"=" + quoteattr(uri).encode() for prefix, uri in nsmap.items()) + b">"

    def header(self) -> RawReportHeader:
        return self._header

    def _read_head(self) -> tuple[RawReportHeader, dict[str | None, str]]:
        parser = etree.XMLPullParser(events=("start", "end"), tag=_HEADER_TAGS, **PARSER_OPTIONS)
        header = RawReportHeader()
        nsmap: dict[str | None, str] | None = None
        try:
            parser.feed(self._head)
            for event, element in parser.read_events():
                assert isinstance(element, etree._Element)
                name = local_name(element.tag)
                if event == "start":
                    if name == "feedback" and nsmap is None:
                        refuse_doctype(element)
                        nsmap = dict(element.nsmap)
                elif name == "record":
                    raise ParallelUnsuitable("a record before the first record start tag")
                elif name != "feedback" and not in_extension(element):
                    read_header_element(element, header)
        except etree.XMLSyntaxError as exc:
            raise ParallelUnsuitable(f"head is not well-formed: {exc}") from exc
        if len(parser.error_log):
            raise ParallelUnsuitable(f"head has warnings: {parser.error_log[0].message}")
        if nsmap is None:
            raise ParallelUnsuitable("no <feedback> before the first record")
        if not {"report_metadata", "policy_published"} <= header.seen:
            raise ParallelUnsuitable("the header is not complete before the first record")
        return header, nsmap

    def _chunks(self) -> Iterator[tuple[bytes, int]]:
        """(chunk of whole records, number of records) until the end of the document.

        Chunks end at the last close tag within `CHUNK_BYTES` (a worker's tree is about ten
        times its chunk), or at the first one after it when a record is longer than that.
        """
        buffer = self._buffer
        self._buffer = b""
        finished = False
        while True:
            while len(buffer) < CHUNK_BYTES and not finished:
                more = self._read()
                finished = not more
                buffer += more
            cut = self._cut(buffer)
            if cut is None:
                if finished:
                    break  # the document's tail
                if len(buffer) > 8 * CHUNK_BYTES:
                    raise ParallelUnsuitable("no </record> within 8 chunks; left to the serial parser")
                more = self._read()
                finished = not more
                buffer += more
                continue
            chunk = buffer[:cut]
            buffer = buffer[cut:]
            yield chunk, len(self._close.findall(chunk))
        self._check_tail(buffer)

    def _read(self) -> bytes:
        try:
            return self._stream.read(_READ_BYTES)
        except IngestError:
            raise
        except (OSError, ValueError, EOFError) as exc:
            raise ParallelUnsuitable(f"read error: {exc}") from exc

    def _cut(self, buffer: bytes) -> int | None:
        position = min(len(buffer), CHUNK_BYTES)
        while (position := buffer.rfind(self._close_tag, 0, position)) >= 0:
            match = self._close.match(buffer, position)
            if match:
                return match.end()
        match = self._close.search(buffer, CHUNK_BYTES)
        return match.end() if match else None

    def _check_tail(self, tail: bytes) -> None:
        """Head and tail together must be a flawless document holding no record and no second
        header: then every record was in a chunk and the envelope is complete."""
        root = _parse_strictly(self._head + tail, "the document around its records")
        counts: dict[str, int] = {}
        for element in root.iter():
            name = local_name(element.tag)
            counts[name] = counts.get(name, 0) + 1
        if counts.get("record") or counts.get("report_metadata", 0) > 1 or counts.get(
                "policy_published", 0) > 1:
            raise ParallelUnsuitable("records or a second header outside the record run")

    def batches(self) -> Iterator[RecordBatch]:
        pool = _get_pool(self._workers)
        pending: deque[Future[RecordBatch]] = deque()
        position = 1
        limit = self._workers + 1  # enough to keep every worker busy, and no more in memory
        warm = pool_ready(self._workers)
        try:
            for chunk, count in self._chunks():
                if count == 0:
                    continue
                data = self._wrapper_open + chunk + b"</rua-chunk>"
                if not warm and not (warm := pool_ready(self._workers)):
                    # the workers are still starting (about a second): work meanwhile
                    yield parse_chunk(data, position, count)
                else:
                    pending.append(pool.submit(parse_chunk, data, position, count))
                position += count
                while len(pending) >= limit:
                    yield self._result(pending.popleft())
            while pending:
                yield self._result(pending.popleft())
        finally:
            for future in pending:
                future.cancel()

    @staticmethod
    def _result(future: Future[RecordBatch]) -> RecordBatch:
        try:
            return future.result()
        except ParallelUnsuitable:
            raise
        except BrokenProcessPool as exc:
            shutdown_pool()
            raise ParallelUnsuitable(f"worker process died: {exc}") from exc
        except Exception as exc:  # anything a worker hit is the serial parser's to judge
            raise ParallelUnsuitable(f"{type(exc).__name__}: {exc}") from exc

