"""The read API as a script sees it: a real server, real tokens, JSON and CSV, on both databases."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api_tokens import Scope
from ingest.limits import UnpackLimits
from ingest.pipeline import IngestPipeline
from tests import samples
from tests.live_server import LiveServer

DAY = 86400
NOV1 = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp())


def day(n: int) -> int:
    """Midnight UTC of November n, 2026."""
    return NOV1 + (n - 1) * DAY


@pytest.fixture
def api(live_server: LiveServer, tmp_path: Path) -> dict[str, Any]:
    """Four reports: two reporters, two domains, one three-day report, one duplicate delivery."""
    # as `rua ingest` beside `rua serve`: the same database and data directory
    pipeline = IngestPipeline(live_server.engine, live_server.data_dir, UnpackLimits())
    reports = {
        "g1": samples.aggregate_xml([
            samples.Rec(source_ip="192.0.2.10", count="10"),
            samples.Rec(source_ip="192.0.2.20", count="5", dkim="fail", spf="fail", disposition="quarantine",
                        reasons=[("forwarded", "list")]),
        ], org_name="google.com", report_id="g1", domain="example.com", begin=str(day(1)),
            end=str(day(2) - 1), p="none"),
        "g2": samples.aggregate_xml([
            samples.Rec(source_ip="192.0.2.10", count="7", header_from="news.example.com"),
            samples.Rec(source_ip="2001:db8::5", count="3", dkim="fail", spf="pass"),
        ], org_name="google.com", report_id="g2", domain="example.com", begin=str(day(2)),
            end=str(day(3) - 1), p="quarantine"),
        "m1": samples.aggregate_xml([
            samples.Rec(source_ip="198.51.100.7", count="30", dkim="fail", spf="fail", disposition="reject",
                        header_from="example.org"),
        ], org_name="Microsoft  Corporation", report_id="m1", domain="example.org", begin=str(day(1)),
            end=str(day(4) + 1), p="reject"),  # three days and a second: a multi-day report
        "x1": samples.aggregate_xml([samples.Rec(source_ip="203.0.113.1", count="2")],
                                    org_name="=HYPERLINK(\"http://evil\")", report_id="x1",
                                    domain="example.com", begin=str(day(10)), end=str(day(11) - 1)),
    }
    ids = {}
    for name, xml in reports.items():
        path = tmp_path / f"{name}.xml.gz"
        path.write_bytes(samples.gz(xml))
        ids[name] = pipeline.ingest_path(path).reports[0].report_id
    again = tmp_path / "g1-again.xml"
    again.write_bytes(reports["g1"])
    assert pipeline.ingest_path(again).reports[0].status == "duplicate"
    return {"client": live_server.client(Scope.READ), "ids": ids, "files": tmp_path}


def get(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_summary_counts_each_report_once(api: dict[str, Any]) -> None:
    client = api["client"]
    everything = get(client, "/api/v1/summary")
    assert (everything["reports"], everything["messages"], everything["records"]) == (4, 57, 6)
    assert everything["dmarc_pass"] == 22 and everything["dmarc_fail"] == 35
    assert everything["dmarc_pass_rate"] == round(22 / 57, 6)
    assert everything["spf_aligned_pass"] == 22 and everything["dkim_aligned_pass"] == 19
    assert everything["dispositions"] == {"none": 22, "quarantine": 5, "reject": 30, "unknown": 0}
    assert [(d["day"], d["messages"]) for d in everything["days"]] == [
        ("2026-11-01", 45), ("2026-11-02", 10), ("2026-11-10", 2)]

    # November 2 only: g2, and the three-day m1 (counted once, on the window's first day)
    second = get(client, "/api/v1/summary", since="2026-11-02", until="2026-11-02")
    assert (second["reports"], second["messages"]) == (2, 40)
    assert [(d["day"], d["messages"]) for d in second["days"]] == [("2026-11-02", 40)]
    assert second["window"] == {"since": "2026-11-02T00:00:00Z", "until": "2026-11-03T00:00:00Z"}
    # m1 ends one second into the 4th: the 4th overlaps, the 5th does not
    assert get(client, "/api/v1/summary", since="2026-11-04", until="2026-11-04")["messages"] == 30
    assert get(client, "/api/v1/summary", since="2026-11-05", until="2026-11-09")["messages"] == 0

    # the same window written as instants, mid-day: answered from the records, same reports
    instants = get(client, "/api/v1/summary", since="2026-11-02T12:00:00Z", until="2026-11-02T13:00:00+00:00")
    assert (instants["reports"], instants["messages"]) == (2, 40)

    filtered = get(client, "/api/v1/summary", source_ip="192.0.2.0/24", dmarc="pass")
    assert (filtered["messages"], filtered["reports"]) == (17, 2)
    assert get(client, "/api/v1/summary", org="microsoft corporation")["messages"] == 30
    assert get(client, "/api/v1/summary", header_from="NEWS.example.com")["messages"] == 7
    assert get(client, "/api/v1/summary", domain="example.org", disposition="reject")["messages"] == 30
    assert get(client, "/api/v1/summary", disposition=["quarantine", "reject"])["messages"] == 35


def test_sources_and_domains(api: dict[str, Any]) -> None:
    client = api["client"]
    sources = get(client, "/api/v1/sources")
    assert sources["total"] == 5
    assert [(s["source_ip"], s["messages"]) for s in sources["items"]] == [
        ("198.51.100.7", 30), ("192.0.2.10", 17), ("192.0.2.20", 5), ("2001:db8::5", 3), ("203.0.113.1", 2)]
    top = sources["items"][1]
    assert (top["dmarc_pass_rate"], top["first_day"], top["last_day"]) == (1.0, "2026-11-01", "2026-11-02")
    page = get(client, "/api/v1/sources", limit=2, offset=2)
    assert page["total"] == 5 and [s["source_ip"] for s in page["items"]] == ["192.0.2.20", "2001:db8::5"]
    v6 = get(client, "/api/v1/sources", source_ip="2001:db8::/32")
    assert [s["source_ip"] for s in v6["items"]] == ["2001:db8::5"]

    domains = get(client, "/api/v1/domains")
    assert [(d["domain"], d["reports"], d["messages"]) for d in domains["items"]] == [
        ("example.com", 3, 27), ("example.org", 1, 30)][::-1]
    example_com = domains["items"][1]
    assert example_com["policy"]["p"] == "reject"  # from x1, the latest report
    assert example_com["policy_reported_at"] == "2026-11-10T00:00:00Z"
    early = get(client, "/api/v1/domains", until="2026-11-02")
    assert next(d for d in early["items"] if d["domain"] == "example.com")["policy"]["p"] == "quarantine"


def test_reports_records_and_raw(api: dict[str, Any]) -> None:
    client, ids = api["client"], api["ids"]
    listed = get(client, "/api/v1/reports", domain="example.com")
    assert [r["report_id"] for r in listed["items"]] == ["x1", "g2", "g1"]
    failing = get(client, "/api/v1/reports", dmarc="fail")
    assert [r["report_id"] for r in failing["items"]] == ["m1", "g1"]  # same day: newest id first
    assert get(client, "/api/v1/reports", source_ip="203.0.113.1")["total"] == 1

    detail = get(client, f"/api/v1/reports/{ids['g1']}")
    assert detail["policy"]["domain"] == "example.com" and detail["policy"]["p"] == "none"
    assert [r["count"] for r in detail["records"]] == [10, 5]
    assert detail["records"][1]["reasons"] == [{"type": "forwarded", "comment": "list"}]
    assert detail["records"][0]["dkim_results"][0]["selector"] == "s1"
    assert len(detail["deliveries"]) == 2  # the gzip and the duplicate plain copy
    second = get(client, f"/api/v1/reports/{ids['g1']}", records_limit=1, records_offset=1)
    assert [r["record_no"] for r in second["records"]] == [2]

    raw = client.get(f"/api/v1/reports/{ids['g1']}/raw")
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/gzip"
    assert raw.content == (api["files"] / "g1.xml.gz").read_bytes()

    records = get(client, "/api/v1/records", header_from="example.org")
    assert records["total"] == 1 and records["items"][0]["dmarc"] == "fail"
    assert records["items"][0]["org_name"] == "Microsoft  Corporation"
    everything = get(client, "/api/v1/records", limit=4)
    assert everything["total"] == 6 and len(everything["items"]) == 4

    for missing in ("/api/v1/reports/999999", "/api/v1/reports/999999/raw"):
        response = client.get(missing)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 404


def read_csv(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def test_every_list_as_csv(api: dict[str, Any]) -> None:
    client = api["client"]
    for path in ("/api/v1/reports", "/api/v1/records", "/api/v1/summary", "/api/v1/sources",
                 "/api/v1/domains"):
        by_param = read_csv(client.get(path, params={"format": "csv"}))
        by_accept = read_csv(client.get(path, headers={"Accept": "text/csv"}))
        assert by_param == by_accept and by_param, path
        data = get(client, path)
        expected = len(data["days"]) if path.endswith("summary") else data["total"]
        assert len(by_param) == expected, path
        filtered = read_csv(client.get(path, params={"format": "csv", "domain": "example.org"}))
        assert 0 < len(filtered) < len(by_param), path
        if not path.endswith("summary"):  # a series, not a paged list
            limited = read_csv(client.get(path, params={"format": "csv", "limit": 1, "offset": 1}))
            assert limited == by_param[1:2], path
    # a reporter's name is never run as a spreadsheet formula
    reports = read_csv(client.get("/api/v1/reports", params={"format": "csv"}))
    assert any(row["org_name"] == "'=HYPERLINK(\"http://evil\")" for row in reports)


def test_bad_parameters_are_problems(api: dict[str, Any]) -> None:
    client = api["client"]
    for params in ({"since": "yesterday"}, {"source_ip": "300.1.2.3"},
                   {"since": "2026-11-05", "until": "2026-11-01"}, {"limit": 0}, {"limit": 1001},
                   {"offset": -1}, {"disposition": "drop"}, {"dmarc": "maybe"},
                   {"format": "xml"}):
        response = client.get("/api/v1/summary" if "limit" not in params and "offset" not in params
                              else "/api/v1/records", params=params)
        assert response.status_code == 422, params
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"], params
