"""Readers that inflate gzip, zlib and zip members as streams, inside the input's limits.

Python's `gzip` module rejects the trailing bytes some senders append (Mimecast adds two), and
neither it nor `zipfile` knows about Rua's limits; these readers accept every real stream,
stop a bomb after a bounded amount of work, and turn every library error into an
`IngestError` that says what was wrong.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from typing import BinaryIO

from ingest.errors import LimitExceeded, MalformedReport
from ingest.limits import DecompressionBudget

_READ_SIZE = 256 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


class InflateReader(io.RawIOBase):
    """A gzip (every member, trailing junk noted) or raw zlib stream, inflated on demand."""

    def __init__(self, source: BinaryIO, *, gzip: bool, budget: DecompressionBudget,
                 notes: list[str], label: str) -> None:
        self._source = source
        self._gzip = gzip
        self._wbits = 31 if gzip else 15
        self._decompressor = zlib.decompressobj(self._wbits)
        self._budget = budget
        self._notes = notes
        self._label = label
        self._pending = b""
        self._compressed = 0
        self._inflated = 0
        self._member_open = True
        self._members = 1
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
                self._start_next_member()
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
                self._budget.charge_bytes(n)
                self._budget.check_ratio(self._inflated, self._compressed)
                buffer[:n] = out
                return n
        return 0

    def _fill(self) -> bool:
        """Read more compressed input; at its end, decide whether the stream ended cleanly."""
        chunk = self._source.read(_READ_SIZE)
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

    def _start_next_member(self) -> None:
        """Between gzip members: another member, zero padding, or trailing junk."""
        if self._gzip and len(self._pending) < 2:
            more = self._source.read(_READ_SIZE)
            if more:
                self._compressed += len(more)
                self._pending += more
                return
        if self._gzip and self._pending.startswith(_GZIP_MAGIC):
            self._decompressor = zlib.decompressobj(self._wbits)
            self._member_open = True
            self._members += 1
            return
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
        chunk = source.read(_READ_SIZE)
        if not chunk:
            break
        total += len(chunk)
    return total


class ZipMemberReader(io.RawIOBase):
    """One zip member, counted against the input's budget and its own compression ratio."""

    def __init__(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo,
                 budget: DecompressionBudget, label: str) -> None:
        self._label = label
        self._budget = budget
        self._compressed = max(info.compress_size, 1)
        self._inflated = 0
        try:
            self._member = archive.open(info)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, OSError,
                EOFError, zlib.error) as exc:
            raise MalformedReport(f"{label}: cannot open zip member ({exc})") from exc

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._member.close()
        super().close()

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        try:
            data = self._member.read(len(buffer))
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, OSError,
                EOFError, zlib.error) as exc:
            raise MalformedReport(f"{self._label}: damaged zip member ({exc})") from exc
        n = len(data)
        if n:
            self._inflated += n
            self._budget.charge_bytes(n)
            self._budget.check_ratio(self._inflated, self._compressed)
            buffer[:n] = data
        return n


def buffered(raw: io.RawIOBase) -> BinaryIO:
    """Wrap a raw reader so that parsers get efficient `read(n)` calls."""
    return io.BufferedReader(raw, buffer_size=_READ_SIZE)


def read_limited(stream: BinaryIO, limit: int, name: str, what: str) -> bytes:
    """Read a whole (small by nature) stream, refusing one larger than the limit `name`."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise LimitExceeded(name, limit, f"{what} is larger than allowed")
    return data

