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

The file format itself is read by ingest.plevin_file.

Address ranges are decoded lazily, one group of 128 at a time, the first time a lookup lands in
the group: decoding all 1.5 million range starts up front is pure-Python varint work costing most
of a second, while a group costs tens of microseconds and is then kept for the process's life.
The same goes for AS names. Every lazily filled slot is written whole by one C-level operation
before it is marked filled, and two threads racing on a slot compute the same value, so under the
GIL no lock is needed.
"""

from __future__ import annotations

import socket
import sys
from array import array
from bisect import bisect_right
from collections.abc import MutableSequence
from functools import cache, partial
from importlib import resources
from itertools import accumulate
from typing import Final, NamedTuple

from ingest.plevin_file import DatabaseFile, StringPool, block, column, exact, varints

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


class _Family:
    """One address family's ranges and per-range columns.

    The sorted range starts are kept as group heads (every 128th start), decoded at load, and the
    groups themselves, decoded on first use. A lookup finds its group through the slice of the
    address space it is in (bisecting the heads only where a slice spans several groups), then
    bisects within the group.
    """

    def __init__(self, file: DatabaseFile, version: int) -> None:
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
            raw = block(section, index)
            self.raw.append(raw)
            (count,), at = varints(raw, 0, 1)
            groups = -(-count // self.per_group)
            gaps, at = varints(raw, at, groups - 1)
            lengths, at = varints(raw, at, groups - 1)
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
        network = column(file.section(f"spine.v{version}.network"))
        prefix = column(file.section(f"spine.v{version}.prefix"))
        country = column(file.section(f"spine.v{version}.country"))
        if not len(network) == len(prefix) == len(country) == row:
            raise ValueError(f"the IPv{version} columns do not match its index")
        packed = bytearray(8 * row)  # little-endian u64: link (4 bytes), prefix, country, 0, 0
        packed[0::8], packed[1::8], packed[2::8], packed[3::8] = (
            exact(network, 4)[byte::4] for byte in range(4))
        packed[4::8] = prefix_bytes = exact(prefix, 1)
        packed[5::8] = exact(country, 1)  # a code over 255 raises OverflowError here
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
        gaps, at = varints(raw, self.group_start[group], size - 1)
        if self.bits == 32:
            starts = list(accumulate(gaps, initial=head))
        else:
            hosts, _ = varints(raw, at, size)
            networks = accumulate(gaps, initial=head >> _HOST_BITS)
            starts = [network << _HOST_BITS | host for network, host in zip(networks, hosts, strict=True)]
        first = self.group_row[group]
        self.starts[first:first + size] = array("I", starts) if self.bits == 32 else starts
        self.decoded[group] = 1  # only once the starts are in place: another thread may be looking


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
        file = DatabaseFile(data)
        self.data_built: str = str(file.header.get("built", ""))
        """The build date of the data ("2026-10-04"), to store beside answers derived from it."""
        codes = file.header["vocabularies"]["countries"]
        self._countries: list[str | None] = [code or None for code in codes][:256]
        self._countries += [None] * (256 - len(self._countries))  # a range's code is one byte
        self._asn = column(file.section("col.network.asn"))
        self._v4 = _Family(file, 4)
        self._v6 = _Family(file, 6)
        self._handle = column(file.section("col.network.handle"))
        self._operator = column(file.section("link.network.operator"))
        self._company = column(file.section("col.operator.company"))
        self._strings = StringPool(file.section("strings"))
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
