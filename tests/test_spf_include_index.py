"""Catalogued SPF includes as recorded in the DNS history, laid out for one bisection per address."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from ingest.dns_snapshot_store import record_answers
from ingest.dns_source import DnsAnswer, DnsOutcome
from ingest.sender_catalogue import SenderCatalogue
from ingest.spf_include_index import SpfIncludeIndex

WHEN = datetime(2026, 11, 1, tzinfo=UTC)


def catalogue(tmp_path: Path) -> SenderCatalogue:
    path = tmp_path / "senders.toml"
    path.write_text('''
[[service]]
name = "Wide Host"
type = "hosting"
spf_includes = ["_spf.wide.example"]

[[service]]
name = "Narrow ESP"
type = "esp"
spf_includes = ["_spf.narrow.example"]

[[service]]
name = "Macro ESP"
type = "esp"
spf_includes = ["_spf.macro.example"]
''')
    return SenderCatalogue.load(path)


def txt(name: str, text: str) -> DnsAnswer:
    return DnsAnswer(name, "TXT", DnsOutcome.ANSWER, (text,))


def test_the_narrowest_passing_network_names_the_service(engine, tmp_path):
    with engine.begin() as conn:
        record_answers(conn, [
            # a provider's /16 with a customer's /24 inside it, and a network it excludes
            txt("_spf.wide.example", "v=spf1 -ip4:198.18.9.0/24 ip4:198.18.0.0/16 ip6:2001:db8::/32 ~all"),
            txt("_spf.narrow.example", "v=spf1 include:_nets.narrow.example -all"),
            txt("_nets.narrow.example", "v=spf1 ip4:198.18.7.0/24 -all"),
            # depends on the sender: cannot be compiled into networks, names no one
            txt("_spf.macro.example", "v=spf1 exists:%{i}._ip.macro.example -all"),
        ], WHEN)
    with engine.connect() as conn:
        index = SpfIncludeIndex.build(conn, catalogue(tmp_path))

    def named(ip: str) -> str | None:
        service = index.service_of(ip)
        return service.name if service else None

    assert named("198.18.7.20") == "Narrow ESP"  # through a nested include, inside the /16
    assert named("198.18.6.255") == named("198.18.8.0") == "Wide Host"  # either side of the /24
    assert named("198.18.9.1") is None  # excluded before the /16 passes: check_host says fail
    assert named("198.18.10.0") == "Wide Host"
    assert named("198.19.0.1") is None and named("192.0.2.1") is None
    assert named("2001:db8::25") == "Wide Host" and named("2001:db9::1") is None
    assert named("::ffff:198.18.7.1") == "Narrow ESP" and named("not an address") is None


def test_includes_never_snapshotted_add_nothing(engine, tmp_path):
    with engine.connect() as conn:
        index = SpfIncludeIndex.build(conn, catalogue(tmp_path))
    assert len(index) == 0 and index.service_of("198.18.7.1") is None
