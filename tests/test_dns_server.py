"""The test NSD (tests/dns_server.py) and the project's own resolver, together.

Every answer below comes from a real authoritative NSD over the loopback, asked by
`ingest.dns_resolver.LiveResolver`: these are the outcomes DNS-snapshot tests can count on.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from ingest.dns_resolver import LiveResolver
from ingest.dns_source import DnsAnswer, DnsOutcome
from tests.dns_server import NsdError, NsdServer, txt, unreachable_nameserver
from tests.scripted_server import SERVICES

TIMEOUT, LIFETIME = 0.3, 0.6


def resolver(*nameservers: str) -> LiveResolver:
    return LiveResolver(list(nameservers), timeout=TIMEOUT, lifetime=LIFETIME)


def answer(name: str, rdtype, *records: str, ttl: int = 60) -> DnsAnswer:
    return DnsAnswer(name, rdtype, DnsOutcome.ANSWER, records, ttl)


@pytest.fixture
def zone(nsd: NsdServer) -> str:
    return nsd.new_zone_name()


def test_records_of_each_type_are_answered(nsd: NsdServer, zone: str) -> None:
    nsd.set_zone(zone, [
        '@ IN TXT "v=spf1 ip4:192.0.2.0/24 -all"',
        '_dmarc IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.test"',
        "@ IN MX 10 mail",
        f"@ IN MX 20 mx2.{zone}.",
        "mail IN A 192.0.2.25",
        "mail IN AAAA 2001:db8::25",
    ], ttl=300)
    nsd.reload()
    dns = resolver(nsd.nameserver)

    assert dns.lookup(zone, "TXT") == answer(zone, "TXT", "v=spf1 ip4:192.0.2.0/24 -all", ttl=300)
    assert dns.lookup(f"_dmarc.{zone}", "TXT") == answer(
        f"_dmarc.{zone}", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@example.test", ttl=300)
    assert dns.lookup(f"mail.{zone}", "A") == answer(f"mail.{zone}", "A", "192.0.2.25", ttl=300)
    assert dns.lookup(f"MAIL.{zone}.", "AAAA") == answer(f"mail.{zone}", "AAAA", "2001:db8::25", ttl=300)
    mx = dns.lookup(zone, "MX")
    assert mx.outcome is DnsOutcome.ANSWER
    assert sorted(mx.records) == [f"10 mail.{zone}", f"20 mx2.{zone}"]


def test_reverse_zones_answer_ptr(nsd: NsdServer) -> None:
    # reverse zones cannot have unique names: each xdist worker has its own server, and the
    # tests of one worker run one at a time, so this test owns them while it runs
    v4, v6 = "2.0.192.in-addr.arpa", "8.b.d.0.1.0.0.2.ip6.arpa"
    nsd.set_zone(v4, ["25 IN PTR mail.example.test.", "26 IN PTR mx2.example.test."])
    nsd.set_zone(v6, ["5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0 IN PTR mail.example.test."])
    nsd.reload()
    dns = resolver(nsd.nameserver)

    assert dns.lookup(f"25.{v4}", "PTR") == answer(f"25.{v4}", "PTR", "mail.example.test")
    v6_name = "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0." + v6
    assert dns.lookup(v6_name, "PTR") == answer(v6_name, "PTR", "mail.example.test")
    assert dns.lookup(f"99.{v4}", "PTR").outcome is DnsOutcome.NXDOMAIN


def test_txt_helper_splits_long_text_into_strings(nsd: NsdServer, zone: str) -> None:
    key = "v=DKIM1; k=rsa; p=" + "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A" * 20  # 659 characters
    odd = 'quote " backslash \\ tab \t ünïcödé ' + "é" * 200  # 2-byte characters across the split
    line = txt("sel1._domainkey", key)
    assert line.startswith('sel1._domainkey IN TXT "v=DKIM1; ')
    assert line.count('" "') == 2  # three strings: 255 + 255 + 149 bytes
    nsd.set_zone(zone, [line, txt("odd", odd), txt("empty", "")])
    nsd.reload()
    dns = resolver(nsd.nameserver)

    assert dns.lookup(f"sel1._domainkey.{zone}", "TXT").records == (key,)
    assert dns.lookup(f"odd.{zone}", "TXT").records == (odd,)
    assert dns.lookup(f"empty.{zone}", "TXT").records == ("",)  # one record, one empty string


def test_txt_helper_escapes_and_splits_on_bytes() -> None:
    assert txt("@", "a") == '@ IN TXT "a"'
    assert txt("@", "") == '@ IN TXT ""'
    assert txt("x", 'say "hi" \\o/') == 'x IN TXT "say \\"hi\\" \\\\o/"'
    assert txt("x", "é") == 'x IN TXT "\\195\\169"'
    assert txt("x", "a" * 255) == 'x IN TXT "' + "a" * 255 + '"'
    assert txt("x", "a" * 256) == 'x IN TXT "' + "a" * 255 + '" "a"'


def test_nxdomain_and_nodata(nsd: NsdServer, zone: str) -> None:
    nsd.set_zone(zone, ["mail IN A 192.0.2.25"])
    nsd.reload()
    dns = resolver(nsd.nameserver)

    assert dns.lookup(f"nope.{zone}", "TXT") == DnsAnswer(f"nope.{zone}", "TXT", DnsOutcome.NXDOMAIN)
    assert dns.lookup(f"mail.{zone}", "TXT") == DnsAnswer(f"mail.{zone}", "TXT", DnsOutcome.NODATA)
    assert dns.lookup(zone, "MX") == DnsAnswer(zone, "MX", DnsOutcome.NODATA)  # the apex has SOA/NS
    # an empty non-terminal exists, so it is NODATA, not NXDOMAIN
    nsd.set_zone(zone, ["a.b IN A 192.0.2.1"])
    nsd.reload()
    assert dns.lookup(f"b.{zone}", "A").outcome is DnsOutcome.NODATA


def test_a_change_is_served_after_reload(nsd: NsdServer, zone: str) -> None:
    first = nsd.set_zone(zone, ['@ IN TXT "v=spf1 -all"'])
    nsd.reload()
    dns = resolver(nsd.nameserver)
    assert dns.lookup(zone, "TXT").records == ("v=spf1 -all",)

    # two changes in a row, within the same second: each one is served after its reload
    second = nsd.set_zone(zone, ['@ IN TXT "v=spf1 ip4:192.0.2.1 -all"'])
    nsd.reload()
    assert second == first + 1
    assert dns.lookup(zone, "TXT").records == ("v=spf1 ip4:192.0.2.1 -all",)
    nsd.set_zone(zone, ["mail IN A 192.0.2.25"])
    nsd.reload()
    assert dns.lookup(zone, "TXT").outcome is DnsOutcome.NODATA
    assert nsd.soa_state(zone) == str(first + 2)


def test_zones_come_and_go_without_a_restart(nsd: NsdServer) -> None:
    pid = nsd.pid
    zones = [nsd.new_zone_name() for _ in range(3)]
    for name in zones:
        nsd.set_zone(name, ['@ IN TXT "here"'])
    nsd.reload()
    dns = resolver(nsd.nameserver)
    assert [dns.lookup(name, "TXT").outcome for name in zones] == [DnsOutcome.ANSWER] * 3

    nsd.remove_zone(zones[0])
    nsd.reload()
    # outside every zone NSD answers REFUSED; dnspython then has no server left to ask
    # (NoNameservers), which LiveResolver reports as SERVFAIL
    assert nsd.soa_state(zones[0]) == "REFUSED"
    assert dns.lookup(zones[0], "TXT").outcome is DnsOutcome.SERVFAIL
    assert dns.lookup(zones[1], "TXT").outcome is DnsOutcome.ANSWER
    assert zones[0] not in nsd.zones() and zones[1] in nsd.zones()
    assert nsd.pid == pid and nsd.is_running()


def test_broken_zone_is_servfail_and_can_be_fixed(nsd: NsdServer, zone: str) -> None:
    nsd.set_zone(zone, ['@ IN TXT "before"'])
    nsd.reload()
    dns = resolver(nsd.nameserver)
    assert dns.lookup(zone, "TXT").records == ("before",)

    # a zone NSD is configured for but cannot load: SERVFAIL at the apex and below (a
    # served zone turning broken must be dropped and re-added, or NSD keeps the old data)
    nsd.broken_zone(zone)
    nsd.reload()
    assert nsd.soa_state(zone) == "SERVFAIL"
    assert dns.lookup(zone, "TXT") == DnsAnswer(zone, "TXT", DnsOutcome.SERVFAIL)
    assert dns.lookup(f"any.thing.{zone}", "A").outcome is DnsOutcome.SERVFAIL

    nsd.set_zone(zone, ['@ IN TXT "after"'])
    nsd.reload()
    assert dns.lookup(zone, "TXT").records == ("after",)


def test_silent_server_times_out(nsd: NsdServer, zone: str) -> None:
    silent = unreachable_nameserver()
    assert silent == unreachable_nameserver()  # one socket for the whole session
    started = time.monotonic()
    result = resolver(silent).lookup(f"x.{zone}", "TXT")
    elapsed = time.monotonic() - started
    assert result == DnsAnswer(f"x.{zone}", "TXT", DnsOutcome.TIMEOUT)
    assert result.failed
    assert LIFETIME * 0.9 <= elapsed < LIFETIME + 1.0


def test_killed_server_times_out_and_restarts_on_its_zones(nsd: NsdServer, zone: str) -> None:
    nsd.set_zone(zone, ['@ IN TXT "survives"'])
    nsd.reload()
    dns = resolver(nsd.nameserver)
    try:
        nsd.kill()
        assert not nsd.is_running()
        assert dns.lookup(zone, "TXT").outcome is DnsOutcome.TIMEOUT
        with pytest.raises(NsdError, match="not running"):
            nsd.set_zone(zone, ['@ IN TXT "while down"'])
            nsd.reload()
    finally:
        nsd.start()
    # the change written while it was down is served after the restart
    assert dns.lookup(zone, "TXT").records == ("while down",)


def test_reload_script_waits_for_the_serial_it_is_given(nsd: NsdServer, zone: str) -> None:
    serial = nsd.set_zone(zone, ['@ IN TXT "cli"'])
    script = ["bash", str(SERVICES / "nsd-reload.sh"), str(nsd.directory)]
    done = subprocess.run([*script, f"{zone}={serial}"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert nsd.soa_state(zone) == str(serial)
    # a serial that never comes: the script says what it got instead
    done = subprocess.run([*script, f"{zone}={serial + 5}"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NSD_WAIT_SECONDS": "0.5"})
    assert done.returncode == 1
    assert f"zone {zone}: wanted {serial + 5}, got {serial}" in done.stderr
    nsd.reload()  # nothing pending: reload by mtime and wait


def test_reload_rejects_a_broken_zone_file(nsd: NsdServer, zone: str) -> None:
    nsd.set_zone(zone, ["@ IN TXT unterminated \"string"])
    with pytest.raises(NsdError, match="is broken"):
        nsd.reload()
    nsd.set_zone(zone, ['@ IN TXT "fixed"'])
    nsd.reload()
    assert resolver(nsd.nameserver).lookup(zone, "TXT").records == ("fixed",)


def test_start_script_refuses_without_zones(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(SERVICES / "nsd-start.sh"), str(tmp_path / "empty"), "1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "no zone to serve" in done.stderr
