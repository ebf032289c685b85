"""Who routes an address: AS number, AS name and registry country, offline.

The data is the `plevin-db-network` package (the network build of the plevin database: origin AS
by majority of RIPE RIS peers, AS names from the registries, country of registration). It is a
wheel that only ships one file, so nothing is fetched at run time and the answer for an address
changes only when the package is upgraded; `data_built` says which build answered. The reader of
the plevin project is Apache-2.0; the wheel declares no licence of its own for the data, which the
project says carries its sources' terms (RIPE NCC, CAIDA, PeeringDB CC BY 4.0, the registries'
whois terms). It was chosen over `geoip2fast`, whose bundled GeoLite2 extract (June 2024) has AS
names but no AS numbers, and `pyasn`, which ships no data at all.

The file is read here, not through the `plevin` reader: that reader builds a rich result object
per lookup and manages about 6,000 lookups/s for random addresses, while sender identification
looks up every source address of every report. Only the sections needed are read:

- `spine.v4` / `spine.v6`: the first address of each range, sorted (the ranges cover the space);
- `spine.vN.network`, `.prefix`, `.country`: per range, the AS row (1-based, 0 = none), the
  length of the announced prefix (0 = not announced) and the country code (0 = none);
- `col.network.asn`, `col.network.handle`, `link.network.operator`, `col.operator.company`;
- `strings`: the text pool the `text` columns point into.

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

Address ranges are decoded lazily, one group of 128 at a time, the first time a lookup lands in
the group: decoding all 1.5 million range starts up front is pure-Python varint work costing most
of a second, while a group costs tens of microseconds and is then kept for the process's life.
The same goes for AS names. Every lazily filled slot is written whole by one C-level operation
before it is marked filled, and two threads racing on a slot compute the same value, so under the
GIL no lock is needed.
"""

from __future__ import annotations

import json
import lzma
import socket
import struct
import sys
from array import array
from bisect import bisect_right
from collections.abc import MutableSequence
from dataclasses import dataclass
from functools import cache, partial
from importlib import resources
from itertools import accumulate
from typing import Any, Final, NamedTuple

_MAGIC: Final = b"PLEVIN\0"
_FORMAT: Final = 2
_LZMA_WINDOW: Final = 1 << 20
_V4_MAPPED: Final = b"\x00" * 10 + b"\xff\xff"
_HOST_BITS: Final = 64
"""IPv6 range starts are stored as their network half; the host half follows separately."""
_SLICE_BITS: Final = 16
_OCTETS: Final = [str(octet) for octet in range(256)]
_UNSIGNED: Final = {1: "B", 2: "H", 4: "I", 8: "Q"}
_SIGNED: Final = {1: "b", 2: "h", 4: "i", 8: "q"}

_NOT_GLOBAL_V4: Final = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3",
)
"""IANA special-purpose space (RFC 6890 and successors) that no AS announces to the world: the
database's own rows for it carry registry notes, not an operator, so they are never looked up."""
_NOT_GLOBAL_V6: Final = (
    "::/8", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "2002::/16",
    "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
)
"""As `_NOT_GLOBAL_V4`; 6to4, Teredo and NAT64 addresses are left unanswered rather than mapped
to the IPv4 address inside them, which a sender does not choose and a report never means."""


class NetworkInfo(NamedTuple):
    """What the database says about one address; every field is None when it says nothing.

    `network` is the announced prefix holding the address ("8.8.8.0/24"), None when the address is
    registered but not routed. `country` is the country the address block is registered to (a
    regional code such as "EU" or "AP" where the registry gives no country), not where the host
    stands. `as_name` is the AS's registry handle ("GOOGLE", "CLOUDFLARENET"), or its operator's
    company name where the handle is only the number spelt "AS<n>".
    """

    asn: int | None
    as_name: str | None
    country: str | None
    network: str | None


EMPTY: Final = NetworkInfo(None, None, None, None)
_new_info: Final = partial(tuple.__new__, NetworkInfo)
"""Builds a NetworkInfo without the Python-level `__new__` a NamedTuple call goes through, which
costs a tenth of a lookup."""


@dataclass(frozen=True, slots=True)
class _Section:
    entry: dict[str, Any]
    keys: list[int]
    blocks: list[bytes]
    """Still compressed; decompressed on demand by `_block`."""

    @property
    def count(self) -> int:
        return int(self.entry["count"])


class _File:
    """The header and raw sections of one database file."""

    def __init__(self, data: bytes) -> None:
        if data[:len(_MAGIC)] != _MAGIC or data[len(_MAGIC)] != _FORMAT:
            raise ValueError(f"not a plevin format-{_FORMAT} database")
        size = struct.unpack_from("<I", data, len(_MAGIC) + 1)[0]
        start = len(_MAGIC) + 5
        self.header: dict[str, Any] = json.loads(data[start:start + size])
        self.data = data
        self.body = start + size

    def section(self, name: str) -> _Section:
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
        return _Section(entry, keys, blocks)


def _block(section: _Section, index: int) -> bytes:
    lc, lp, pb = section.entry["lzma"]
    filters = [{"id": lzma.FILTER_LZMA1, "dict_size": _LZMA_WINDOW, "lc": lc, "lp": lp, "pb": pb}]
    return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters).decompress(section.blocks[index])


def _column(section: _Section) -> array[int]:
    """A whole column as one flat array.

    Each block picks its own value width, so narrower blocks are widened. For unsigned values
    that is done on the bytes (zero high bytes added by strided slice assignment), which is a
    C-speed copy, where converting through Python ints costs a quarter of a second per million.
    """
    encoding = section.entry["encoding"]
    if encoding in ("delta", "signed"):
        out = array("q")
        for index in range(len(section.blocks)):
            raw = _block(section, index)
            values = array(_SIGNED[raw[0]], raw[1:])
            if sys.byteorder == "big":
                values.byteswap()
            out.fromlist(list(accumulate(values)) if encoding == "delta" else values.tolist())
    else:
        raws = [_block(section, index) for index in range(len(section.blocks))]
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


def _exact(values: array[int], width: int) -> bytes:
    """The values as little-endian unsigned integers of exactly `width` bytes."""
    exact = values if values.itemsize == width else array(_UNSIGNED[width], values)
    if sys.byteorder == "big":
        exact = array(exact.typecode, exact)
        exact.byteswap()
    return exact.tobytes()


def _varints(data: bytes, at: int, count: int) -> tuple[list[int], int]:
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


class _Family:
    """One address family's ranges and per-range columns.

    The sorted range starts are kept as group heads (every 128th start), decoded at load, and the
    groups themselves, decoded on first use. A lookup finds its group through the slice of the
    address space it is in (bisecting the heads only where a slice spans several groups), then
    bisects within the group.
    """

    def __init__(self, file: _File, version: int) -> None:
        self.bits = 32 if version == 4 else 128
        self.socket_family = socket.AF_INET if version == 4 else socket.AF_INET6
        section = file.section(f"spine.v{version}")
        self.per_group = int(section.entry["group"])
        self.raw: list[bytes] = []
        self.heads: list[int] = []
        self.group_block: list[int] = []
        self.group_start: list[int] = []
        self.group_size: list[int] = []
        self.group_row: list[int] = []
        row = 0
        for index, first in enumerate(section.keys):
            raw = _block(section, index)
            self.raw.append(raw)
            (count,), at = _varints(raw, 0, 1)
            groups = -(-count // self.per_group)
            gaps, at = _varints(raw, at, groups - 1)
            lengths, at = _varints(raw, at, groups - 1)
            self.heads += accumulate(gaps, initial=first)
            self.group_start += accumulate(lengths, initial=at)
            for group in range(groups):
                size = min(self.per_group, count - group * self.per_group)
                self.group_block.append(index)
                self.group_size.append(size)
                self.group_row.append(row)
                row += size
        if row != section.count:
            raise ValueError(f"an index holds {row} addresses, its header says {section.count}")
        self.group_end = [first + size for first, size in zip(self.group_row, self.group_size, strict=True)]
        self.starts: MutableSequence[int] = array("I", bytes(4 * row)) if version == 4 else [0] * row
        """Every range start in order, filled group by group: IPv4 in one flat array, which a
        bisect walks several times faster than a list of int objects spread over the heap."""
        self.decoded = bytearray(len(self.heads))
        self.slice_shift = self.bits - _SLICE_BITS
        if not self.heads or self.heads[0] != 0:
            raise ValueError(f"the IPv{version} ranges do not start at address 0")
        self.slice_group = array("I", bytes(4 * ((1 << _SLICE_BITS) + 1)))
        """For each slice of the space by its top 16 bits, the group holding the slice's first
        address: most slices lie within one group, which then needs no bisect at all."""
        group, last = 0, len(self.heads) - 1
        for top in range(1 << _SLICE_BITS):
            start = top << self.slice_shift
            while group < last and self.heads[group + 1] <= start:
                group += 1
            self.slice_group[top] = group
        self.slice_group[1 << _SLICE_BITS] = last
        network = _column(file.section(f"spine.v{version}.network"))
        prefix = _column(file.section(f"spine.v{version}.prefix"))
        country = _column(file.section(f"spine.v{version}.country"))
        if not len(network) == len(prefix) == len(country) == row:
            raise ValueError(f"the IPv{version} columns do not match its index")
        packed = bytearray(8 * row)  # little-endian u64: link (4 bytes), prefix, country, 0, 0
        packed[0::8], packed[1::8], packed[2::8], packed[3::8] = (
            _exact(network, 4)[byte::4] for byte in range(4))
        packed[4::8] = prefix_bytes = _exact(prefix, 1)
        packed[5::8] = _exact(country, 1)  # a code over 255 raises OverflowError here
        if prefix_bytes.translate(None, bytes(range(self.bits + 1))):
            raise ValueError(f"the IPv{version} prefix lengths go past {self.bits}")
        self.ranges = array("Q", bytes(packed))
        """Per range: AS row link | prefix length << 32 | country code << 40, packed so that a
        lookup touches one place in memory instead of three."""
        if sys.byteorder == "big":
            self.ranges.byteswap()
        self.masks = [((1 << self.bits) - 1) ^ ((1 << (self.bits - length)) - 1)
                      for length in range(self.bits + 1)]
        reserved = _NOT_GLOBAL_V4 if version == 4 else _NOT_GLOBAL_V6
        self.reserved_starts, self.reserved_ends = _span_table(reserved, self.socket_family, self.bits)
        self.reserved_hint = bytearray(1 << _SLICE_BITS)
        """Flags the top-16-bit slices that hold any reserved space, so that most lookups skip
        the bisect over the reserved table."""
        for start, end in zip(self.reserved_starts, self.reserved_ends, strict=True):
            first, last = start >> self.slice_shift, end >> self.slice_shift
            self.reserved_hint[first:last + 1] = b"\x01" * (last - first + 1)

    def decode(self, group: int) -> None:
        raw, size, head = self.raw[self.group_block[group]], self.group_size[group], self.heads[group]
        gaps, at = _varints(raw, self.group_start[group], size - 1)
        if self.bits == 32:
            starts = list(accumulate(gaps, initial=head))
        else:
            hosts, _ = _varints(raw, at, size)
            networks = accumulate(gaps, initial=head >> _HOST_BITS)
            starts = [network << _HOST_BITS | host for network, host in zip(networks, hosts, strict=True)]
        first = self.group_row[group]
        self.starts[first:first + size] = array("I", starts) if self.bits == 32 else starts
        self.decoded[group] = 1  # only once the starts are in place: another thread may be looking


class _Strings:
    """The text pool: ids are 1-based (0 is the empty string); blocks and groups decoded lazily."""

    def __init__(self, section: _Section) -> None:
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
        block = self.block_groups[index]
        if block is None:
            raw = _block(self.section, index)
            left = self.section.count - index * self.per_block
            groups = min(fanout, -(-left // self.per_group))
            lengths, start = _varints(raw, 0, groups - 1)
            block = self.block_groups[index] = (raw, list(accumulate(lengths, initial=start)))
        raw, starts = block
        cursor = starts[at]
        size = min(self.per_group, self.section.count - group * self.per_group)
        texts: list[str] = []
        previous = b""
        for _ in range(size):
            shared = raw[cursor]
            (fresh,), cursor = _varints(raw, cursor + 1, 1)
            previous = previous[:shared] + raw[cursor:cursor + fresh]
            cursor += fresh
            texts.append(previous.decode("utf-8", "replace"))
        return texts


def _span_table(networks: tuple[str, ...], family: int, bits: int) -> tuple[list[int], list[int]]:
    """Sorted, non-overlapping (start, end) pairs of `networks`, for one bisect per lookup."""
    spans = []
    for text in networks:
        base, _, length = text.partition("/")
        start = int.from_bytes(socket.inet_pton(family, base), "big")
        spans.append((start, start + (1 << (bits - int(length))) - 1))
    spans.sort()
    return [start for start, _ in spans], [end for _, end in spans]


class NetworkDb:
    """The database, read once; `lookup` and `lookup_packed` never raise."""

    def __init__(self, data: bytes) -> None:
        file = _File(data)
        self.data_built: str = str(file.header.get("built", ""))
        """The build date of the data ("2026-10-04"), to store beside answers derived from it."""
        codes = file.header["vocabularies"]["countries"]
        self._countries: list[str | None] = [code or None for code in codes][:256]
        self._countries += [None] * (256 - len(self._countries))  # a range's code is one byte
        self._asn = _column(file.section("col.network.asn"))
        self._v4 = _Family(file, 4)
        self._v6 = _Family(file, 6)
        self._handle = _column(file.section("col.network.handle"))
        self._operator = _column(file.section("link.network.operator"))
        self._company = _column(file.section("col.operator.company"))
        self._strings = _Strings(file.section("strings"))
        self._systems: list[tuple[int | None, str | None] | None] = [None] * len(self._asn)

    @classmethod
    def load(cls) -> NetworkDb:
        """Read the file shipped in the `plevin-db-network` package (about 7.5 MB)."""
        path = resources.files("plevin_db_network").joinpath("data", "plevin.network.plv")
        return cls(path.read_bytes())

    def lookup(self, ip: str) -> NetworkInfo:
        """IPv4 or IPv6 text; an IPv4-mapped IPv6 address is answered as its IPv4 address."""
        try:
            return self._find(self._v4, int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big"))
        except (OSError, TypeError, ValueError):
            pass
        try:
            packed = socket.inet_pton(socket.AF_INET6, ip)
        except (OSError, TypeError, ValueError):
            return EMPTY
        if packed[:12] == _V4_MAPPED:
            return self._find(self._v4, int.from_bytes(packed[12:], "big"))
        return self._find(self._v6, int.from_bytes(packed, "big"))

    def lookup_packed(self, packed16: bytes | bytearray | memoryview) -> NetworkInfo:
        """The stored 16-byte form (`source_ip_packed`: IPv4 mapped into IPv6)."""
        if not isinstance(packed16, bytes | bytearray | memoryview) or len(packed16) != 16:
            return EMPTY
        packed = bytes(packed16)
        if packed[:12] == _V4_MAPPED:
            return self._find(self._v4, int.from_bytes(packed[12:], "big"))
        return self._find(self._v6, int.from_bytes(packed, "big"))

    def _find(self, family: _Family, address: int) -> NetworkInfo:
        """The hot path, kept in one function: a call costs as much as a bisect here."""
        top = address >> family.slice_shift
        if family.reserved_hint[top]:
            spot = bisect_right(family.reserved_starts, address) - 1
            if spot >= 0 and address <= family.reserved_ends[spot]:
                return EMPTY
        group, last = family.slice_group[top], family.slice_group[top + 1]
        if group != last:
            group = bisect_right(family.heads, address, group, last + 1) - 1
        if not family.decoded[group]:
            family.decode(group)
        row = bisect_right(family.starts, address, family.group_row[group], family.group_end[group]) - 1
        packed = family.ranges[row]
        prefix = packed >> 32 & 0xFF
        network = None
        if prefix:
            masked = address & family.masks[prefix]
            if family.bits == 32:  # by hand: twice as fast as inet_ntop on the packed bytes
                network = (f"{_OCTETS[masked >> 24]}.{_OCTETS[masked >> 16 & 0xFF]}."
                           f"{_OCTETS[masked >> 8 & 0xFF]}.{_OCTETS[masked & 0xFF]}/{prefix}")
            else:
                network = f"{socket.inet_ntop(socket.AF_INET6, masked.to_bytes(16, 'big'))}/{prefix}"
        link = packed & 0xFFFFFFFF
        if not link:
            return _new_info((None, None, self._countries[packed >> 40], network))
        try:
            system = self._systems[link - 1] or self._system(link - 1)
        except IndexError:  # a link past its table: a damaged file, whose answer is unknown
            system = (None, None)
        return _new_info((system[0], system[1], self._countries[packed >> 40], network))

    def _system(self, row: int) -> tuple[int | None, str | None]:
        asn = self._asn[row] or None
        handle = self._strings[self._handle[row]].strip()
        name = handle
        if not handle or handle.upper() == f"AS{asn}":
            operator = self._operator[row]
            name = (self._strings[self._company[operator - 1]].strip() if operator else "") or handle
        system = self._systems[row] = (asn, name or None)
        return system


@cache
def network_db() -> NetworkDb:
    """The process's one copy: loading takes about half a second and 40 MB (up to 90 MB once
    every range and AS name has been decoded), so it is neither repeated nor done before it is first
    needed. Two threads racing on the first call at worst load two identical copies."""
    return NetworkDb.load()
