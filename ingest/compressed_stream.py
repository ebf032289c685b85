"""Readers that inflate gzip, zlib and raw deflate as streams, inside the input's limits.

Python's `gzip` module rejects the trailing bytes some senders append (Mimecast adds two), and
neither it nor `zipfile` knows about Rua's limits; these readers accept every real stream,
stop a bomb after a bounded amount of work, and turn every library error into an
`IngestError` that says what was wrong.
"""

from __future__ import annotations

import io
import zlib
from enum import Enum
from typing import BinaryIO

from ingest.errors import LimitExceeded, MalformedReport
from ingest.limits import DecompressionBudget

READ_SIZE = 256 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


class Compression(Enum):
    GZIP = 31
    """gzip framing; several members in a row are one stream."""
    ZLIB = 15
    DEFLATE = -15
    """raw deflate, as inside a zip member"""


class InflateReader(io.RawIOBase):
    """A compressed stream inflated on demand, every byte counted against the budget.

    The compression ratio is judged on the compressed bytes actually consumed (not on a
    size declared in a header, which an attacker writes), so a bomb stops within
    `max_compression_ratio` times what was read.
    """

    def __init__(self, source: BinaryIO, compression: Compression, *, budget: DecompressionBudget,
                 notes: list[str], label: str, expected_crc: int | None = None) -> None:
        self._source = source
        self._compression = compression
        self._decompressor = zlib.decompressobj(compression.value)
        self._budget = budget
        self._notes = notes
        self._label = label
        self._expected_crc = expected_crc
        self._crc = 0
        self._pending = b""
        self._compressed = 0
        self._inflated = 0
        self._member_open = True
        self._finished = False

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._source.close()
        super().close()

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        wanted = len(buffer)
        while not self._finished:
            if not self._pending and not self._fill():
                continue
            if not self._member_open:
                self._end_of_member()
                continue
            try:
                out = self._decompressor.decompress(self._pending, wanted)
            except zlib.error as exc:
                raise MalformedReport(f"{self._label}: corrupt compressed data ({exc})") from exc
            self._pending = self._decompressor.unconsumed_tail
            if self._decompressor.eof:
                self._pending = self._decompressor.unused_data + self._pending
                self._member_open = False
            if out:
                n = len(out)
                self._inflated += n
                self._budget.charge_stream(self._label, self._inflated)
                self._budget.check_ratio(self._inflated, self._compressed - len(self._pending))
                if self._expected_crc is not None:
                    self._crc = zlib.crc32(out, self._crc)
                buffer[:n] = out
                return n
        return 0

    def _fill(self) -> bool:
        """Read more compressed input; at its end, decide whether the stream ended cleanly."""
        chunk = self._source.read(READ_SIZE)
        if chunk:
            self._compressed += len(chunk)
            self._pending += chunk
            return True
        if self._member_open:
            raise MalformedReport(
                f"{self._label}: compressed stream is truncated "
                f"(ended after {self._compressed} bytes, {self._inflated} inflated)")
        self._finished = True
        return False

    def _end_of_member(self) -> None:
        """After a stream's end: another gzip member, or trailing bytes to note and skip."""
        gzip = self._compression is Compression.GZIP
        if gzip and len(self._pending) < 2:
            more = self._source.read(READ_SIZE)
            if more:
                self._compressed += len(more)
                self._pending += more
                return
        if gzip and self._pending.startswith(_GZIP_MAGIC):
            self._decompressor = zlib.decompressobj(self._compression.value)
            self._member_open = True
            return
        if self._expected_crc is not None and self._crc != self._expected_crc:
            raise MalformedReport(f"{self._label}: CRC mismatch, the data is damaged")
        trailing = len(self._pending) + _drain(self._source)
        if trailing:
            self._note(f"{self._label}: {trailing} bytes after the end of the compressed stream ignored")
        self._pending = b""
        self._finished = True

    def _note(self, text: str) -> None:
        if text not in self._notes:
            self._notes.append(text)


def _drain(source: BinaryIO, limit: int = 64 * 1024 * 1024) -> int:
    """Count what is left of a stream, up to a bound (trailing junk is never worth more)."""
    total = 0
    while total < limit:
        chunk = source.read(READ_SIZE)
        if not chunk:
            break
        total += len(chunk)
    return total


def buffered(raw: io.RawIOBase) -> BinaryIO:
    """Wrap a raw reader so that parsers get efficient `read(n)` calls."""
    return io.BufferedReader(raw, buffer_size=READ_SIZE)


def read_limited(stream: BinaryIO, limit: int, name: str, what: str) -> bytes:
    """Read a whole (small by nature) stream, refusing one larger than the limit `name`."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise LimitExceeded(name, limit, f"{what} is larger than allowed")
    return data
