"""Compiled SPF trees give exactly check_host's result, or decline to compile.

Checked over every scenario of the openspf RFC 7208 suite (each case's address, plus a spread
of others against the same zone) and over hand-made trees whose order matters.
"""

from __future__ import annotations

from ipaddress import ip_address

import pytest
import yaml

from ingest.dns_source import DnsAnswer, DnsOutcome
from ingest.spf_compiled import client_number, compile_spf
from ingest.spf_evaluator import check_host, client_address
from tests.spf_zone_source import ZoneSource
from tests.test_spf_suite import suite_path

PROBES = ["192.0.2.1", "192.0.2.3", "192.0.2.200", "1.2.3.4", "1.2.3.5", "10.0.0.1", "127.0.0.1",
          "2001:db8::1", "2001:db8::3", "::ffff:1.2.3.4", "198.51.100.7"]


def agree(zone, domain: str, ip: str) -> bool | None:
    """True when the compiled tree and check_host agree; None when it did not compile."""
    address = client_address(ip)
    compiled = compile_spf(domain, zone, address.version)
    if compiled is None:
        return None
    expected = check_host(zone, address, domain, f"postmaster@{domain}").result
    assert client_number(ip) == (address.version, int(address))
    assert compiled.result(*client_number(ip)) == expected, (domain, ip, expected)
    return True


def test_the_openspf_suite():
    path = suite_path()
    if not path.is_file():
        pytest.skip(f"the openspf RFC 7208 suite is not at {path} (set RUA_SPF_SUITE)")
    compiled = declined = 0
    with path.open(encoding="utf-8") as stream:
        for scenario in yaml.safe_load_all(stream):
            zone = ZoneSource(scenario["zonedata"])
            for test in scenario["tests"].values():
                domain = (test["mailfrom"].rpartition("@")[2] or test["helo"]).lower()
                for ip in [test["host"], *PROBES]:
                    outcome = agree(zone, domain, ip)
                    compiled += outcome is True
                    declined += outcome is None
    assert compiled > 500 and declined > 0  # both paths are exercised


class Zone:
    def __init__(self, **records: dict[str, tuple[str, ...] | str]) -> None:
        self.records = records

    def lookup(self, name: str, rdtype: str) -> DnsAnswer:
        entry = self.records.get(name.replace(".", "_"), {}).get(rdtype)  # type: ignore[union-attr]
        if entry is None:
            return DnsAnswer(name, rdtype, DnsOutcome.NXDOMAIN)  # type: ignore[arg-type]
        if entry in ("timeout", "servfail"):
            return DnsAnswer(name, rdtype, DnsOutcome(entry))  # type: ignore[arg-type]
        return DnsAnswer(name, rdtype, DnsOutcome.ANSWER, tuple(entry))  # type: ignore[arg-type]


ZONE = Zone(
    example_com={"TXT": ("v=spf1 ip4:192.0.2.0/28 mx include:esp.test include:down.test a:www.example.com "
                         "-all",),
                 "MX": ("10 mx1.example.com", "20 mx2.example.com")},
    mx1_example_com={"A": ("198.51.100.1",)},
    mx2_example_com={"A": "timeout"},
    esp_test={"TXT": ("v=spf1 -ip4:203.0.113.9 ip4:203.0.113.0/24 ip6:2001:db8:e5::/48 ~all",)},
    down_test={"TXT": "servfail"},
    www_example_com={"A": ("192.0.2.80",)},
    redirected_test={"TXT": ("v=spf1 ip4:192.0.2.1 redirect=example.com",)},
)


@pytest.mark.parametrize("ip", ["192.0.2.5", "198.51.100.1", "198.51.100.2", "203.0.113.5", "203.0.113.9",
                                "2001:db8:e5::1", "2001:db8:ff::1", "192.0.2.80", "8.8.8.8"])
@pytest.mark.parametrize("domain", ["example.com", "redirected.test", "esp.test"])
def test_order_of_matches_errors_and_includes(domain, ip):
    assert agree(ZONE, domain, ip)


def test_what_depends_on_the_address_is_not_compiled():
    zone = Zone(a_test={"TXT": ("v=spf1 exists:%{i}.rbl.test -all",)},
                b_test={"TXT": ("v=spf1 ptr -all",)})
    assert compile_spf("a.test", zone, 4) is None
    assert compile_spf("b.test", zone, 4) is None


def test_trees_that_could_reach_a_limit_are_not_compiled():
    names = {f"i{n}_test": {"TXT": (f"v=spf1 include:i{n + 1}.test -all",)} for n in range(11)}
    names["i11_test"] = {"TXT": ("v=spf1 ip4:192.0.2.1 -all",)}
    zone = Zone(**names)
    assert compile_spf("i0.test", zone, 4) is None
    assert check_host(zone, ip_address("192.0.2.1"), "i0.test", "a@i0.test").result == "permerror"
