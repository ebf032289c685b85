"""/api/v1/overview over a real server: the front page's figures reckoned by hand from the reports
below, and each domain's policy as reported and as recorded in DNS, on both databases."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from app.api_tokens import Scope
from app.models import SourceAddress, table_of
from ingest.dns_snapshot_store import record_answers
from ingest.dns_source import DnsAnswer, DnsOutcome
from ingest.limits import UnpackLimits
from ingest.pipeline import IngestPipeline
from ingest.recompute import recompute
from tests import samples
from tests.live_server import LiveServer

NOV1 = datetime(2026, 11, 1, tzinfo=UTC)
ADDRESSES = table_of(SourceAddress)
Results = list[tuple[str, str | None, str]]
NO_SIGNATURE: Results = []
SPOOFED: Results = [("spoof.example", "mfrom", "fail")]


def moment(day: int, hours: int = 0) -> datetime:
    return NOV1 + timedelta(days=day - 1, hours=hours)


def stamp(day: int, hours: int = 0) -> str:
    return moment(day, hours).isoformat().replace("+00:00", "Z")


def report(name: str, org: str, day: int, records: list[samples.Rec], domain: str = "example.com",
           p: str = "quarantine", extra_policy: str = "<pct>100</pct>") -> bytes:
    return samples.aggregate_xml(records, org_name=org, report_id=name, domain=domain, p=p,
                                 begin=str(int(moment(day).timestamp())),
                                 end=str(int(moment(day + 1).timestamp()) - 1), extra_policy=extra_policy)


def failing(ip: str, count: int, signatures: Results, disposition: str, header_from: str = "example.com",
            spf: Results | None = None) -> samples.Rec:
    return samples.Rec(source_ip=ip, count=str(count), dkim="fail", spf="fail", disposition=disposition,
                       header_from=header_from, dkim_results=signatures,
                       spf_results=spf or [(header_from, "mfrom", "fail")])


# example.com, November: p=none on the 1st, quarantine from the 2nd (one reporter adds np=reject),
# reject on the 5th; the report of the 4th arrives after judging (its 2 messages are pending).
# example.org: one report of the 2nd. Classes: aligned (pass), forwarding_failure (an aligned
# signature that failed), unauthorised (no signature, someone else's envelope).
REPORTS = {
    "g1": report("g1", "google.com", 1, [
        samples.Rec(source_ip="192.0.2.10", count="10"),
        failing("198.51.100.7", 5, [("example.com", "s1", "fail")], "none")], p="none"),
    "g2": report("g2", "google.com", 2, [samples.Rec(source_ip="192.0.2.10", count="7")]),
    "o1": report("o1", "google.com", 2, [
        failing("198.51.100.7", 30, [("example.org", "s1", "fail")], "reject", header_from="example.org")],
        domain="example.org", p="reject"),
    "m1": report("m1", "Microsoft", 3, [
        samples.Rec(source_ip="192.0.2.11", count="20"),
        failing("203.0.113.1", 3, NO_SIGNATURE, "quarantine", spf=SPOOFED)],
        extra_policy="<pct>100</pct><np>reject</np>"),
    "g3": report("g3", "google.com", 5, [
        samples.Rec(source_ip="192.0.2.10", count="4"),
        failing("203.0.113.2", 6, NO_SIGNATURE, "reject", spf=SPOOFED)], p="reject"),
}
LATE = report("y1", "Yahoo", 4, [samples.Rec(source_ip="192.0.2.10", count="2")])
IDENTITIES = {
    "192.0.2.10": {"sender": "Example Mail", "service": "Example Mail", "service_type": "esp"},
    "192.0.2.11": {"sender": "Example Mail", "service": "Example Mail", "service_type": "esp"},
    "198.51.100.7": {"sender": "Example Forwarder", "service": "Example Forwarder",
                     "service_type": "forwarder"},
}  # 203.0.113.1 and .2 are not identified yet: `pending`
DMARC = "_dmarc.example.com"


@pytest.fixture
def client(live_server: LiveServer, tmp_path: Path) -> httpx.Client:
    engine = live_server.engine
    pipeline = IngestPipeline(engine, live_server.data_dir, UnpackLimits())

    def ingest(name: str, data: bytes) -> None:
        path = tmp_path / f"{name}.xml"
        path.write_bytes(data)
        assert pipeline.ingest_path(path).reports[0].status == "new"

    for name, data in REPORTS.items():
        ingest(name, data)
    with engine.begin() as conn:
        for ip, identity in IDENTITIES.items():
            conn.execute(update(ADDRESSES).where(ADDRESSES.c.ip == ip).values(**identity, identified_at=NOV1))
        for at, answers in (
            (moment(-6), [DnsAnswer(DMARC, "TXT", DnsOutcome.ANSWER,
                                    ("v=DMARC1; p=none; rua=mailto:d@example.com",)),
                          DnsAnswer("_dmarc.example.org", "TXT", DnsOutcome.ANSWER,
                                    ("v=DMARC1; p=reject; sp=none; pct=50",))]),
            (moment(2, 12), [DnsAnswer(DMARC, "TXT", DnsOutcome.ANSWER,
                                       ("v=DMARC1; p=quarantine; np=reject; rua=mailto:d@example.com",))]),
            (moment(3, 12), [DnsAnswer(DMARC, "TXT", DnsOutcome.ANSWER,  # the same again: one interval
                                       ("v=DMARC1; p=quarantine; np=reject; rua=mailto:d@example.com",))]),
            (moment(5, 6), [DnsAnswer(DMARC, "TXT", DnsOutcome.ANSWER,
                                      ("v=DMARC1; p=reject; rua=mailto:d@example.com", "other text"))]),
        ):
            record_answers(conn, answers, at)
    recompute(engine)
    ingest("y1", LATE)
    return live_server.client(Scope.READ)


def get(client: httpx.Client, **params: Any) -> Any:
    response = client.get("/api/v1/overview", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def classes(**known: int) -> dict[str, int]:
    return {"aligned": 0, "forwarded": 0, "forwarding_failure": 0, "misconfigured": 0, "unauthorised": 0,
            "pending": 0, **known}


def test_figures_per_day_class_and_disposition(client: httpx.Client) -> None:
    answer = get(client)
    assert (answer["reports"], answer["messages"]) == (6, 87)
    assert (answer["dmarc_pass"], answer["dmarc_fail"]) == (43, 44)
    assert answer["dmarc_pass_rate"] == round(43 / 87, 6)
    assert answer["classes"] == classes(aligned=41, forwarding_failure=35, unauthorised=9, pending=2)
    assert answer["dispositions"] == {"none": 48, "quarantine": 3, "reject": 36, "unknown": 0}
    days = [(d["day"], d["messages"], d["dmarc_pass"], d["dmarc_pass_rate"], d["classes"])
            for d in answer["days"]]
    assert days == [
        ("2026-11-01", 15, 10, round(10 / 15, 6), classes(aligned=10, forwarding_failure=5)),
        ("2026-11-02", 37, 7, round(7 / 37, 6), classes(aligned=7, forwarding_failure=30)),
        ("2026-11-03", 23, 20, round(20 / 23, 6), classes(aligned=20, unauthorised=3)),
        ("2026-11-04", 2, 2, 1.0, classes(pending=2)),
        ("2026-11-05", 10, 4, 0.4, classes(aligned=4, unauthorised=6)),
    ]
    summary = client.get("/api/v1/summary").json()  # the same figures as the summary's
    assert [d["classes"] for d in summary["days"]] == [d["classes"] for d in answer["days"]]


def test_top_sources_are_the_largest_addresses_with_their_senders(client: httpx.Client) -> None:
    top = get(client)["top_sources"]
    assert [(s["source_ip"], s["messages"], s["dmarc_pass"], s["dmarc_pass_rate"]) for s in top] == [
        ("198.51.100.7", 35, 0, 0.0), ("192.0.2.10", 23, 23, 1.0), ("192.0.2.11", 20, 20, 1.0),
        ("203.0.113.2", 6, 0, 0.0), ("203.0.113.1", 3, 0, 0.0)]
    assert [s["sender"] and s["sender"]["sender"] for s in top] == [
        "Example Forwarder", "Example Mail", "Example Mail", None, None]  # null: not identified yet
    assert top[0]["sender"]["service_type"] == "forwarder"
    assert (top[1]["first_day"], top[1]["last_day"]) == ("2026-11-01", "2026-11-05")
    ranked = client.get("/api/v1/sources", params={"limit": 10}).json()["items"]  # as /sources ranks them
    assert [(s["source_ip"], s["messages"]) for s in ranked] == [(s["source_ip"], s["messages"]) for s in top]


def test_policies_as_reported_and_as_published(client: httpx.Client) -> None:
    policies = {p["domain"]: p for p in get(client)["policies"]}
    assert list(policies) == ["example.com", "example.org"]
    com = policies["example.com"]
    reject = {"p": "reject", "sp": "reject", "pct": 100, "adkim": "r", "aspf": "r", "np": None}
    quarantine = {**reject, "p": "quarantine", "sp": "quarantine", "np": "reject"}
    none = {**reject, "p": "none", "sp": "none"}
    assert (com["policy"], com["reported_at"]) == (reject, stamp(5))  # the latest report's
    # one reporter naming np=reject does not split the run of reporters that do not say it
    assert com["reported"] == [
        {"from": stamp(1), "until": "2026-11-01T23:59:59Z", "policy": none, "reports": 1},
        {"from": stamp(2), "until": "2026-11-04T23:59:59Z", "policy": quarantine, "reports": 3},
        {"from": stamp(5), "until": "2026-11-05T23:59:59Z", "policy": reject, "reports": 1},
    ]
    assert [(i["from"], i["until"], i["last_checked"], i["policy"]) for i in com["dns"]] == [
        (stamp(-6), stamp(2, 12), stamp(-6), {**none, "np": None}),
        (stamp(2, 12), stamp(5, 6), stamp(3, 12), quarantine),
        (stamp(5, 6), None, stamp(5, 6), reject),
    ]
    assert com["dns"][2]["records"] == ["other text", "v=DMARC1; p=reject; rua=mailto:d@example.com"]
    assert com["dns"][2]["outcome"] == "answer"
    org = policies["example.org"]
    assert org["policy"] == {**reject, "np": None}
    assert [i["policy"] for i in org["dns"]] == [{**reject, "sp": "none", "pct": 50}]


def test_filters_narrow_figures_and_policies(client: httpx.Client) -> None:
    window = get(client, since="2026-11-03", until="2026-11-04")
    assert (window["messages"], [d["day"] for d in window["days"]]) == (25, ["2026-11-03", "2026-11-04"])
    [com] = window["policies"]
    assert com["domain"] == "example.com" and com["reported_at"] == stamp(4)
    assert [(r["policy"]["p"], r["reports"]) for r in com["reported"]] == [("quarantine", 2)]
    # only the DNS interval that held during the window
    assert [(i["from"], i["policy"]["p"]) for i in com["dns"]] == [(stamp(2, 12), "quarantine")]

    org = get(client, domain="example.org")
    assert (org["messages"], org["dispositions"]["reject"]) == (30, 30)
    assert [p["domain"] for p in org["policies"]] == ["example.org"]
    assert [s["source_ip"] for s in org["top_sources"]] == ["198.51.100.7"]

    network = get(client, source_ip="203.0.113.0/24")
    assert (network["messages"], network["classes"]["unauthorised"]) == (9, 9)
    assert network["dmarc_pass_rate"] == 0.0
    assert [s["source_ip"] for s in network["top_sources"]] == ["203.0.113.2", "203.0.113.1"]
    assert [p["reported_at"] for p in network["policies"]] == [stamp(5)]

    empty = get(client, since="2026-12-01")
    assert (empty["messages"], empty["days"], empty["top_sources"], empty["policies"]) == (0, [], [], [])
    assert empty["dmarc_pass_rate"] is None


def test_days_as_csv(client: httpx.Client) -> None:
    response = client.get("/api/v1/overview", params={"format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows == list(csv.DictReader(io.StringIO(
        client.get("/api/v1/overview", headers={"Accept": "text/csv"}).text)))
    assert [(r["day"], r["messages"], r["aligned"], r["forwarding_failure"], r["pending"]) for r in rows] == [
        ("2026-11-01", "15", "10", "5", "0"), ("2026-11-02", "37", "7", "30", "0"),
        ("2026-11-03", "23", "20", "0", "0"), ("2026-11-04", "2", "0", "0", "2"),
        ("2026-11-05", "10", "4", "0", "0")]
    assert rows[4]["dmarc_pass_rate"] == "0.4" and rows[4]["unauthorised"] == "6"
    filtered = list(csv.DictReader(io.StringIO(
        client.get("/api/v1/overview", params={"format": "csv", "domain": "example.org"}).text)))
    assert [(r["day"], r["messages"]) for r in filtered] == [("2026-11-02", "30")]


def test_needs_a_token(client: httpx.Client, live_server: LiveServer) -> None:
    anonymous = live_server.client(None).get("/api/v1/overview")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    bad = client.get("/api/v1/overview", params={"until": "2026-11-01", "since": "2026-11-05"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
