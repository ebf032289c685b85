"""Reverse DNS of a source address, confirmed forward, as evidence of who sent the mail.

A PTR record is published by whoever controls the address's reverse zone, and it may name any
host at all: "mail.google.com" from an address nobody at Google uses is a claim, not proof. The
name counts as the address's own only when it resolves back to the address (forward-confirmed
reverse DNS, as SPF's `ptr` mechanism checks it, RFC 7208 §5.5). Both are reported, and the caller
decides how much an unconfirmed name is worth.

Every query goes through a `DnsSource`, so that a run can be recorded, replayed and tested against
a real server, and so that `TtlCache` can spare the network the names asked again and again.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

from ingest.dns_source import DnsAnswer, DnsSource, RecordType, domain_name
from ingest.org_domain import psl_org_domain
from ingest.spf_macro import reverse_name as _spf_reverse_name

ReverseOutcome = Literal["confirmed", "unconfirmed", "no_ptr", "temperror"]
"""- confirmed: a PTR name resolves back to the address;
- unconfirmed: PTR names exist, and every one was asked and none resolves back to the address;
- no_ptr: the reverse zone says there is no PTR record (NXDOMAIN or NODATA);
- temperror: a query failed (SERVFAIL or timeout), on the PTR or on the forward lookups that might
  have confirmed a name: try again later, since a failure says nothing about what exists."""

MAX_PTR_NAMES: Final = 10
"""At most this many PTR names are checked, as SPF does (RFC 7208 §4.6.4): the reverse zone's
owner, not the sender's, chooses how many there are, and each costs a forward query."""
NEGATIVE_TTL: Final = 300.0
FAILURE_TTL: Final = 30.0
MAX_TTL: Final = 86_400.0
MAX_ENTRIES: Final = 100_000
BASE_DOMAINS_KEPT: Final = 1 << 17
_OCTETS: Final = [str(octet) for octet in range(256)]


@dataclass(frozen=True, slots=True)
class ReverseDns:
    """The reverse DNS of one address.

    `ptr` is the confirmed PTR name if there is one, else the first of the PTR names (sorted, so
    that the same records always give the same answer); lower-case, without the final dot.
    `base_domain` is that name's registrable domain by the Public Suffix List, given confirmed or
    not: "mail-wr1-f41.google.com" gives "google.com".
    """

    ip: str
    ptr: str | None
    confirmed: bool
    base_domain: str | None
    outcome: ReverseOutcome


def reverse_name(ip: str) -> str:
    """The name holding the PTR records of `ip`, in in-addr.arpa or ip6.arpa, with no final dot.

    An IPv4-mapped IPv6 address (::ffff:192.0.2.1) is the IPv4 address, whose PTR records are in
    in-addr.arpa. Raises ValueError for anything that is not an IP address.
    """
    return _arpa_name(_address(ip))


def _arpa_name(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if address.version == 4:  # the common case, spelt out: a fifth of the general version's time
        return ".".join(str(octet) for octet in reversed(address.packed)) + ".in-addr.arpa"
    return _spf_reverse_name(address)


def _address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if ":" not in ip:  # the common case, from packed bytes: a tenth of ip_address's parsing time
        try:
            return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, ip))
        except (OSError, TypeError):
            raise ValueError(f"{ip!r} is not an IP address") from None
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            raise ValueError(f"{ip!r} has a zone index, which means nothing outside its own host")
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


def check_reverse(source: DnsSource, ip: str) -> ReverseDns:
    """Look up the PTR names of `ip` and check which resolve back to it (A for an IPv4 address,
    AAAA for IPv6). Raises ValueError if `ip` is not an IP address."""
    address = _address(ip)
    answer = source.lookup(_arpa_name(address), "PTR")
    if answer.failed:
        return ReverseDns(ip, None, False, None, "temperror")
    names = sorted({domain_name(record) for record in answer.records} - {".", ""})[:MAX_PTR_NAMES]
    if not names:
        return ReverseDns(ip, None, False, None, "no_ptr")
    rdtype: RecordType = "A" if address.version == 4 else "AAAA"
    failed = False
    for name in names:
        forward = _forward(source, name, rdtype)
        if forward is None:
            continue
        if forward.failed:
            failed = True
        elif any(_is_address(text, address) for text in forward.records):
            return ReverseDns(ip, name, True, _base_domain(name), "confirmed")
    return ReverseDns(ip, names[0], False, _base_domain(names[0]), "temperror" if failed else "unconfirmed")


def _forward(source: DnsSource, name: str, rdtype: RecordType) -> DnsAnswer | None:
    """None for a name no query can carry (a PTR record can hold one): it has no addresses."""
    try:
        return source.lookup(name, rdtype)
    except ValueError:
        return None


def _is_address(text: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Compared as packed bytes, so any spelling of the same address matches."""
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    try:
        return socket.inet_pton(family, text) == address.packed
    except OSError:
        return False


@lru_cache(maxsize=BASE_DOMAINS_KEPT)
def _base_domain(name: str) -> str | None:
    """None for a single label ("localhost"): it has no registrable domain to speak of.

    Kept per name, as the suffix list's own answers are: checking a PTR name again (the same
    sources identified again while their answers are cached) then costs a dict probe, where
    `psl_org_domain` spends ten times that normalising a name that is normal already."""
    return psl_org_domain(name) if "." in name else None


def check_many(source: DnsSource, ips: Iterable[str], workers: int = 16) -> dict[str, ReverseDns]:
    """Check every distinct address of `ips`, up to `workers` at a time; keyed by the address as
    given. Texts that are not IP addresses are left out, rather than failing the whole batch.

    Concurrency is what makes a batch affordable: each check waits on two or more round trips,
    and each query is bounded by the resolver's own timeout, so a dead reverse zone costs its
    timeout once per address without holding up the others. Each worker takes a run of
    addresses in turn rather than one task per address: from a warm cache a check takes
    microseconds, and a task per address would cost more than the check.
    """
    distinct = list(dict.fromkeys(ips))
    checked: dict[str, ReverseDns] = {}
    pending = []
    if isinstance(source, TtlCache):  # what the cache can answer whole needs no thread
        for ip in distinct:
            try:
                found = check_cached(source, ip)
            except (ValueError, TypeError):
                continue
            if found is None:
                pending.append(ip)
            else:
                checked[ip] = found
    else:
        for ip in distinct:
            try:
                _address(ip)
            except (ValueError, TypeError):
                continue
            pending.append(ip)
    if not pending:
        return checked  # filled in the order given
    checked |= _check_in_threads(source, pending, workers)
    return {ip: checked[ip] for ip in distinct if ip in checked}


def _check_in_threads(source: DnsSource, distinct: list[str], workers: int) -> dict[str, ReverseDns]:
    workers = max(1, min(workers, len(distinct)))
    runs = [distinct[start::workers * 4] for start in range(workers * 4)]  # interleaved: even work
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reverse-dns") as pool:
        return dict(pair for run in pool.map(lambda run: [(ip, check_reverse(source, ip)) for ip in run],
                                             runs) for pair in run)


def check_cached(cache: TtlCache, ip: str) -> ReverseDns | None:
    """`check_reverse` answered from `cache` alone, never asking upstream: None when an answer
    it needs is not cached (or no longer fresh), with the hits up to there counted as such.

    A warm cache answers a whole batch this way, and at that point the check's own bookkeeping
    is the cost: so an IPv4 address, the common case, is checked here without an address
    object, under one lock and one reading of the clock for its two or three look-ups (an entry
    expiring between them would have been fresh a microsecond earlier). Anything else takes
    the general path through a source that refuses to ask. Raises ValueError (or TypeError)
    for what is not an IP address, as `check_reverse` does.
    """
    if ":" in ip:
        try:
            return check_reverse(_CachedOnly(cache), ip)
        except _NotCached:
            return None
    try:
        packed = socket.inet_pton(socket.AF_INET, ip)
    except OSError:
        raise ValueError(f"{ip!r} is not an IP address") from None
    octets = _OCTETS
    arpa = f"{octets[packed[3]]}.{octets[packed[2]]}.{octets[packed[1]]}.{octets[packed[0]]}.in-addr.arpa"
    entries = cache._entries
    with cache._lock:
        now = cache._clock()
        entry = entries.get((arpa, "PTR"))
        if entry is None or now >= entry[0]:
            return None
        cache.hits += 1
        answer = entry[1]
        if answer.failed:
            return ReverseDns(ip, None, False, None, "temperror")
        records = answer.records
        if len(records) == 1:  # nearly always: skip the set and the sort
            names = [name] if (name := domain_name(records[0])) not in (".", "") else []
        else:
            names = sorted({domain_name(record) for record in records} - {".", ""})[:MAX_PTR_NAMES]
        if not names:
            return ReverseDns(ip, None, False, None, "no_ptr")
        failed = False
        for name in names:
            entry = entries.get((domain_name(name), "A"))
            if entry is None or now >= entry[0]:
                return None
            cache.hits += 1
            forward = entry[1]
            if forward.failed:
                failed = True
                continue
            for text in forward.records:
                if _is_packed_ipv4(text, packed):
                    return ReverseDns(ip, name, True, _base_domain(name), "confirmed")
    return ReverseDns(ip, names[0], False, _base_domain(names[0]), "temperror" if failed else "unconfirmed")


def _is_packed_ipv4(text: str, packed: bytes) -> bool:
    try:
        return socket.inet_pton(socket.AF_INET, text) == packed
    except OSError:
        return False


class _NotCached(Exception):
    """Not a ValueError: check_reverse takes those for names no query can carry."""


class _CachedOnly:
    """A DnsSource answering from a TtlCache alone, raising _NotCached where it would have to ask."""

    def __init__(self, cache: TtlCache) -> None:
        self._cache = cache

    def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
        answer = self._cache.cached(name, rdtype)
        if answer is None:
            raise _NotCached(name)
        return answer


class TtlCache:
    """A `DnsSource` that keeps answers for as long as their TTL allows, shared between threads.

    Answers without a TTL (NXDOMAIN and NODATA, whose SOA minimum a resolver does not report) are
    kept `negative_ttl` seconds; SERVFAIL and timeouts only `failure_ttl`, so that a batch does not
    ask a dead server about one name a hundred times, yet the next batch asks again. No answer is
    kept longer than `max_ttl`. When `max_entries` are held, the oldest is dropped.

    An answer is returned as it was received (its TTL is not counted down), so a recording made
    through the cache equals one made without it. Two threads missing the same name at once both
    ask upstream; the names of one batch are nearly all distinct, so that is rare and harmless.
    `hits` and `misses` count lookups answered from the cache and passed on.
    """

    def __init__(self, source: DnsSource, clock: Callable[[], float] = time.monotonic, *,
                 max_entries: int = MAX_ENTRIES, negative_ttl: float = NEGATIVE_TTL,
                 failure_ttl: float = FAILURE_TTL, max_ttl: float = MAX_TTL) -> None:
        if max_entries < 1:
            raise ValueError("a cache needs room for at least one entry")
        self._source = source
        self._clock = clock
        self._max_entries = max_entries
        self._negative_ttl = negative_ttl
        self._failure_ttl = failure_ttl
        self._max_ttl = max_ttl
        self._entries: OrderedDict[tuple[str, RecordType], tuple[float, DnsAnswer]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def cached(self, name: str, rdtype: RecordType) -> DnsAnswer | None:
        """The cached answer, if one is still fresh; never asks upstream."""
        key = (domain_name(name), rdtype)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self._clock() < entry[0]:
                self.hits += 1
                return entry[1]
        return None

    def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
        key = (domain_name(name), rdtype)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                if self._clock() < entry[0]:
                    self.hits += 1
                    return entry[1]
                del self._entries[key]
            self.misses += 1
        answer = self._source.lookup(name, rdtype)  # outside the lock: this is the slow part
        lifetime = min(self._lifetime(answer), self._max_ttl)
        if lifetime > 0:
            with self._lock:
                self._entries.pop(key, None)  # re-inserted at the young end
                self._entries[key] = (self._clock() + lifetime, answer)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
        return answer

    def _lifetime(self, answer: DnsAnswer) -> float:
        if answer.failed:
            return self._failure_ttl
        return self._negative_ttl if answer.ttl is None else float(answer.ttl)
