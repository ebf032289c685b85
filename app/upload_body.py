"""Reading an upload's body without ever holding all of it in memory.

The body is counted as it arrives, so an oversized upload is refused once the count passes
the limit instead of after it has filled a disk; it is kept in memory only while small and
spills into a temporary file under the data directory (the same filesystem the pipeline
keeps originals on, which an operator has sized for uploads; /tmp may be a small tmpfs).
Multipart bodies are split afterwards, from that copy, into one spooled file per part.
"""

from __future__ import annotations

import io
import os
import tempfile
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

MEMORY_BYTES = 1024 * 1024
"""Bodies up to this size never touch the disk: most reports are a few kilobytes."""
_READ_CHUNK = 1024 * 1024
MAX_FILENAME_LENGTH = 200
MAX_PARTS = 1000


class BodyTooLarge(Exception):
    """The body passed the size limit; reading stopped there."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is larger than {limit} bytes")
        self.limit = limit


class MalformedMultipart(ValueError):
    """A multipart/form-data body that cannot be split into its parts."""


class SpooledBody:
    """Bytes kept in memory up to `MEMORY_BYTES`, then in a temporary file; `close()` deletes it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.size = 0
        self._memory = bytearray()
        self._file: BinaryIO | None = None

    def stays_in_memory(self, extra: int) -> bool:
        """Whether writing `extra` more bytes touches no disk (so needs no worker thread)."""
        return self._file is None and self.size + extra <= MEMORY_BYTES

    def write(self, data: bytes) -> None:
        if self.stays_in_memory(len(data)):
            self._memory += data
        else:
            if self._file is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(dir=self.directory, suffix=".upload")
                os.unlink(name)  # nothing to clean up after a crash: the file dies with its handle
                self._file = os.fdopen(fd, "w+b")
                self._file.write(self._memory)
                self._memory = bytearray()
            self._file.write(data)
        self.size += len(data)

    def reader(self) -> BinaryIO:
        """A stream of everything written, from the start, for when writing is over.

        One reader at a time: a file-backed one shares the spool's file position.
        """
        if self._file is None:
            return io.BytesIO(self._memory)
        self._file.flush()
        stream = os.fdopen(os.dup(self._file.fileno()), "rb")
        stream.seek(0)
        return stream

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._memory = bytearray()

    def __enter__(self) -> SpooledBody:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


async def receive_body(chunks: AsyncIterator[bytes], limit: int, directory: Path) -> SpooledBody:
    """Spool a request body, raising `BodyTooLarge` as soon as more than `limit` bytes came.

    Disk writes go to a worker thread, in batches, so the event loop never waits on them.
    """
    spool = SpooledBody(directory)
    pending: list[bytes] = []
    pending_bytes = 0
    try:
        async for chunk in chunks:
            if spool.size + pending_bytes + len(chunk) > limit:
                raise BodyTooLarge(limit)
            pending.append(chunk)
            pending_bytes += len(chunk)
            if pending_bytes >= MEMORY_BYTES:
                await run_in_threadpool(spool.write, b"".join(pending))
                pending, pending_bytes = [], 0
        if pending:
            data = b"".join(pending)
            if spool.stays_in_memory(len(data)):
                spool.write(data)
            else:
                await run_in_threadpool(spool.write, data)
    except BaseException:
        spool.close()
        raise
    return spool


# -- names -------------------------------------------------------------------------------------

def clean_filename(raw: str | None) -> str | None:
    """A client's file name made safe to record and show: no directories, no control or
    formatting characters (which could forge log lines or hide text), bounded length."""
    if raw is None:
        return None
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch if not unicodedata.category(ch).startswith("C") else " " for ch in name)
    name = " ".join(name.split())[:MAX_FILENAME_LENGTH]
    return name or None


def disposition_filename(header: str | None) -> str | None:
    """The `filename` parameter of a Content-Disposition header, if any."""
    if not header:
        return None
    _, options = parse_options_header(header)
    value = options.get(b"filename")
    return None if value is None else clean_filename(value.decode("utf-8", "replace"))


def multipart_boundary(content_type: str | None) -> bytes | None:
    """The boundary of a multipart/form-data body; None for any other body.

    Raises `MalformedMultipart` for form data without a boundary.
    """
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        return None
    boundary = options.get(b"boundary")
    if not boundary:
        raise MalformedMultipart("multipart/form-data without a boundary parameter")
    return boundary


# -- multipart ---------------------------------------------------------------------------------

@dataclass
class FilePart:
    """One file of a multipart upload; `filename` is cleaned (None when it was blank)."""

    filename: str | None
    body: SpooledBody


class _PartCollector:
    """The callbacks of python-multipart's streaming parser, keeping file parts only.

    Plain form fields are skipped as they stream past: an upload is its files.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files: list[FilePart] = []
        self.ended = False
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._disposition: bytes | None = None
        self._current: FilePart | None = None
        self._parts = 0

    def part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise MalformedMultipart(f"more than {MAX_PARTS} parts")
        self._disposition = None
        self._current = None

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def header_end(self) -> None:
        if bytes(self._header_field).strip().lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"filename" in options:
            name = clean_filename(options[b"filename"].decode("utf-8", "replace"))
            self._current = FilePart(name, SpooledBody(self.directory))
            self.files.append(self._current)

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current is not None:
            self._current.body.write(data[start:end])

    def part_end(self) -> None:
        current = self._current
        # what a browser sends for a file input left empty: no name, no bytes
        if current is not None and current.filename is None and current.body.size == 0:
            self.files.pop()
        self._current = None

    def end(self) -> None:
        self.ended = True


def split_multipart(body: SpooledBody, boundary: bytes, directory: Path) -> list[FilePart]:
    """Every file part of a multipart/form-data body, in order, each spooled on its own.

    Blocking: run it in a worker thread. Raises `MalformedMultipart` (no part leaks then).
    """
    collector = _PartCollector(directory)
    try:
        parser = MultipartParser(boundary, {
            "on_part_begin": collector.part_begin, "on_part_data": collector.part_data,
            "on_part_end": collector.part_end, "on_header_field": collector.header_field,
            "on_header_value": collector.header_value, "on_header_end": collector.header_end,
            "on_headers_finished": collector.headers_finished, "on_end": collector.end})
        with body.reader() as stream:
            while chunk := stream.read(_READ_CHUNK):
                parser.write(chunk)
        if not collector.ended:
            raise MalformedMultipart("the body ends before the closing boundary")
    except BaseException as exc:
        for part in collector.files:
            part.body.close()
        if isinstance(exc, FormParserError):
            raise MalformedMultipart(str(exc)) from exc
        raise
    return collector.files
