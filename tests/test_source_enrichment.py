"""Sender identification over the store, against a real DNS server: each rule kind finds its
source, the API groups by who the sources are, and a source's type takes part in its class."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.api_tokens import Scope
from app.models import Report, ReportSourceClasses, SourceAddress, table_of
from ingest.dns_resolver import LiveResolver
from ingest.limits import UnpackLimits
from ingest.pipeline import IngestPipeline
from ingest.recompute import recompute
from ingest.reverse_dns import TtlCache
from ingest.sender_catalogue import SenderCatalogue
from ingest.source_enrichment import identify_sources
from ingest.spf_include_index import snapshot_includes
from tests import samples
from tests.dns_server import txt
from tests.live_server import LiveServer

ADDRESSES = table_of(SourceAddress)
REPORTS = table_of(Report)
SOURCE_CLASSES = table_of(ReportSourceClasses)
BEGIN = datetime(2026, 11, 2, tzinfo=UTC)


def catalogue_file(path: Path, relay: str, esp: str, relay_type: str = "forwarder",
                   relay_name: str = "Test Relay") -> Path:
    path.write_text(f'''
[[service]]
name = "{relay_name}"
type = "{relay_type}"
ptr_domains = ["{relay}"]

[[service]]
name = "Test ESP"
type = "esp"
spf_includes = ["_spf.{esp}"]
dkim_domains = ["sign.{esp}"]
''')
    return path


@pytest.fixture
def world(live_server: LiveServer, nsd, tmp_path: Path) -> dict[str, Any]:
    """Seven sources, each identifiable by one kind of evidence (or by none)."""
    net = f"198.18.{uuid.uuid4().int % 250}"  # a reverse zone no other test of this server uses
    relay, isp, esp = nsd.new_zone_name("relay"), nsd.new_zone_name("isp"), nsd.new_zone_name("esp")
    reverse_zone = ".".join(reversed(net.split("."))) + ".in-addr.arpa"
    nsd.set_zone(reverse_zone, [f"10 IN PTR mx1.{relay}.", f"20 IN PTR mail.{isp}.",
                                f"21 IN PTR liar.{relay}."])
    nsd.set_zone(relay, ["mx1 IN A " + f"{net}.10"])  # liar.<relay> has no address: unconfirmed
    nsd.set_zone(isp, [f"mail IN A {net}.20"])
    nsd.set_zone(esp, [txt("_spf", f"v=spf1 ip4:{net}.128/25 -all")])
    nsd.reload()
    ips = {"relay": f"{net}.10", "isp": f"{net}.20", "liar": f"{net}.21", "no_ptr": f"{net}.30",
           "esp_spf": f"{net}.200", "google": "8.8.8.8", "nothing": "192.0.2.99"}
    records = [
        # DMARC fails from the forwarder: the domain's SPF does not name it
        samples.Rec(source_ip=ips["relay"], count="6", dkim="fail", spf="fail", dkim_results=[],
                    spf_results=[("example.com", "mfrom", "fail")]),
        samples.Rec(source_ip=ips["isp"], count="5"),
        samples.Rec(source_ip=ips["liar"], count="4"),
        samples.Rec(source_ip=ips["no_ptr"], count="3", dkim_results=[(f"sign.{esp}", "s1", "pass")]),
        samples.Rec(source_ip=ips["esp_spf"], count="2"),
        samples.Rec(source_ip=ips["google"], count="1"),
        samples.Rec(source_ip=ips["nothing"], count="1", dkim="fail", spf="fail", dkim_results=[],
                    spf_results=[("example.com", "mfrom", "fail")]),
    ]
    xml = samples.aggregate_xml(records, report_id="identify-1", domain="example.com",
                                begin=str(int(BEGIN.timestamp())),
                                end=str(int((BEGIN + timedelta(days=1)).timestamp()) - 1))
    path = tmp_path / "report.xml"
    path.write_bytes(xml)
    pipeline = IngestPipeline(live_server.engine, live_server.data_dir, UnpackLimits())
    report_id = pipeline.ingest_path(path).reports[0].report_id
    live = LiveResolver([nsd.nameserver], timeout=0.3, lifetime=0.6)
    return {"engine": live_server.engine, "server": live_server, "ips": ips, "live": live,
            "relay": relay, "esp": esp, "isp": isp, "report_id": report_id,
            "catalogue": SenderCatalogue.load(catalogue_file(tmp_path / "senders.toml", relay, esp))}


def identities(engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {row.ip: row for row in conn.execute(select(ADDRESSES))}


def identify(world: dict[str, Any], **options: Any):
    snapshot_includes(world["engine"], world["live"], world["catalogue"], timedelta(hours=6),
                      datetime.now(UTC))
    return identify_sources(world["engine"], TtlCache(world["live"]), world["catalogue"], **options)


def test_each_kind_of_evidence_names_its_source(world):
    stats = identify(world)
    assert stats.sources == 7
    found, ips = identities(world["engine"]), world["ips"]
    relay = found[ips["relay"]]
    assert (relay.sender, relay.service_type, relay.matched_by) == ("Test Relay", "forwarder", "ptr")
    assert (relay.ptr, relay.reverse_dns, relay.base_domain) == (f"mx1.{world['relay']}", "confirmed",
                                                                 world["relay"])
    isp = found[ips["isp"]]
    assert (isp.sender, isp.service, isp.reverse_dns) == (world["isp"], None, "confirmed")
    assert (found[ips["liar"]].sender, found[ips["liar"]].matched_by) == ("Test Relay", "ptr_unconfirmed")
    assert found[ips["liar"]].reverse_dns == "unconfirmed"
    no_ptr = found[ips["no_ptr"]]
    assert (no_ptr.sender, no_ptr.matched_by, no_ptr.reverse_dns) == ("Test ESP", "dkim_domain", "no_ptr")
    assert (found[ips["esp_spf"]].sender, found[ips["esp_spf"]].matched_by) == ("Test ESP", "spf_include")
    google = found[ips["google"]]  # this server knows nothing of 8.8.8.in-addr.arpa: the network does
    assert google.reverse_dns == "temperror" and google.ptr is None
    assert (google.sender, google.country) == ("Google Workspace / Gmail", "US")
    assert google.matched_by in ("asn", "as_name")
    nothing = found[ips["nothing"]]
    assert (nothing.sender, nothing.service, nothing.asn, nothing.country) == ("unknown", None, None, None)
    assert all(row.identified_at is not None for row in found.values())
    assert identify(world).sources == 0  # identified once; `everything` does them again


def test_sources_identified_long_ago_are_identified_again(world):
    """What the serve cycle asks for: the stale ones, a limited number at a time."""
    assert identify(world, now=datetime.now(UTC) - timedelta(days=30)).sources == 7
    first = identities(world["engine"])
    assert identify(world, stale_after=timedelta(days=365)).sources == 0
    assert identify(world, stale_after=timedelta(days=7), limit=3).sources == 3
    assert identify(world, stale_after=timedelta(days=7)).sources == 4
    assert identify(world, stale_after=timedelta(days=7)).sources == 0
    again = identities(world["engine"])
    columns = ("sender", "service", "service_type", "matched_by", "ptr", "reverse_dns", "base_domain", "asn",
               "as_name", "country")
    assert {ip: tuple(getattr(row, c) for c in columns) for ip, row in again.items()} == {
        ip: tuple(getattr(row, c) for c in columns) for ip, row in first.items()}
    assert all(again[ip].identified_at > first[ip].identified_at for ip in again)


def test_a_known_forwarder_makes_failing_mail_a_forwarding_failure(world):
    identify(world)
    recompute(world["engine"])
    client = world["server"].client(Scope.READ)
    records = get(client, "/api/v1/records", source_ip=world["ips"]["relay"])["items"]
    assert records[0]["verdict"]["class"] == "forwarding_failure"
    assert records[0]["sender"]["sender"] == "Test Relay"
    assert records[0]["sender"]["service_type"] == "forwarder"
    unknown = get(client, "/api/v1/records", source_ip="192.0.2.99")["items"][0]
    assert unknown["verdict"]["class"] == "unauthorised" and unknown["sender"]["sender"] == "unknown"

    # the catalogue changes its mind: the relay is an ESP; its report is judged again
    catalogue = SenderCatalogue.load(catalogue_file(world["server"].data_dir / "senders.toml", world["relay"],
                                                    world["esp"], relay_type="esp"))
    stats = identify_sources(world["engine"], TtlCache(world["live"]), catalogue, everything=True)
    assert (stats.sources, stats.retyped, stats.regrouped) == (7, 2, 2)  # the relay and the liar
    assert judged_again(world)
    recompute(world["engine"])
    records = get(client, "/api/v1/records", source_ip=world["ips"]["relay"])["items"]
    assert records[0]["verdict"]["class"] == "unauthorised"
    assert kept_group(world, "relay") == ("Test Relay", "sender", "Test Relay", "esp")

    # then renames it: the same type, but the per-address rows keep the name, so judged again
    catalogue = SenderCatalogue.load(catalogue_file(world["server"].data_dir / "senders.toml", world["relay"],
                                                    world["esp"], relay_type="esp", relay_name="Relay Inc"))
    stats = identify_sources(world["engine"], TtlCache(world["live"]), catalogue, everything=True)
    assert (stats.retyped, stats.regrouped) == (0, 2)
    assert judged_again(world)
    recompute(world["engine"])
    assert kept_group(world, "relay") == ("Relay Inc", "sender", "Relay Inc", "esp")
    stats = identify_sources(world["engine"], TtlCache(world["live"]), catalogue, everything=True)
    assert (stats.retyped, stats.regrouped) == (0, 0) and not judged_again(world)


def judged_again(world: dict[str, Any]) -> bool:
    with world["engine"].connect() as conn:
        return conn.execute(select(REPORTS.c.verdicts_at).where(REPORTS.c.id == world["report_id"])
                            ).scalar_one() is None


def kept_group(world: dict[str, Any], name: str) -> tuple[Any, ...]:
    """The group and identity the judge kept on the address's per-address class row."""
    s = SOURCE_CLASSES.c
    with world["engine"].connect() as conn:
        return tuple(conn.execute(select(s.group_key, s.keyed_by, s.service, s.service_type)
                                  .join_from(SOURCE_CLASSES, ADDRESSES, ADDRESSES.c.id == s.source_id)
                                  .where(ADDRESSES.c.ip == world["ips"][name])).one())


def get(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_sources_grouped_by_who_they_are(world):
    client = world["server"].client(Scope.READ)
    pending = get(client, "/api/v1/sources", group="service")
    assert [(item["key"], item["sources"], item["messages"])
            for item in pending["items"]] == [("pending", 7, 22)]
    identify(world)
    recompute(world["engine"])
    by_service = get(client, "/api/v1/sources", group="service")
    groups = {item["key"]: item for item in by_service["items"]}
    assert by_service["total"] == 5
    assert (groups["Test Relay"]["sources"], groups["Test Relay"]["messages"]) == (2, 10)
    assert groups["Test Relay"]["classes"]["forwarding_failure"] == 6
    assert groups["Test Relay"]["classes"]["aligned"] == 4
    assert (groups["Test ESP"]["sources"], groups["Test ESP"]["service_type"]) == (2, "esp")
    assert groups[world["isp"]]["service"] is None
    assert groups["unknown"]["classes"]["unauthorised"] == 1
    assert next(item["key"] for item in by_service["items"]) == "Test Relay"  # by volume
    # a page: ranked over all groups, then only its own summed, classed and named
    page = get(client, "/api/v1/sources", group="service", limit=2, offset=1)
    assert page["items"] == by_service["items"][1:3] and page["total"] == 5

    by_country = {item["key"]: item["messages"]
                  for item in get(client, "/api/v1/sources", group="country")["items"]}
    assert by_country == {"US": 1, "unknown": 21}
    by_domain = {item["key"]: item["sources"] for item in get(client, "/api/v1/sources",
                                                                group="base_domain")["items"]}
    assert by_domain[world["relay"]] == 2 and by_domain[world["isp"]] == 1
    by_as = get(client, "/api/v1/sources", group="asn")["items"]
    google_as = next(item for item in by_as if item["as_name"] and "GOOGLE" in item["as_name"])
    assert google_as["messages"] == 1

    one = get(client, "/api/v1/sources", group="ip", source_ip=world["ips"]["relay"])["items"][0]
    assert (one["source_ip"], one["ptr"], one["reverse_dns"], one["service_type"]) == (
        world["ips"]["relay"], f"mx1.{world['relay']}", "confirmed", "forwarder")

    # a window given as instants is answered from the records: the same groups
    instants = get(client, "/api/v1/sources", group="service", since="2026-11-02T06:00:00Z",
                   until="2026-11-02T18:00:00Z")
    assert {item["key"]: item["messages"] for item in instants["items"]} == {
        key: item["messages"] for key, item in groups.items()}
    paged = get(client, "/api/v1/sources", group="service", since="2026-11-02T06:00:00Z",
                until="2026-11-02T18:00:00Z", limit=2, offset=1)
    assert paged["items"] == instants["items"][1:3] and paged["total"] == instants["total"]

    exported = client.get("/api/v1/sources", params={"group": "service", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {row["key"] for row in rows} == set(groups)
    assert next(row for row in rows if row["key"] == "Test Relay")["forwarding_failure"] == "6"
    assert client.get("/api/v1/sources", params={"group": "planet"}).status_code == 422



def test_the_serve_cycle_identifies_before_it_judges(world):
    """`rua serve`'s background cycle: the relay is known a forwarder by the time its record is
    judged, so the first verdict is already forwarding_failure."""
    from ingest.dns_watch import cycle

    cycle(world["engine"], world["live"], [], timedelta(hours=6), catalogue=world["catalogue"],
          reverse=TtlCache(world["live"]))
    found = identities(world["engine"])
    assert all(row.identified_at is not None for row in found.values())
    client = world["server"].client(Scope.READ)
    records = get(client, "/api/v1/records", source_ip=world["ips"]["relay"])["items"]
    assert records[0]["verdict"]["class"] == "forwarding_failure"
