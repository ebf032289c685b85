"""Our own SPF tests: each mechanism, modifier, macro and limit on small zones, the live
resolver's outcome mapping against a tiny in-process DNS server, and the trace's promise that it
lists every answer an evaluation read. Independent of the shared openspf suite."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import ip_address
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from ingest.dns_resolver import LiveResolver, Nameserver, parse_nameserver, parse_nameservers, query_name
from ingest.dns_source import DnsAnswer, DnsOutcome, RecordType, parse_mx
from ingest.spf_evaluator import (
    MAX_DNS_TERMS,
    SpfResult,
    check_helo,
    check_host,
    check_mail_from,
    default_explanation,
)
from ingest.spf_macro import MacroSyntaxError, MacroValues, expand, parse_macro_string
from ingest.spf_record import SpfSyntaxError, parse_record, select_record
from tests.spf_zone_source import ZoneSource


def spf(record: str, **extra: list[Any]) -> dict[str, list[Any]]:
    return {"example.test": [{"TXT": record}, *extra.get("apex", [])]}


def check(zone: dict[str, list[Any]], ip: str = "192.0.2.10", sender: str = "alice@example.test",
          helo: str = "mail.example.test", **options: Any) -> SpfResult:
    return check_mail_from(ZoneSource(zone), ip, sender, helo, **options)


class RecordingSource:
    """Counts what the evaluator really asked, to hold the result's trace to account."""

    def __init__(self, zone: dict[str, list[Any]]) -> None:
        self.zone = ZoneSource(zone)
        self.asked: list[tuple[str, str]] = []

    def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
        self.asked.append((name, rdtype))
        return self.zone.lookup(name, rdtype)


# -- mechanisms ---------------------------------------------------------------------------

@pytest.mark.parametrize(("record", "ip", "expected"), [
    ("v=spf1 -all", "192.0.2.10", "fail"),
    ("v=spf1 ~all", "192.0.2.10", "softfail"),
    ("v=spf1 ?all", "192.0.2.10", "neutral"),
    ("v=spf1 all", "192.0.2.10", "pass"),
    ("v=spf1", "192.0.2.10", "neutral"),
    ("v=spf1 ip4:192.0.2.0/24 -all", "192.0.2.10", "pass"),
    ("v=spf1 ip4:192.0.2.0/25 -all", "192.0.2.200", "fail"),
    ("v=spf1 ip4:192.0.2.10 -all", "192.0.2.10", "pass"),
    ("v=spf1 ip6:2001:db8::/32 -all", "2001:db8:1::5", "pass"),
    ("v=spf1 ip6:2001:db8::/32 -all", "192.0.2.10", "fail"),
    ("v=spf1 ip4:192.0.2.0/24 -all", "::ffff:192.0.2.10", "pass"),
    ("v=spf1 ip6:::ffff:0:0/96 -all", "::ffff:192.0.2.10", "fail"),
])
def test_all_ip4_ip6(record: str, ip: str, expected: str) -> None:
    assert check(spf(record), ip=ip).result == expected


def test_a_mechanism_with_dual_cidr() -> None:
    zone = {**spf("v=spf1 a:hosts.example.test/24//48 -all"),
            "hosts.example.test": [{"A": "198.51.100.1"}, {"AAAA": "2001:db8:5::1"}]}
    assert check(zone, ip="198.51.100.77").result == "pass"
    assert check(zone, ip="198.51.101.1").result == "fail"
    assert check(zone, ip="2001:db8:5:0:1::9").result == "pass"
    assert check(zone, ip="2001:db8:6::1").result == "fail"


def test_a_without_target_uses_the_current_domain() -> None:
    zone = spf("v=spf1 a -all", apex=[{"A": "192.0.2.10"}])
    result = check(zone)
    assert (result.result, result.mechanism, result.mechanism_domain) == ("pass", "a", "example.test")


def test_mx_mechanism() -> None:
    exchanges = [{"MX": [10, "mx1.example.test"]}, {"MX": [20, "mx2.example.test"]}]
    zone = {**spf("v=spf1 mx -all", apex=exchanges),
            "mx1.example.test": [{"A": "192.0.2.1"}], "mx2.example.test": [{"AAAA": "2001:db8::25"}]}
    assert check(zone, ip="192.0.2.1").result == "pass"
    assert check(zone, ip="2001:db8::25").result == "pass"
    assert check(zone, ip="192.0.2.2").result == "fail"


def test_mx_over_ten_names_is_permerror() -> None:
    mx = [{"MX": [n, f"mx{n}.example.test"]} for n in range(11)]
    assert check(spf("v=spf1 mx -all", apex=mx)).result == "permerror"
    assert check(spf("v=spf1 mx -all", apex=mx[:10])).result == "fail"


def test_null_mx_matches_nothing() -> None:
    assert check(spf("v=spf1 mx ?all", apex=[{"MX": [0, "."]}])).result == "neutral"


def test_mx_address_timeout_is_temperror() -> None:
    zone = {**spf("v=spf1 mx -all", apex=[{"MX": [10, "slow.example.test"]}]),
            "slow.example.test": ["TIMEOUT"]}
    assert check(zone).result == "temperror"


PTR_ZONE = {
    "10.2.0.192.in-addr.arpa": [{"PTR": "Host.Mail.Example.test."}, {"PTR": "liar.example.test"}],
    "host.mail.example.test": [{"A": "192.0.2.10"}],
    "liar.example.test": [{"A": "192.0.2.99"}],
}


@pytest.mark.parametrize(("record", "expected"), [
    ("v=spf1 ptr -all", "pass"),
    ("v=spf1 ptr:mail.example.test -all", "pass"),
    ("v=spf1 ptr:other.test -all", "fail"),
])
def test_ptr_mechanism_needs_a_validated_name(record: str, expected: str) -> None:
    assert check({**spf(record), **PTR_ZONE}).result == expected


def test_ptr_ignores_names_that_do_not_resolve_back() -> None:
    zone = {**spf("v=spf1 ptr:liar.example.test -all"), **PTR_ZONE}
    assert check(zone).result == "fail"


def test_ptr_lookup_failure_is_no_match_not_temperror() -> None:
    zone = {**spf("v=spf1 ptr ?all"), "10.2.0.192.in-addr.arpa": ["TIMEOUT"]}
    assert check(zone).result == "neutral"


def test_ptr_for_ipv6_client() -> None:
    reverse = ".".join(reversed(ip_address("2001:db8::10").exploded.replace(":", ""))) + ".ip6.arpa"
    zone = {**spf("v=spf1 ptr -all"), reverse: [{"PTR": "v6.example.test"}],
            "v6.example.test": [{"AAAA": "2001:db8::10"}]}
    assert check(zone, ip="2001:db8::10").result == "pass"


def test_exists_asks_for_a_records_even_for_ipv6() -> None:
    zone = {**spf("v=spf1 exists:%{ir}.%{v}.allow.example.test -all"),
            "10.2.0.192.in-addr.allow.example.test": [{"A": "127.0.0.2"}]}
    assert check(zone).result == "pass"
    source = RecordingSource(spf("v=spf1 exists:listed.example.test -all"))
    check_mail_from(source, "2001:db8::1", "a@example.test", "h.example.test")
    assert ("listed.example.test", "A") in source.asked


@pytest.mark.parametrize(("included", "expected"), [
    ("v=spf1 +all", "pass"),
    ("v=spf1 -all", "softfail"),
    ("v=spf1 ~all", "softfail"),
    ("v=spf1 ?all", "softfail"),
    ("v=spf1 bogus", "permerror"),
    (None, "permerror"),
])
def test_include_results(included: str | None, expected: str) -> None:
    zone = spf("v=spf1 include:inc.example.test ~all")
    zone["inc.example.test"] = [{"TXT": included}] if included else [{"A": "192.0.2.1"}]
    assert check(zone).result == expected


@pytest.mark.parametrize("failure", ["TIMEOUT", "CNAME-LOOP"])
def test_include_dns_failure_is_temperror(failure: str) -> None:
    zone = spf("v=spf1 include:inc.example.test -all")
    zone["inc.example.test"] = (["TIMEOUT"] if failure == "TIMEOUT"
                                else [{"CNAME": "loop.example.test"}])
    zone["loop.example.test"] = [{"CNAME": "inc.example.test"}]
    assert check(zone).result == "temperror"


# -- records and modifiers --------------------------------------------------------------

@pytest.mark.parametrize("record", [
    "v=spf1 ip4:192.0.2.0/33", "v=spf1 ip4:192.0.2.0/024", "v=spf1 ip4:192.0.2", "v=spf1 ip6:2001:db8::/129",
    "v=spf1 a/24/64", "v=spf1 a:", "v=spf1 a:example", "v=spf1 a:192.0.2.1", "v=spf1 include",
    "v=spf1 exists:x.example.test/24", "v=spf1 ptr/24", "v=spf1 all:x", "v=spf1 foo",
    "v=spf1 redirect=a.test redirect=b.test", "v=spf1 exp=", "v=spf1 1x=y", "v=spf1 x=%y",
    "v=spf1 a:%{c}.example.test", "v=spf1 a:%{d0}.example.test", "v=spf1 a:caf\u00e9.example.test",
])
def test_syntax_errors(record: str) -> None:
    with pytest.raises(SpfSyntaxError):
        parse_record(record)


def test_record_parses_into_terms() -> None:
    record = parse_record("v=spf1  -a:%{d}/24//64 ~mx ip6:2001:DB8::/32 exp=why.%{d} x-note=hi ")
    assert [(m.kind, m.verdict, m.cidr4, m.cidr6) for m in record.mechanisms] == [
        ("a", "fail", 24, 64), ("mx", "softfail", 32, 128), ("ip6", "pass", 32, 128)]
    assert record.explanation is not None and record.explanation.text == "why.%{d}"
    assert record.unknown_modifiers == (("x-note", "hi"),)


def test_record_selection() -> None:
    assert select_record(("hello", "V=SPF1 -all")) == "V=SPF1 -all"
    assert select_record(("v=spf10 -all",)) is None
    with pytest.raises(SpfSyntaxError):
        select_record(("v=spf1 -all", "v=spf1 -all"))


def test_no_record_and_bad_domains_are_none() -> None:
    assert check({"example.test": [{"TXT": "hello"}]}).result == "none"
    assert check({}).result == "none"
    assert check({}, sender="a@single-label").result == "none"
    assert check({}, sender="a@" + "x" * 64 + ".test").result == "none"


def test_initial_lookup_failures_are_temperror() -> None:
    assert check({"example.test": ["TIMEOUT"]}).result == "temperror"
    loop = {"example.test": [{"CNAME": "example.test"}]}
    assert check(loop).result == "temperror"


def test_redirect_is_used_only_when_nothing_matched() -> None:
    zone = {**spf("v=spf1 ip4:203.0.113.1 redirect=other.example.test"),
            "other.example.test": [{"TXT": "v=spf1 ip4:192.0.2.10 -all"}]}
    assert check(zone).result == "pass"
    assert check(zone).mechanism_domain == "other.example.test"
    assert check(zone, ip="203.0.113.1").result == "pass"
    assert check(zone, ip="203.0.113.2").result == "fail"
    assert check(spf("v=spf1 redirect=nowhere.example.test")).result == "permerror"


def test_explanation_comes_from_the_deciding_record() -> None:
    zone = {**spf("v=spf1 -all exp=why.example.test"),
            "why.example.test": [{"TXT": ["%{c} may not send for %{d} ", "(%{l}, seen by %{r} at %{t})"]}]}
    result = check(zone, receiver="mx.receiver.test", timestamp=1700000000)
    assert result.explanation == ("192.0.2.10 may not send for example.test "
                                  "(alice, seen by mx.receiver.test at 1700000000)")
    assert result.explanation_domain == "why.example.test"


def test_explanation_falls_back_to_the_default() -> None:
    for why in (["TIMEOUT"], [{"TXT": "one"}, {"TXT": "two"}], [{"TXT": "bad %{x}"}], [{"A": "192.0.2.1"}]):
        zone = {**spf("v=spf1 -all exp=why.example.test"), "why.example.test": why}
        result = check(zone)
        assert (result.result, result.explanation_domain) == ("fail", None)
        assert result.explanation == default_explanation("example.test", ip_address("192.0.2.10"))


def test_no_explanation_unless_fail() -> None:
    zone = {**spf("v=spf1 ~all exp=why.example.test"), "why.example.test": [{"TXT": "no"}]}
    assert check(zone).explanation is None


def test_helo_identity_and_null_sender() -> None:
    zone = {"mail.example.test": [{"TXT": "v=spf1 a -all"}, {"A": "192.0.2.10"}]}
    assert check_helo(ZoneSource(zone), "192.0.2.10", "mail.example.test").result == "pass"
    assert check(zone, sender="").result == "pass"
    assert check(zone, sender="", helo="[192.0.2.10]").result == "none"


# -- macros -------------------------------------------------------------------------------

def values(**changes: Any) -> MacroValues:
    base = MacroValues(sender="first.last-x+y@mail.example.test", local_part="first.last-x+y",
                       sender_domain="mail.example.test", domain="example.test",
                       ip=ip_address("192.0.2.10"), helo="helo.example.test", receiver="rx.test",
                       timestamp=42, validated_name=lambda domain: f"ptr.{domain}")
    return replace(base, **changes)


@pytest.mark.parametrize(("text", "expected"), [
    ("%{s}", "first.last-x+y@mail.example.test"),
    ("%{l}.%{o}.%{d}.%{h}", "first.last-x+y.mail.example.test.example.test.helo.example.test"),
    ("%{ir}.%{v}.arpa", "10.2.0.192.in-addr.arpa"),
    ("%{d2}", "example.test"),
    ("%{o1r}", "mail"),
    ("%{l-}", "first.last.x+y"),
    ("%{l1r+-}", "first.last"),
    ("%{S}", "first.last-x%2By%40mail.example.test"),
    ("%%%_%-", "% %20"),
    ("%{p}", "ptr.example.test"),
    ("%{d9}", "example.test"),
])
def test_macro_expansion(text: str, expected: str) -> None:
    assert expand(parse_macro_string(text), values()) == expected


def test_ipv6_macros() -> None:
    six = values(ip=ip_address("2001:db8::cb01"))
    assert expand(parse_macro_string("%{ir}.%{v}"), six) == (
        "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6")
    assert expand(parse_macro_string("%{c} %{r} %{t}", explanation=True), six) == "2001:db8::cb01 rx.test 42"


@pytest.mark.parametrize("text", ["%{c}", "%{r}", "%{t}", "%{x}", "%", "%a", "%{d", "%{d0}", "a b"])
def test_macro_syntax_errors(text: str) -> None:
    with pytest.raises(MacroSyntaxError):
        parse_macro_string(text)


def test_long_expansion_loses_labels_on_the_left() -> None:
    local = ".".join(["abcdefghij"] * 30)
    zone = {**spf("v=spf1 exists:%{l}.x.example.test -all"),
            "abcdefghij." * 21 + "x.example.test": [{"A": "127.0.0.2"}]}
    assert check(zone, sender=f"{local}@example.test").result == "pass"


def test_unqueryable_expansion_does_not_match() -> None:
    zone = spf("v=spf1 a:%{l}.example.test ?all")
    assert check(zone, sender=f"{'x' * 64}@example.test").result == "neutral"
    zone = spf("v=spf1 include:%{l}.example.test ?all")
    assert check(zone, sender=f"{'x' * 64}@example.test").result == "permerror"


# -- limits -------------------------------------------------------------------------------

def test_ten_dns_terms_are_allowed_the_eleventh_is_permerror() -> None:
    hosts = {f"h{n}.example.test": [{"A": "198.51.100.1"}] for n in range(11)}
    at_limit = " ".join(f"a:h{n}.example.test" for n in range(MAX_DNS_TERMS))
    assert check({**spf(f"v=spf1 {at_limit} ip4:192.0.2.10"), **hosts}).result == "pass"
    over = check({**spf(f"v=spf1 {at_limit} a:h10.example.test ip4:192.0.2.10"), **hosts})
    assert (over.result, over.dns_terms) == ("permerror", MAX_DNS_TERMS + 1)


def test_includes_and_redirects_share_the_limit() -> None:
    zone = {"example.test": [{"TXT": "v=spf1 include:example.test"}]}
    assert check(zone).result == "permerror"
    zone = {"example.test": [{"TXT": "v=spf1 redirect=example.test"}]}
    assert check(zone).result == "permerror"


def test_two_void_lookups_are_allowed_the_third_is_permerror() -> None:
    two = check(spf("v=spf1 a:n1.example.test mx:n2.example.test ?all"))
    assert (two.result, two.void_lookups) == ("neutral", 2)
    three = check(spf("v=spf1 a:n1.example.test exists:n2.example.test a:n3.example.test ?all"))
    assert three.result == "permerror"


def test_ptr_tries_ten_names_only() -> None:
    names = [{"PTR": f"p{n}.example.test"} for n in range(11)]
    zone = {**spf("v=spf1 ptr:p10.example.test ?all"), "10.2.0.192.in-addr.arpa": names,
            "p10.example.test": [{"A": "192.0.2.10"}]}
    assert check(zone).result == "neutral"


@pytest.mark.parametrize("failure", [DnsOutcome.TIMEOUT, DnsOutcome.SERVFAIL])
def test_mechanism_dns_failure_is_temperror(failure: DnsOutcome) -> None:
    class Failing:
        def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
            if name == "example.test":
                record = "v=spf1 ip4:192.0.2.9 a:x.example.test -all"
                return DnsAnswer(name, rdtype, DnsOutcome.ANSWER, (record,))
            return DnsAnswer(name, rdtype, failure)

    result = check_host(Failing(), "192.0.2.10", "example.test", "a@example.test")
    assert result.result == "temperror"
    assert check_host(Failing(), "192.0.2.9", "example.test", "a@example.test").result == "pass"


def test_time_limit_is_temperror() -> None:
    class Slow(ZoneSource):
        def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
            time.sleep(0.05)
            return super().lookup(name, rdtype)

    hosts = {f"h{n}.example.test": [{"A": "198.51.100.1"}] for n in range(5)}
    zone = {**spf("v=spf1 " + " ".join(f"a:h{n}.example.test" for n in range(5)) + " -all"), **hosts}
    result = check_host(Slow(zone), "192.0.2.10", "example.test", "a@example.test", time_limit=0.12)
    assert result.result == "temperror"


# -- the trace ----------------------------------------------------------------------------

def test_lookups_list_every_query_once_in_order() -> None:
    zone = {**spf("v=spf1 a mx include:inc.example.test a -all exp=why.example.test",
                  apex=[{"MX": [5, "mx.example.test"]}, {"A": "198.51.100.7"}]),
            "inc.example.test": [{"TXT": "v=spf1 exists:%{i}.list.example.test"}],
            "why.example.test": [{"TXT": "no"}], **PTR_ZONE}
    source = RecordingSource(zone)
    result = check_mail_from(source, "192.0.2.10", "a@example.test", "h.example.test")
    assert result.result == "fail"
    assert list(result.names) == source.asked
    assert result.names == (("example.test", "TXT"), ("example.test", "A"), ("example.test", "MX"),
                            ("mx.example.test", "A"), ("inc.example.test", "TXT"),
                            ("192.0.2.10.list.example.test", "A"), ("why.example.test", "TXT"))
    assert result.lookups[0].records == ("v=spf1 a mx include:inc.example.test a -all exp=why.example.test",)


# -- DNS answers and the live resolver -----------------------------------------------------

def test_answer_shape_is_checked() -> None:
    with pytest.raises(ValueError):
        DnsAnswer("x.test", "A", DnsOutcome.ANSWER)
    with pytest.raises(ValueError):
        DnsAnswer("x.test", "A", DnsOutcome.NODATA, ("192.0.2.1",))
    assert parse_mx("10 mail.example.test") == (10, "mail.example.test")


@pytest.mark.parametrize(("text", "expected"), [
    ("192.0.2.53", [Nameserver("192.0.2.53", 53)]),
    (" 127.0.0.1:5353 , [::1]:5300,, ::1 ", [Nameserver("127.0.0.1", 5353), Nameserver("::1", 5300),
                                             Nameserver("::1", 53)]),
    ("[2001:db8::53]", [Nameserver("2001:db8::53", 53)]),
    ("", []),
])
def test_parse_nameservers(text: str, expected: list[Nameserver]) -> None:
    assert parse_nameservers(text) == expected


@pytest.mark.parametrize("text", ["ns.example.test", "127.0.0.1:0", "127.0.0.1:99999", "[::1]53", "[::1",
                                  "1.2.3.4:x"])
def test_parse_nameserver_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_nameserver(text)


def test_query_name_keeps_odd_labels_and_rejects_impossible_ones() -> None:
    assert query_name("a b%20c:d/e.Example.test.").labels[:3] == (b"a b%20c:d/e", b"example", b"test")
    for bad in ("x" * 64 + ".test", "a..test"):
        with pytest.raises(ValueError):
            query_name(bad)


SERVED = {
    ("example.test", "TXT"): ['"v=spf1 ip4:192.0.2.0/24 " "mx -all"', '"other"'],
    ("example.test", "MX"): ["10 mail.example.test.", "0 ."],
    ("mail.example.test", "A"): ["192.0.2.25"],
    ("mail.example.test", "AAAA"): ["2001:db8:0:0::25"],
    ("25.2.0.192.in-addr.arpa", "PTR"): ["Mail.Example.test."],
}
ALIASES = {"alias.example.test": "mail.example.test"}


class TinyDnsServer:
    """An authoritative UDP server on loopback, built from dnspython's message classes, that
    answers SERVED, NODATA for known names, NXDOMAIN otherwise, and misbehaves on request:
    servfail.* → SERVFAIL, refused.* → REFUSED, silent.* → no reply at all."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.1)
        self.port = self.socket.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.names = {name for name, _ in SERVED} | set(ALIASES)

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                wire, client = self.socket.recvfrom(4096)
            except TimeoutError:
                continue
            reply = self._reply(dns.message.from_wire(wire))
            if reply is not None:
                self.socket.sendto(reply.to_wire(), client)

    def _reply(self, query: dns.message.Message) -> dns.message.Message | None:
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        if name.startswith("silent."):
            return None
        if name.startswith(("servfail.", "refused.")):
            reply.set_rcode(dns.rcode.SERVFAIL if name.startswith("servfail.") else dns.rcode.REFUSED)
            return reply
        if name in ALIASES:
            reply.answer.append(dns.rrset.from_text(question.name, 300, "IN", "CNAME", ALIASES[name] + "."))
            name = ALIASES[name]
        if (name, rdtype) in SERVED:
            reply.answer.append(dns.rrset.from_text(name + ".", 300, "IN", rdtype, *SERVED[(name, rdtype)]))
        elif name not in self.names:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        return reply

    def __enter__(self) -> TinyDnsServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join()
        self.socket.close()


@pytest.fixture(scope="module")
def live() -> Iterator[LiveResolver]:
    with TinyDnsServer() as server:
        yield LiveResolver([f"127.0.0.1:{server.port}"], timeout=0.3, lifetime=0.6)


@pytest.mark.parametrize(("name", "rdtype", "outcome", "records"), [
    ("example.test", "TXT", DnsOutcome.ANSWER, ("v=spf1 ip4:192.0.2.0/24 mx -all", "other")),
    ("Example.Test.", "MX", DnsOutcome.ANSWER, ("10 mail.example.test", "0 .")),
    ("mail.example.test", "A", DnsOutcome.ANSWER, ("192.0.2.25",)),
    ("mail.example.test", "AAAA", DnsOutcome.ANSWER, ("2001:db8::25",)),
    ("alias.example.test", "A", DnsOutcome.ANSWER, ("192.0.2.25",)),
    ("25.2.0.192.in-addr.arpa", "PTR", DnsOutcome.ANSWER, ("Mail.Example.test",)),
    ("mail.example.test", "TXT", DnsOutcome.NODATA, ()),
    ("nothing.example.test", "A", DnsOutcome.NXDOMAIN, ()),
    ("servfail.example.test", "A", DnsOutcome.SERVFAIL, ()),
    ("refused.example.test", "TXT", DnsOutcome.SERVFAIL, ()),
    ("silent.example.test", "TXT", DnsOutcome.TIMEOUT, ()),
])
def test_live_resolver_outcomes(live: LiveResolver, name: str, rdtype: RecordType, outcome: DnsOutcome,
                                records: tuple[str, ...]) -> None:
    answer = live.lookup(name, rdtype)
    assert (answer.name, answer.rdtype, answer.outcome) == (name.lower().rstrip("."), rdtype, outcome)
    assert sorted(answer.records) == sorted(records)
    assert answer.ttl == (300 if records else None)


def test_check_host_over_the_live_resolver(live: LiveResolver) -> None:
    assert check_mail_from(live, "192.0.2.99", "a@example.test", "h.test").result == "pass"
    assert check_mail_from(live, "2001:db8::25", "a@example.test", "h.test").result == "pass"
    failed = check_mail_from(live, "198.51.100.1", "a@example.test", "h.test")
    assert failed.result == "fail"
    assert failed.explanation == default_explanation("example.test", ip_address("198.51.100.1"))
    assert check_mail_from(live, "192.0.2.1", "a@silent.example.test", "h.test").result == "temperror"
    assert check_mail_from(live, "192.0.2.1", "a@nothing.example.test", "h.test").result == "none"
