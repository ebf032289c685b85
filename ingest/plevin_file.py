"""The plevin database file format, read: header, sections, LZMA blocks, columns, strings.

File layout (format 2): `PLEVIN\\0`, a format byte, a little-endian u32 header length and a JSON
header giving each section's offset, count, encoding, block and group sizes and LZMA tuning. A
section is: u32 block count, u32 key width, u32 block offsets (count + 1), the big-endian first
key of each block, then blocks, each raw LZMA1 on its own. Column blocks are a width byte and
little-endian values (signed steps for `delta`, summed from 0 in each block); index blocks are
varints (count, gaps between group heads, group byte lengths, then per group the gaps between
its addresses, in units of 2**64 for IPv6, followed for IPv6 by each address's low 64 bits);
string blocks are front-coded groups of 64.

The file is plain data (a JSON header and LZMA-compressed numbers and text) and is parsed, never
executed or unpickled, so a tampered package could at worst make the answers wrong or the load fail.
"""

from __future__ import annotations

import json
import lzma
import struct
import sys
from array import array
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Final

MAGIC: Final = b"PLEVIN\0"
FORMAT: Final = 2
_LZMA_WINDOW: Final = 1 << 20
_UNSIGNED: Final = {1: "B", 2: "H", 4: "I", 8: "Q"}
_SIGNED: Final = {1: "b", 2: "h", 4: "i", 8: "q"}


@dataclass(frozen=True, slots=True)
class Section:
    entry: dict[str, Any]
    keys: list[int]
    blocks: list[bytes]
    """Still compressed; decompressed on demand by `_block`."""

    @property
    def count(self) -> int:
        return int(self.entry["count"])


class DatabaseFile:
    """The header and raw sections of one database file."""

    def __init__(self, data: bytes) -> None:
        if data[:len(MAGIC)] != MAGIC or data[len(MAGIC)] != FORMAT:
            raise ValueError(f"not a plevin format-{FORMAT} database")
        size = struct.unpack_from("<I", data, len(MAGIC) + 1)[0]
        start = len(MAGIC) + 5
        self.header: dict[str, Any] = json.loads(data[start:start + size])
        self.data = data
        self.body = start + size

    def section(self, name: str) -> Section:
        entry = self.header["sections"].get(name)
        if entry is None:
            raise ValueError(f"the database has no section {name!r}")
        at = self.body + entry["offset"]
        count, width = struct.unpack_from("<II", self.data, at)
        offsets = struct.unpack_from(f"<{count + 1}I", self.data, at + 8)
        at += 8 + 4 * (count + 1)
        keys = [int.from_bytes(self.data[at + i * width:at + (i + 1) * width], "big") for i in range(count)]
        at += width * count
        blocks = [self.data[at + offsets[i]:at + offsets[i + 1]] for i in range(count)]
        return Section(entry, keys, blocks)


def block(section: Section, index: int) -> bytes:
    lc, lp, pb = section.entry["lzma"]
    filters = [{"id": lzma.FILTER_LZMA1, "dict_size": _LZMA_WINDOW, "lc": lc, "lp": lp, "pb": pb}]
    return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters).decompress(section.blocks[index])


def column(section: Section) -> array[int]:
    """A whole column as one flat array.

    Each block picks its own value width, so narrower blocks are widened. For unsigned values
    that is done on the bytes (zero high bytes added by strided slice assignment), which is a
    C-speed copy, where converting through Python ints costs a quarter of a second per million.
    """
    encoding = section.entry["encoding"]
    if encoding in ("delta", "signed"):
        out = array("q")
        for index in range(len(section.blocks)):
            raw = block(section, index)
            values = array(_SIGNED[raw[0]], raw[1:])
            if sys.byteorder == "big":
                values.byteswap()
            out.fromlist(list(accumulate(values)) if encoding == "delta" else values.tolist())
    else:
        raws = [block(section, index) for index in range(len(section.blocks))]
        wide = max((raw[0] for raw in raws), default=1)
        parts = []
        for raw in raws:
            width, body = raw[0], raw[1:]
            if width != wide:
                widened = bytearray(len(body) // width * wide)
                for byte in range(width):  # little-endian: the low bytes come first
                    widened[byte::wide] = body[byte::width]
                body = bytes(widened)
            parts.append(body)
        out = array(_UNSIGNED[wide], b"".join(parts))
    if sys.byteorder == "big":
        out.byteswap()
    if len(out) != section.count:
        raise ValueError(f"a column holds {len(out)} values, its header says {section.count}")
    return out


def exact(values: array[int], width: int) -> bytes:
    """The values as little-endian unsigned integers of exactly `width` bytes."""
    exact = values if values.itemsize == width else array(_UNSIGNED[width], values)
    if sys.byteorder == "big":
        exact = array(exact.typecode, exact)
        exact.byteswap()
    return exact.tobytes()


def varints(data: bytes, at: int, count: int) -> tuple[list[int], int]:
    values: list[int] = []
    append = values.append
    for _ in range(count):
        byte = data[at]
        at += 1
        value, shift = byte & 0x7F, 7
        while byte & 0x80:
            byte = data[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
        append(value)
    return values, at


class StringPool:
    """The text pool: ids are 1-based (0 is the empty string); blocks and groups decoded lazily."""

    def __init__(self, section: Section) -> None:
        self.section = section
        self.per_block = int(section.entry["block"])
        self.per_group = int(section.entry["group"])
        self.block_groups: list[tuple[bytes, list[int]] | None] = [None] * len(section.blocks)
        self.groups: dict[int, list[str]] = {}

    def __getitem__(self, identifier: int) -> str:
        if identifier <= 0:
            return ""
        group, place = divmod(identifier - 1, self.per_group)
        texts = self.groups.get(group)
        if texts is None:
            texts = self.groups[group] = self._decode(group)
        return texts[place]

    def _decode(self, group: int) -> list[str]:
        fanout = self.per_block // self.per_group
        index, at = divmod(group, fanout)
        cached = self.block_groups[index]
        if cached is None:
            raw = block(self.section, index)
            left = self.section.count - index * self.per_block
            groups = min(fanout, -(-left // self.per_group))
            lengths, start = varints(raw, 0, groups - 1)
            cached = self.block_groups[index] = (raw, list(accumulate(lengths, initial=start)))
        raw, starts = cached
        cursor = starts[at]
        size = min(self.per_group, self.section.count - group * self.per_group)
        texts: list[str] = []
        previous = b""
        for _ in range(size):
            shared = raw[cursor]
            (fresh,), cursor = varints(raw, cursor + 1, 1)
            previous = previous[:shared] + raw[cursor:cursor + fresh]
            cursor += fresh
            texts.append(previous.decode("utf-8", "replace"))
        return texts
