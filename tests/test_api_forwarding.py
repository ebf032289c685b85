"""/api/v1/forwarding over a real server: forwarded mail, forwarders and broken signatures, with
every figure reckoned by hand from the reports below, on both databases."""

from __future__ import annotations

import base64
import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Engine, select, update

from app.api_tokens import Scope
from app.models import RecordVerdict, ReportSourceClasses, SourceAddress, table_of
from ingest.address_group import fill_address_groups
from ingest.dns_snapshot_store import record_answers
from ingest.dns_source import DnsAnswer, DnsOutcome
from ingest.limits import UnpackLimits
from ingest.pipeline import IngestPipeline
from ingest.recompute import recompute
from tests import samples
from tests.live_server import LiveServer

NOV1 = datetime(2026, 11, 1, tzinfo=UTC)
ADDRESSES = table_of(SourceAddress)
VERDICTS = table_of(RecordVerdict)
SOURCE_CLASSES = table_of(ReportSourceClasses)
Signatures = list[tuple[str, str | None, str]]
Identity = dict[str, str | None]
FORWARDER: Identity = {"sender": "Example Forwarder", "service": "Example Forwarder",
                       "service_type": "forwarder"}
GOOGLE: Identity = {"sender": "Google", "service": "Google", "service_type": "mailbox_provider"}
IDENTITIES: dict[str, Identity] = {
    "198.51.100.1": FORWARDER, "198.51.100.2": FORWARDER, "209.85.220.41": GOOGLE,
    "192.0.2.10": {"sender": "Example Mail", "service": "Example Mail", "service_type": "esp"},
    "192.0.2.50": {"sender": "Example Mail", "service": "Example Mail", "service_type": "esp"},
    "233.252.0.1": {"sender": "unknown", "service": None, "service_type": None},
}  # 203.0.113.5 and 203.0.113.9 are not identified yet


def day(n: int) -> int:
    return int((NOV1 + timedelta(days=n - 1)).timestamp())


def key_record() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def failing(source_ip: str, count: int, signatures: Signatures, **fields: Any) -> samples.Rec:
    """A record failing DMARC at the receiver: SPF failed for example.com, no aligned pass."""
    return samples.Rec(source_ip=source_ip, count=str(count), dkim="fail", spf="fail",
                       dkim_results=signatures, spf_results=[("example.com", "mfrom", "fail")], **fields)


SIGNED: Signatures = [("example.com", "s1", "pass")]
BROKEN: Signatures = [("example.com", "s1", "fail")]
GONE: Signatures = [("example.com", "gone", "fail")]
UNALIGNED: Signatures = [("evil.example", "x", "pass")]
PERMERROR: Signatures = [("example.com", "s1", "permerror")]
# Report A, google.com, November 1 (135 messages):
#   R1 aligned 100; R2 forwarded 20 (the signature survived, SPF failed); R3 forwarding_failure 8,
#   the domain's signature broken in transit; R4 forwarding_failure 4, a mailing list that left no
#   signature; R5 forwarding_failure 3, the signature fails but its key is gone (not transit).
# Report B, Microsoft, November 3 (29 messages):
#   R6 misconfigured 6 (the domain's own SPF authorises the source: signed wrongly at home);
#   R7 unauthorised 9 (an unaligned signature); R2b forwarded 5; R8 forwarding_failure 7 at
#   Google, header_from news.example.com with a relaxed-aligned example.com signature broken;
#   R9 forwarding_failure 2, the aligned signature is a permerror (not a broken signature).
REPORT_A = [
    samples.Rec(source_ip="192.0.2.10", count="100"),
    samples.Rec(source_ip="198.51.100.1", count="20", dkim="pass", spf="fail", dkim_results=SIGNED,
                spf_results=[("example.com", "mfrom", "fail")]),
    failing("198.51.100.2", 8, BROKEN),
    failing("203.0.113.5", 4, [], reasons=[("mailing_list", None)]),
    failing("203.0.113.9", 3, GONE),
]
REPORT_B = [
    failing("192.0.2.50", 6, BROKEN),
    failing("233.252.0.1", 9, UNALIGNED),
    samples.Rec(source_ip="198.51.100.1", count="5", dkim="pass", spf="fail", dkim_results=SIGNED,
                spf_results=[("example.com", "mfrom", "fail")]),
    failing("209.85.220.41", 7, BROKEN, header_from="news.example.com"),
    failing("198.51.100.2", 2, PERMERROR),
]


@pytest.fixture
def client(live_server: LiveServer, tmp_path: Path) -> httpx.Client:
    judge(live_server, tmp_path, identified_first=True)
    return live_server.client(Scope.READ)


def identify(engine: Engine) -> None:
    with engine.begin() as conn:
        for ip, identity in IDENTITIES.items():
            conn.execute(update(ADDRESSES).where(ADDRESSES.c.ip == ip).values(**identity, identified_at=NOV1))


def judge(live_server: LiveServer, tmp_path: Path, identified_first: bool) -> None:
    """Reports A and B stored, the DNS of their time recorded and every record judged; the
    sources identified before judging, as `rua serve` does, or after."""
    engine = live_server.engine
    pipeline = IngestPipeline(engine, live_server.data_dir, UnpackLimits())
    for name, records, org, first in (("a", REPORT_A, "google.com", 1), ("b", REPORT_B, "Microsoft", 3)):
        path = tmp_path / f"{name}.xml"
        path.write_bytes(samples.aggregate_xml(records, org_name=org, report_id=name, begin=str(day(first)),
                                               end=str(day(first + 1) - 1)))
        assert pipeline.ingest_path(path).reports[0].status == "new"
    with engine.begin() as conn:
        record_answers(conn, [
            DnsAnswer("example.com", "TXT", DnsOutcome.ANSWER, ("v=spf1 ip4:192.0.2.0/24 -all",)),
            DnsAnswer("_dmarc.example.com", "TXT", DnsOutcome.ANSWER, ("v=DMARC1; p=reject",)),
            DnsAnswer("s1._domainkey.example.com", "TXT", DnsOutcome.ANSWER, (key_record(),)),
            DnsAnswer("gone._domainkey.example.com", "TXT", DnsOutcome.NXDOMAIN),
        ], NOV1 - timedelta(days=30))
    if identified_first:
        identify(engine)
    recompute(engine)
    with engine.connect() as conn:  # the classes the figures below are reckoned from
        classes = sorted(conn.execute(VERDICTS.select().with_only_columns(
            VERDICTS.c.report_id, VERDICTS.c.record_no, VERDICTS.c.record_class)).all())
    assert [row.record_class for row in classes] == [
        "aligned", "forwarded", "forwarding_failure", "forwarding_failure", "forwarding_failure",
        "misconfigured", "unauthorised", "forwarded", "forwarding_failure", "forwarding_failure"]


def get(client: httpx.Client, **params: Any) -> Any:
    response = client.get("/api/v1/forwarding", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def forwarders(answer: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(f["key"], f["keyed_by"], f["messages"], f["forwarded"], f["forwarding_failure"], f["sources"])
            for f in answer["forwarders"]]


def broken(answer: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    return [(b["domain"], b["key"], b["messages"], b["records"]) for b in answer["broken_signatures"]]


def test_totals_days_and_shares(client: httpx.Client) -> None:
    answer = get(client)
    assert answer["totals"] == {
        "messages": 164,
        "forwarded": {"messages": 25, "records": 2, "share": round(25 / 164, 6)},
        "forwarding_failure": {"messages": 24, "records": 5, "share": round(24 / 164, 6)},
        "broken_signatures": {"messages": 15, "records": 2, "share": round(15 / 164, 6)},
    }
    assert answer["days"] == [
        {"day": "2026-11-01", "messages": 135, "forwarded": 20, "forwarding_failure": 15},
        {"day": "2026-11-03", "messages": 29, "forwarded": 5, "forwarding_failure": 9},
    ]
    assert answer["window"] == {"since": None, "until": None}


def test_forwarders_by_sender_else_address(client: httpx.Client) -> None:
    answer = get(client)
    assert forwarders(answer) == [
        ("Example Forwarder", "sender", 35, 25, 10, 2),
        ("Google", "sender", 7, 0, 7, 1),
        ("203.0.113.5", "ip", 4, 0, 4, 1),  # not identified: its own address
        ("203.0.113.9", "ip", 3, 0, 3, 1),
    ]
    assert answer["forwarders_total"] == 4
    first = answer["forwarders"][0]
    assert (first["service"], first["service_type"]) == ("Example Forwarder", "forwarder")
    assert first["records"] == 4
    assert (first["dmarc_pass"], first["dmarc_pass_rate"]) == (25, round(25 / 35, 6))
    assert answer["forwarders"][1]["dmarc_pass_rate"] == 0.0
    assert answer["forwarders"][2]["sender"] is None  # identity of an address not identified yet
    limited = get(client, limit=1)
    assert forwarders(limited) == forwarders(answer)[:1] and limited["forwarders_total"] == 4
    assert limited["forwarders"][0] == first


def test_broken_signatures_are_only_changes_in_transit(client: httpx.Client) -> None:
    """R3 and R8 only: not R4 (no signature), R5 (key missing), R6 (the domain's own SPF
    authorises the source), R7 (not aligned) nor R9 (permerror)."""
    answer = get(client)
    assert broken(answer) == [("example.com", "Example Forwarder", 8, 1), ("example.com", "Google", 7, 1)]
    assert answer["broken_signatures_total"] == 2
    google = answer["broken_signatures"][1]
    assert (google["keyed_by"], google["service_type"]) == ("sender", "mailbox_provider")
    # a page of fewer groups than there are: ranked first, then summed in full, one by one
    limited = get(client, limit=1)
    assert broken(limited) == broken(answer)[:1] and limited["broken_signatures_total"] == 2
    assert limited["broken_signatures"][0] == answer["broken_signatures"][0]
    assert limited["totals"]["broken_signatures"] == answer["totals"]["broken_signatures"]


def ungrouped(engine: Engine) -> list[str]:
    """The addresses of the judge's per-address rows that hold no group of their own."""
    with engine.connect() as conn:
        return sorted(set(conn.execute(select(ADDRESSES.c.ip).join_from(
            SOURCE_CLASSES, ADDRESSES, ADDRESSES.c.id == SOURCE_CLASSES.c.source_id)
            .where(SOURCE_CLASSES.c.group_key.is_(None))).scalars()))


def test_sources_identified_after_judging(live_server: LiveServer, tmp_path: Path) -> None:
    """Rows judged before their addresses were identified keep no group: they are grouped
    through their addresses as they are now, until identification gives them theirs (or, named
    otherwise later, they are judged again). The answer is the same at every step."""
    judge(live_server, tmp_path, identified_first=False)
    engine, client = live_server.engine, live_server.client(Scope.READ)
    everyone = ["192.0.2.10", "192.0.2.50", "198.51.100.1", "198.51.100.2", "203.0.113.5", "203.0.113.9",
                "209.85.220.41", "233.252.0.1"]
    assert ungrouped(engine) == everyone
    # forwarding classes need the forwarder's type: judged unidentified, R2 and R2b are not forwarded
    identify(engine)
    recompute(engine, everything=True)
    with engine.begin() as conn:  # as if judged just before identification, and not since
        conn.execute(update(SOURCE_CLASSES).values(group_key=None, keyed_by=None, sender=None, service=None,
                                                   service_type=None))
    expected = [("Example Forwarder", "sender", 35, 25, 10, 2), ("Google", "sender", 7, 0, 7, 1),
                ("203.0.113.5", "ip", 4, 0, 4, 1), ("203.0.113.9", "ip", 3, 0, 3, 1)]
    expected_broken = [("example.com", "Example Forwarder", 8, 1), ("example.com", "Google", 7, 1)]
    before = get(client)
    assert (forwarders(before), broken(before)) == (expected, expected_broken)
    assert before["forwarders"][0]["service_type"] == "forwarder"
    assert before["forwarders"][2]["sender"] is None
    limited = get(client, limit=1)
    assert forwarders(limited) == expected[:1] and limited["forwarders_total"] == 4
    services = services_classes(client)  # the sources page reads the classes the same way
    assert services["Example Forwarder"] == {"forwarded": 25, "forwarding_failure": 10}
    assert services["unknown"] == {"unauthorised": 9}
    assert services["pending"] == {"forwarding_failure": 7}  # 203.0.113.5 and .9: not identified

    with engine.begin() as conn:
        assert fill_address_groups(conn) == 8  # the six identified addresses, two in both reports
        assert fill_address_groups(conn) == 0
    assert ungrouped(engine) == ["203.0.113.5", "203.0.113.9"]  # not identified yet
    s = SOURCE_CLASSES.c
    with engine.connect() as conn:
        kept = conn.execute(select(s.group_key, s.keyed_by, s.sender)
                            .join_from(SOURCE_CLASSES, ADDRESSES, ADDRESSES.c.id == s.source_id)
                            .where(ADDRESSES.c.ip == "233.252.0.1")).one()
    assert tuple(kept) == ("233.252.0.1", "ip", "unknown")  # `unknown` is no group: the address is
    assert get(client) == before
    assert get(client, limit=1) == limited
    assert services_classes(client) == services


def services_classes(client: httpx.Client) -> dict[str, dict[str, int]]:
    response = client.get("/api/v1/sources", params={"group": "service"})
    assert response.status_code == 200, response.text
    return {item["key"]: {name: messages for name, messages in item["classes"].items() if messages}
            for item in response.json()["items"]}


def test_filters_change_every_part(client: httpx.Client) -> None:
    third = get(client, since="2026-11-03", until="2026-11-03")
    assert third["totals"]["messages"] == 29
    totals = third["totals"]
    assert (totals["forwarded"]["messages"], totals["forwarding_failure"]["messages"]) == (5, 9)
    assert [d["day"] for d in third["days"]] == ["2026-11-03"]
    # a tie on messages is broken by name
    assert forwarders(third) == [("Example Forwarder", "sender", 7, 5, 2, 2),
                                 ("Google", "sender", 7, 0, 7, 1)]
    assert broken(third) == [("example.com", "Google", 7, 1)]

    network = get(client, source_ip="198.51.100.0/24")
    assert network["totals"]["messages"] == 35
    assert network["totals"]["forwarding_failure"] == {"messages": 10, "records": 2,
                                                       "share": round(10 / 35, 6)}
    assert forwarders(network) == [("Example Forwarder", "sender", 35, 25, 10, 2)]
    assert broken(network) == [("example.com", "Example Forwarder", 8, 1)]

    only_forwarded = get(client, **{"class": "forwarded"})
    assert only_forwarded["totals"]["forwarding_failure"]["messages"] == 0
    assert forwarders(only_forwarded) == [("Example Forwarder", "sender", 25, 25, 0, 1)]
    assert only_forwarded["broken_signatures"] == []
    assert only_forwarded["totals"]["broken_signatures"]["messages"] == 0

    news = get(client, header_from="news.example.com")
    assert forwarders(news) == [("Google", "sender", 7, 0, 7, 1)]
    assert broken(news) == [("example.com", "Google", 7, 1)]

    failed = get(client, dmarc="fail", org="google.com")
    assert [f["key"] for f in failed["forwarders"]] == ["Example Forwarder", "203.0.113.5", "203.0.113.9"]
    assert failed["totals"]["forwarded"]["messages"] == 0

    nothing = get(client, domain="example.org")
    assert nothing["totals"]["messages"] == 0 and nothing["totals"]["forwarded"]["share"] is None
    assert nothing["forwarders"] == [] and nothing["days"] == []


def read_csv(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def test_forwarders_as_csv(client: httpx.Client) -> None:
    rows = read_csv(client.get("/api/v1/forwarding", params={"format": "csv"}))
    assert rows == read_csv(client.get("/api/v1/forwarding", headers={"Accept": "text/csv"}))
    assert [(r["key"], r["messages"], r["forwarded"], r["forwarding_failure"]) for r in rows] == [
        ("Example Forwarder", "35", "25", "10"), ("Google", "7", "0", "7"), ("203.0.113.5", "4", "0", "4"),
        ("203.0.113.9", "3", "0", "3")]
    assert rows[0]["dmarc_pass_rate"] == str(round(25 / 35, 6)) and rows[2]["sender"] == ""
    assert len(read_csv(client.get("/api/v1/forwarding", params={"format": "csv", "limit": 2}))) == 2
    filtered = read_csv(client.get("/api/v1/forwarding", params={"format": "csv", "since": "2026-11-03"}))
    assert [r["key"] for r in filtered] == ["Example Forwarder", "Google"]


def test_needs_a_token_and_valid_parameters(client: httpx.Client, live_server: LiveServer) -> None:
    anonymous = live_server.client(None).get("/api/v1/forwarding")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    for params in ({"limit": 0}, {"limit": 1001}, {"since": "soon"}, {"class": "spam"}):
        response = client.get("/api/v1/forwarding", params=params)
        assert response.status_code == 422, params
        assert response.headers["content-type"] == "application/problem+json"
