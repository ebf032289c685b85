"""Read zip members within the input's limits.

Deflated members, nearly all of them, are inflated by Rua's own reader straight from the
archive bytes: `zipfile` would judge nothing, and only a ratio measured on the compressed
bytes really consumed stops a bomb early. Other methods (stored, bzip2, lzma) go through
`zipfile`, still counted against the input's total.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from typing import BinaryIO

from ingest.compressed_stream import Compression, InflateReader, buffered
from ingest.errors import MalformedReport
from ingest.limits import DecompressionBudget

_LOCAL_HEADER = struct.Struct("<4s22xHH")
_ZIP_ERRORS = (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, OSError, EOFError,
               zlib.error)


def open_member(archive: zipfile.ZipFile, source: BinaryIO, info: zipfile.ZipInfo,
                budget: DecompressionBudget, notes: list[str], label: str) -> BinaryIO:
    """A member's content as a stream; `source` is the (seekable) archive file."""
    if info.compress_type == zipfile.ZIP_DEFLATED:
        start = _data_offset(source, info, label)
        raw = _ByteRange(source, start, info.compress_size)
        return buffered(InflateReader(raw, Compression.DEFLATE, budget=budget,  # type: ignore[arg-type]
                                      notes=notes, label=label, expected_crc=info.CRC))
    return buffered(_LibraryMemberReader(archive, info, budget, label))


def _data_offset(source: BinaryIO, info: zipfile.ZipInfo, label: str) -> int:
    try:
        source.seek(info.header_offset)
        signature, name_length, extra_length = _LOCAL_HEADER.unpack(source.read(_LOCAL_HEADER.size))
    except (OSError, ValueError, struct.error) as exc:  # ValueError: a negative offset
        raise MalformedReport(f"{label}: cannot read the member's local header ({exc})") from exc
    if signature != b"PK\x03\x04":
        raise MalformedReport(f"{label}: the member's local header is damaged")
    return int(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)


class _ByteRange(io.RawIOBase):
    """A window of a seekable file; seeks before every read, as others share the file."""

    def __init__(self, source: BinaryIO, start: int, length: int) -> None:
        self._source = source
        self._position = start
        self._end = start + length

    def readable(self) -> bool:
        return True

    def close(self) -> None:  # the archive file belongs to the caller
        super().close()

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        size = min(len(buffer), self._end - self._position)
        if size <= 0:
            return 0
        self._source.seek(self._position)
        data = self._source.read(size)
        buffer[:len(data)] = data
        self._position += len(data)
        return len(data)


class _LibraryMemberReader(io.RawIOBase):
    """A stored or exotically compressed member, through `zipfile`, counted all the same."""

    def __init__(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo,
                 budget: DecompressionBudget, label: str) -> None:
        self._label = label
        self._budget = budget
        self._compressed = max(info.compress_size, 1)
        self._inflated = 0
        try:
            self._member = archive.open(info)
        except _ZIP_ERRORS as exc:
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
        except _ZIP_ERRORS as exc:
            raise MalformedReport(f"{self._label}: damaged zip member ({exc})") from exc
        n = len(data)
        if n:
            self._inflated += n
            self._budget.charge_stream(self._label, self._inflated)
            self._budget.check_ratio(self._inflated, self._compressed)
            buffer[:n] = data
        return n
