"""Forward-confirmed reverse DNS against the real authoritative server the suite starts (NSD),
asked through the project's own `LiveResolver`; the cache's bookkeeping with a fake clock."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from ingest.dns_resolver import LiveResolver
from ingest.dns_source import DnsAnswer, DnsOutcome, RecordType, domain_name
from ingest.reverse_dns import (
    FAILURE_TTL,
    MAX_PTR_NAMES,
    NEGATIVE_TTL,
    ReverseDns,
    TtlCache,
    check_cached,
    check_many,
    check_reverse,
    reverse_name,
)
from tests.dns_server import NsdServer, unreachable_nameserver

V4_ZONE = "2.0.192.in-addr.arpa"
V6_ZONE = "8.b.d.0.1.0.0.2.ip6.arpa"
BROKEN_V4_ZONE = "113.0.203.in-addr.arpa"
"""203.0.113.0/24: a reverse zone no other test serves, made to answer SERVFAIL."""


def resolver(*nameservers: str) -> LiveResolver:
    return LiveResolver(list(nameservers), timeout=0.3, lifetime=0.6)


def owner(ip: str, zone: str) -> str:
    """The owner name of `ip`'s PTR record relative to its reverse zone."""
    return reverse_name(ip).removesuffix("." + zone)


class Counting:
    """Passes queries on, counting them per (name, type) and the most in flight at once."""

    def __init__(self, source, delay: float = 0.0) -> None:
        self.source = source
        self.delay = delay
        self.asked: Counter[tuple[str, str]] = Counter()
        self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()

    def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
        with self._lock:
            self.asked[(domain_name(name), rdtype)] += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            return self.source.lookup(name, rdtype)
        finally:
            with self._lock:
                self.in_flight -= 1


class ByZone:
    """Names in `zone` go to `other`, the rest to `default`: as a recursive resolver would see a
    zone whose own servers are down while the reverse zone answers."""

    def __init__(self, default, zone: str, other) -> None:
        self.default, self.zone, self.other = default, zone, other

    def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
        name = domain_name(name)
        inside = name == self.zone or name.endswith("." + self.zone)
        return (self.other if inside else self.default).lookup(name, rdtype)


@pytest.fixture
def world(nsd: NsdServer) -> Iterator[dict[str, str]]:
    """A forward zone, a forward zone NSD cannot load (SERVFAIL), and the two reverse zones."""
    fwd, broken = nsd.new_zone_name("fwd"), nsd.new_zone_name("broken")
    nsd.set_zone(fwd, [
        "mail IN A 192.0.2.10", "mail IN A 192.0.2.18",
        "liar IN A 192.0.2.99",
        "a IN A 192.0.2.99", "b IN A 192.0.2.14", "c IN A 192.0.2.14",
        "ok IN A 192.0.2.16",
        "v6only IN AAAA 2001:db8::17",
        "classless IN A 192.0.2.20",
        "Mixed.Case IN A 192.0.2.21",
        "mail6 IN AAAA 2001:db8::25", "mail6 IN A 192.0.2.99",
        "v4only IN A 192.0.2.26",
        "liar6 IN AAAA 2001:db8::99",
    ])
    nsd.broken_zone(broken)
    nsd.set_zone(V4_ZONE, [
        f"10 IN PTR mail.{fwd}.",
        f"11 IN PTR liar.{fwd}.",
        f"13 IN PTR ghost.{fwd}.",
        f"14 IN PTR c.{fwd}.", f"14 IN PTR a.{fwd}.", f"14 IN PTR b.{fwd}.",
        f"15 IN PTR host.{broken}.",
        f"16 IN PTR host.{broken}.", f"16 IN PTR ok.{fwd}.",
        f"17 IN PTR v6only.{fwd}.",
        f"18 IN PTR mail.{fwd}.",
        '19 IN TXT "not a PTR"',
        "20 IN CNAME 20.sub", f"20.sub IN PTR classless.{fwd}.",  # RFC 2317 style
        f"21 IN PTR Mixed.Case.{fwd}.",
        "22 IN PTR outside.example.invalid.",
        f"23 IN PTR {fwd}.",
    ])
    nsd.set_zone(V6_ZONE, [
        f"{owner('2001:db8::25', V6_ZONE)} IN PTR mail6.{fwd}.",
        f"{owner('2001:db8::26', V6_ZONE)} IN PTR v4only.{fwd}.",
        f"{owner('2001:db8::27', V6_ZONE)} IN PTR liar6.{fwd}.",
    ])
    nsd.reload()
    yield {"fwd": fwd, "broken": broken}


def check(nsd: NsdServer, ip: str) -> ReverseDns:
    return check_reverse(resolver(nsd.nameserver), ip)


# -- reverse_name ------------------------------------------------------------------------------

def test_reverse_names() -> None:
    assert reverse_name("192.0.2.10") == "10.2.0.192.in-addr.arpa"
    assert reverse_name("::ffff:192.0.2.10") == "10.2.0.192.in-addr.arpa"
    assert reverse_name("2001:db8::1") == "1." + "0." * 23 + "8.b.d.0.1.0.0.2.ip6.arpa"
    assert reverse_name("2001:DB8:0:0:0:0:0:1") == reverse_name("2001:db8::1")
    assert not reverse_name("8.8.8.8").endswith(".")


@pytest.mark.parametrize("bad", ["", "mail.example.com", "192.0.2", "192.0.2.256", "fe80::1%eth0", "::1::"])
def test_reverse_name_refuses_what_is_not_an_address(bad: str) -> None:
    with pytest.raises(ValueError):
        reverse_name(bad)


# -- against the real server -------------------------------------------------------------------

def test_confirmed(nsd: NsdServer, world) -> None:
    fwd = world["fwd"]
    assert check(nsd, "192.0.2.10") == ReverseDns("192.0.2.10", f"mail.{fwd}", True, fwd, "confirmed")
    # the name has two addresses; this one is the second
    assert check(nsd, "192.0.2.18") == ReverseDns("192.0.2.18", f"mail.{fwd}", True, fwd, "confirmed")


def test_unconfirmed_when_the_name_points_elsewhere(nsd: NsdServer, world) -> None:
    fwd = world["fwd"]
    # the PTR name and its base domain are still given: the caller decides what a claim is worth
    assert check(nsd, "192.0.2.11") == ReverseDns("192.0.2.11", f"liar.{fwd}", False, fwd, "unconfirmed")


def test_unconfirmed_when_the_name_does_not_exist(nsd: NsdServer, world) -> None:
    fwd = world["fwd"]
    assert check(nsd, "192.0.2.13") == ReverseDns("192.0.2.13", f"ghost.{fwd}", False, fwd, "unconfirmed")


def test_unconfirmed_when_the_name_has_only_the_other_family(nsd: NsdServer, world) -> None:
    assert check(nsd, "192.0.2.17").outcome == "unconfirmed"  # AAAA only: NODATA for A
    assert check(nsd, "2001:db8::26").outcome == "unconfirmed"  # A only: an IPv6 address needs AAAA


def test_no_ptr(nsd: NsdServer, world) -> None:
    assert check(nsd, "192.0.2.12") == ReverseDns("192.0.2.12", None, False, None, "no_ptr")  # NXDOMAIN
    assert check(nsd, "192.0.2.19") == ReverseDns("192.0.2.19", None, False, None, "no_ptr")  # NODATA


def test_several_names_the_first_confirmed_one_in_order_wins(nsd: NsdServer, world) -> None:
    fwd = world["fwd"]
    # a.<fwd> sorts first but points elsewhere; b and c both confirm, b sorts before c
    for _ in range(3):  # whatever order the server gives the records in
        assert check(nsd, "192.0.2.14") == ReverseDns("192.0.2.14", f"b.{fwd}", True, fwd, "confirmed")


def test_a_confirmed_name_wins_over_a_failed_one(nsd: NsdServer, world) -> None:
    fwd = world["fwd"]
    assert check(nsd, "192.0.2.16") == ReverseDns("192.0.2.16", f"ok.{fwd}", True, fwd, "confirmed")


def test_ptr_through_a_cname_and_names_in_lower_case(nsd: NsdServer, world) -> None:
    fwd = world["fwd"]
    assert check(nsd, "192.0.2.20") == ReverseDns("192.0.2.20", f"classless.{fwd}", True, fwd, "confirmed")
    assert check(nsd, "192.0.2.21") == ReverseDns("192.0.2.21", f"mixed.case.{fwd}", True, fwd, "confirmed")


def test_a_ptr_name_that_is_itself_a_base_domain(nsd: NsdServer, world) -> None:
    fwd = world["fwd"]
    assert check(nsd, "192.0.2.23") == ReverseDns("192.0.2.23", fwd, False, fwd, "unconfirmed")


def test_ipv6(nsd: NsdServer, world) -> None:
    fwd = world["fwd"]
    assert check(nsd, "2001:db8::25") == ReverseDns("2001:db8::25", f"mail6.{fwd}", True, fwd, "confirmed")
    assert check(nsd, "2001:db8::27").outcome == "unconfirmed"
    assert check(nsd, "2001:db8::28") == ReverseDns("2001:db8::28", None, False, None, "no_ptr")


def test_ipv4_mapped_address_is_checked_as_ipv4(nsd: NsdServer, world) -> None:
    fwd = world["fwd"]
    result = check(nsd, "::ffff:192.0.2.10")
    assert result == ReverseDns("::ffff:192.0.2.10", f"mail.{fwd}", True, fwd, "confirmed")


def test_servfail_on_the_forward_lookup_is_temperror(nsd: NsdServer, world) -> None:
    broken = world["broken"]
    # the only name could not be checked: that is not "unconfirmed"
    assert check(nsd, "192.0.2.15") == ReverseDns("192.0.2.15", f"host.{broken}", False, broken, "temperror")
    # a zone the server does not serve at all (REFUSED) is as unknown
    result = check(nsd, "192.0.2.22")
    assert (result.outcome, result.ptr, result.confirmed) == ("temperror", "outside.example.invalid", False)


def test_servfail_on_the_ptr_is_temperror(nsd: NsdServer, world) -> None:
    nsd.broken_zone(BROKEN_V4_ZONE)
    nsd.reload()
    try:
        assert check(nsd, "203.0.113.5") == ReverseDns("203.0.113.5", None, False, None, "temperror")
        # no reverse zone at all on this server: REFUSED, which LiveResolver reports as SERVFAIL
        assert check(nsd, "198.51.100.99").outcome == "temperror"
    finally:
        nsd.remove_zone(BROKEN_V4_ZONE)
        nsd.reload()


def test_timeout_on_the_ptr_is_temperror() -> None:
    silent = LiveResolver([unreachable_nameserver()], timeout=0.2, lifetime=0.4)
    started = time.monotonic()
    assert check_reverse(silent, "192.0.2.10") == ReverseDns("192.0.2.10", None, False, None, "temperror")
    assert time.monotonic() - started < 2


def test_timeout_on_the_forward_lookup_is_temperror(nsd: NsdServer, world) -> None:
    fwd = world["fwd"]
    silent = LiveResolver([unreachable_nameserver()], timeout=0.2, lifetime=0.4)
    source = ByZone(resolver(nsd.nameserver), fwd, silent)
    expected = ReverseDns("192.0.2.10", f"mail.{fwd}", False, fwd, "temperror")
    assert check_reverse(source, "192.0.2.10") == expected
    assert check_reverse(source, "192.0.2.12").outcome == "no_ptr"  # the reverse zone still answers


def test_at_most_ten_names_are_checked(nsd: NsdServer, world) -> None:
    fwd = world["fwd"]
    names = [f"n{index:02d}.{fwd}." for index in range(15)]
    nsd.set_zone(V4_ZONE, [f"30 IN PTR {name}" for name in names])
    nsd.reload()
    source = Counting(resolver(nsd.nameserver))
    assert check_reverse(source, "192.0.2.30").outcome == "unconfirmed"
    forward = sorted(name for name, rdtype in source.asked if rdtype == "A")
    assert forward == [name.removesuffix(".") for name in names[:MAX_PTR_NAMES]]


def test_check_reverse_refuses_a_non_address() -> None:
    with pytest.raises(ValueError):
        check_reverse(Counting(None), "mail.example.com")


# -- check_many --------------------------------------------------------------------------------

def test_check_many_checks_each_distinct_address_once(nsd: NsdServer, world) -> None:
    fwd = world["fwd"]
    hosts = range(100, 200)
    nsd.set_zone(V4_ZONE, [f"{host} IN PTR h{host}.{fwd}." for host in hosts])
    nsd.set_zone(fwd, [f"h{host} IN A 192.0.2.{host}" for host in hosts])
    nsd.reload()
    ips = [f"192.0.2.{host}" for host in hosts]
    source = Counting(resolver(nsd.nameserver), delay=0.005)
    asked = [*ips, *ips[:30], "not an address", "192.0.2.150", "::ffff:192.0.2.100"]

    found = check_many(source, asked, workers=8)

    assert list(found) == [*ips, "::ffff:192.0.2.100"]  # one each, in the order given, garbage left out
    assert all(result.outcome == "confirmed" for result in found.values())
    assert found["192.0.2.150"] == ReverseDns("192.0.2.150", f"h150.{fwd}", True, fwd, "confirmed")
    ptr = {name: count for (name, rdtype), count in source.asked.items() if rdtype == "PTR"}
    assert ptr == {reverse_name(ip): 1 for ip in ips if ip != "192.0.2.100"} | {reverse_name(ips[0]): 2}
    assert 1 < source.most_in_flight <= 8


def test_check_many_through_the_cache_asks_once_per_name(nsd: NsdServer, world) -> None:
    fwd = world["fwd"]
    nsd.set_zone(V4_ZONE, [f"{host} IN PTR h{host}.{fwd}." for host in range(100, 140)])
    nsd.set_zone(fwd, [f"h{host} IN A 192.0.2.{host}" for host in range(100, 140)])
    nsd.reload()
    upstream = Counting(resolver(nsd.nameserver))
    cache = TtlCache(upstream)
    ips = [f"192.0.2.{host}" for host in range(100, 140)] + ["::ffff:192.0.2.100"]

    first = check_many(cache, ips, workers=4)
    second = check_many(cache, ips, workers=4)

    assert first == second and all(result.confirmed for result in first.values())
    assert set(upstream.asked.values()) == {1}  # the mapped address shares the IPv4 answers
    assert cache.misses == len(upstream.asked) == 80
    assert cache.hits == 2 * len(ips) * 2 - 80


def test_check_many_with_nothing_to_do() -> None:
    assert check_many(Counting(None), []) == {}
    assert check_many(Counting(None), ["", "nope"]) == {}


# -- TtlCache ----------------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Table:
    """A DnsSource over a dict, counting what it is asked."""

    def __init__(self, answers: dict[tuple[str, str], DnsAnswer]) -> None:
        self.answers = answers
        self.asked: Counter[tuple[str, str]] = Counter()

    def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
        key = (domain_name(name), rdtype)
        self.asked[key] += 1
        if len(key[0]) > 253:
            raise ValueError("too long")
        return self.answers.get(key) or DnsAnswer(key[0], rdtype, DnsOutcome.NXDOMAIN)


def a(name: str, *addresses: str, ttl: int | None = 60) -> DnsAnswer:
    return DnsAnswer(name, "A", DnsOutcome.ANSWER, addresses, ttl)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_an_answer_is_kept_for_its_ttl(clock: Clock) -> None:
    table = Table({("mail.example.test", "A"): a("mail.example.test", "192.0.2.1", ttl=60)})
    cache = TtlCache(table, clock)
    first = cache.lookup("mail.example.test", "A")
    clock.now += 59.9
    assert cache.lookup("MAIL.Example.TEST.", "A") is first  # any spelling of the name
    assert (cache.hits, cache.misses, table.asked[("mail.example.test", "A")]) == (1, 1, 1)
    clock.now += 0.1
    cache.lookup("mail.example.test", "A")
    assert (cache.hits, cache.misses, table.asked[("mail.example.test", "A")]) == (1, 2, 2)


def test_types_are_kept_apart(clock: Clock) -> None:
    table = Table({("mail.example.test", "A"): a("mail.example.test", "192.0.2.1")})
    cache = TtlCache(table, clock)
    cache.lookup("mail.example.test", "A")
    assert cache.lookup("mail.example.test", "AAAA").outcome is DnsOutcome.NXDOMAIN
    assert cache.misses == 2


def test_ttl_is_capped(clock: Clock) -> None:
    table = Table({("x.test", "A"): a("x.test", "192.0.2.1", ttl=7 * 86400)})
    cache = TtlCache(table, clock, max_ttl=3600)
    cache.lookup("x.test", "A")
    clock.now += 3599
    cache.lookup("x.test", "A")
    clock.now += 1
    cache.lookup("x.test", "A")
    assert table.asked[("x.test", "A")] == 2


def test_zero_ttl_is_not_kept(clock: Clock) -> None:
    table = Table({("x.test", "A"): a("x.test", "192.0.2.1", ttl=0)})
    cache = TtlCache(table, clock)
    cache.lookup("x.test", "A")
    cache.lookup("x.test", "A")
    assert table.asked[("x.test", "A")] == 2 and len(cache) == 0


@pytest.mark.parametrize("outcome", [DnsOutcome.NXDOMAIN, DnsOutcome.NODATA])
def test_negative_answers_are_kept_for_the_negative_ttl(clock: Clock, outcome: DnsOutcome) -> None:
    table = Table({("gone.test", "PTR"): DnsAnswer("gone.test", "PTR", outcome)})
    cache = TtlCache(table, clock)
    assert cache.lookup("gone.test", "PTR").outcome is outcome
    clock.now += NEGATIVE_TTL - 1
    cache.lookup("gone.test", "PTR")
    assert table.asked[("gone.test", "PTR")] == 1
    clock.now += 1
    cache.lookup("gone.test", "PTR")
    assert table.asked[("gone.test", "PTR")] == 2


def test_negative_ttl_is_configurable_and_capped(clock: Clock) -> None:
    table = Table({})
    cache = TtlCache(table, clock, negative_ttl=10)
    cache.lookup("gone.test", "A")
    clock.now += 10
    cache.lookup("gone.test", "A")
    capped = TtlCache(table, clock, negative_ttl=600, max_ttl=5)
    capped.lookup("other.test", "A")
    clock.now += 5
    capped.lookup("other.test", "A")
    assert table.asked == {("gone.test", "A"): 2, ("other.test", "A"): 2}


@pytest.mark.parametrize("outcome", [DnsOutcome.SERVFAIL, DnsOutcome.TIMEOUT])
def test_failures_are_kept_only_briefly(clock: Clock, outcome: DnsOutcome) -> None:
    table = Table({("flaky.test", "A"): DnsAnswer("flaky.test", "A", outcome)})
    cache = TtlCache(table, clock)
    cache.lookup("flaky.test", "A")
    clock.now += FAILURE_TTL - 1
    assert cache.lookup("flaky.test", "A").outcome is outcome
    clock.now += 1
    cache.lookup("flaky.test", "A")
    assert table.asked[("flaky.test", "A")] == 2
    assert FAILURE_TTL < NEGATIVE_TTL


def test_an_answer_without_ttl_counts_as_negative(clock: Clock) -> None:
    # a recorded answer may carry no TTL; it is kept as briefly as a negative one
    table = Table({("x.test", "A"): a("x.test", "192.0.2.1", ttl=None)})
    cache = TtlCache(table, clock, negative_ttl=20)
    cache.lookup("x.test", "A")
    clock.now += 20
    cache.lookup("x.test", "A")
    assert table.asked[("x.test", "A")] == 2


def test_the_oldest_entry_goes_when_full(clock: Clock) -> None:
    names = [f"n{index}.test" for index in range(4)]
    table = Table({(name, "A"): a(name, "192.0.2.1", ttl=300) for name in names})
    cache = TtlCache(table, clock, max_entries=3)
    for name in names:
        cache.lookup(name, "A")
    assert len(cache) == 3
    for name in names[1:]:
        cache.lookup(name, "A")
    assert table.asked[("n0.test", "A")] == 1 and all(table.asked[(n, "A")] == 1 for n in names[1:])
    cache.lookup(names[0], "A")  # dropped: asked again, and now n1 is the oldest
    cache.lookup(names[1], "A")
    assert table.asked[("n0.test", "A")] == 2 and table.asked[("n1.test", "A")] == 2


def test_a_name_dns_cannot_carry_is_refused_and_not_kept(clock: Clock) -> None:
    cache = TtlCache(Table({}), clock)
    with pytest.raises(ValueError):
        cache.lookup("x" * 300, "A")
    assert len(cache) == 0 and cache.misses == 1


def test_cache_needs_room() -> None:
    with pytest.raises(ValueError):
        TtlCache(Table({}), max_entries=0)


def test_cache_is_shared_between_threads(clock: Clock) -> None:
    names = [f"n{index}.test" for index in range(50)]
    table = Table({(name, "A"): a(name, "192.0.2.1", ttl=300) for name in names})
    cache = TtlCache(table, clock, max_entries=40)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for step in range(2000):
                name = names[(seed * 7 + step * 13) % len(names)]
                assert cache.lookup(name, "A").records == ("192.0.2.1",)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert cache.hits + cache.misses == 8 * 2000
    assert cache.misses == sum(table.asked.values())
    assert len(cache) <= 40


# -- check_cached: the warm cache's own path ---------------------------------------------------

def ptr(ip: str, *names: str, outcome: DnsOutcome = DnsOutcome.ANSWER) -> tuple[tuple[str, str], DnsAnswer]:
    name = reverse_name(ip)
    return (name, "PTR"), DnsAnswer(name, "PTR", outcome, names, 600 if names else None)


def forward(name: str, *addresses: str, rdtype: RecordType = "A",
            outcome: DnsOutcome = DnsOutcome.ANSWER) -> tuple[tuple[str, str], DnsAnswer]:
    return (name, rdtype), DnsAnswer(name, rdtype, outcome, addresses, 600 if addresses else None)


MANY_NAMES = [f"n{index:02}.example.test" for index in range(12)]
CASES = dict([
    ptr("192.0.2.1", "Mail.Example.TEST"), forward("mail.example.test", "192.0.2.1"),  # confirmed
    ptr("192.0.2.2", "elsewhere.example.test"), forward("elsewhere.example.test", "192.0.2.99"),
    ptr("192.0.2.3", outcome=DnsOutcome.NXDOMAIN),
    ptr("192.0.2.4", outcome=DnsOutcome.SERVFAIL),
    ptr("192.0.2.5", "broken.example.test"), forward("broken.example.test", outcome=DnsOutcome.TIMEOUT),
    ptr("192.0.2.6", "c.example.test", "a.example.test", "b.example.test"),  # a: no, b: failed, c: yes
    forward("a.example.test", "192.0.2.99"), forward("b.example.test", outcome=DnsOutcome.SERVFAIL),
    forward("c.example.test", "192.0.2.6"),
    ptr("192.0.2.7", "x.example.test", "y.example.test"),  # x failed, y does not exist
    forward("x.example.test", outcome=DnsOutcome.SERVFAIL),
    ptr("192.0.2.8", "."),
    ptr("192.0.2.9", "localhost"), forward("localhost", "192.0.2.9"),
    ptr("192.0.2.10", *MANY_NAMES), forward(MANY_NAMES[-1], "192.0.2.10"),  # past the tenth: not asked
    ptr("192.0.2.11", "spelt.example.test"), forward("spelt.example.test", "not an address", "192.0.2.11"),
    ptr("192.0.2.12", "nodata.example.test"), forward("nodata.example.test", outcome=DnsOutcome.NODATA),
    ptr("192.0.2.13", "v6only.example.test"), forward("v6only.example.test", "192.0.2.13", rdtype="AAAA"),
    ptr("2001:db8::1", "v6.example.test"), forward("v6.example.test", "2001:db8:0::1", rdtype="AAAA"),
])
CASE_IPS = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5", "192.0.2.6", "192.0.2.7",
            "192.0.2.8", "192.0.2.9", "192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13", "192.0.2.14",
            "2001:db8::1", "::ffff:192.0.2.1", "::ffff:192.0.2.6"]


def test_check_cached_gives_what_check_reverse_gives(clock: Clock) -> None:
    """Every outcome, from a warm cache; hits counted as a check through the cache counts them."""
    table = Table(CASES)
    cache = TtlCache(table, clock)
    for ip in CASE_IPS:
        expected = check_reverse(table, ip)
        if not ip.startswith("::ffff:"):  # a mapped address shares its IPv4 address's answers
            assert check_cached(cache, ip) is None  # nothing cached yet
        assert check_reverse(cache, ip) == expected  # now everything it needs is
        hits = cache.hits
        check_reverse(cache, ip)
        per_check = cache.hits - hits
        asked = dict(table.asked)
        assert check_cached(cache, ip) == expected, ip
        assert cache.hits - hits == 2 * per_check and table.asked == asked, ip
    assert check_cached(cache, "192.0.2.10").ptr == MANY_NAMES[0]
    assert check_cached(cache, "192.0.2.6") == ReverseDns("192.0.2.6", "c.example.test", True, "example.test",
                                                          "confirmed")


def test_check_cached_refuses_what_check_reverse_refuses(clock: Clock) -> None:
    cache = TtlCache(Table({}), clock)
    for bad in ["mail.example.com", "", "192.0.2", "192.0.2.256", "01.2.3.4", "fe80::1%eth0"]:
        with pytest.raises(ValueError):
            check_reverse(Counting(None), bad)
        with pytest.raises(ValueError):
            check_cached(cache, bad)


def test_check_cached_is_none_when_an_answer_is_missing_or_stale(clock: Clock) -> None:
    table = Table(CASES)
    cache = TtlCache(table, clock)
    cache.lookup(reverse_name("192.0.2.1"), "PTR")  # the PTR name's address is not cached
    hits = cache.hits
    assert check_cached(cache, "192.0.2.1") is None
    assert cache.hits == hits + 1  # the PTR answer was, as check_reverse through the cache counts it
    check_reverse(cache, "192.0.2.1")
    assert check_cached(cache, "192.0.2.1") is not None
    clock.now += 600
    assert check_cached(cache, "192.0.2.1") is None


def test_check_many_from_a_warm_cache_gives_what_it_gives_without_one(clock: Clock) -> None:
    table = Table(CASES)
    cache = TtlCache(table, clock)
    asked = [*CASE_IPS, "not an address", *reversed(CASE_IPS)]
    uncached = check_many(table, asked, workers=2)
    assert check_many(cache, asked, workers=2) == uncached
    asked_upstream = dict(table.asked)
    warm = check_many(cache, asked, workers=2)
    assert warm == uncached and list(warm) == list(uncached) == CASE_IPS
    assert table.asked == asked_upstream  # nothing asked again
