"""Failure reports end to end: ingest through the pipeline, exactly once, then the API as a
script sees it (a real server, real tokens), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from app.api_tokens import Scope
from ingest.limits import UnpackLimits
from ingest.pipeline import IngestPipeline
from tests.conftest import FIXTURES, count_rows
from tests.live_server import LiveServer

FAILURE_FIXTURES = FIXTURES / "failure"
CORPUS_FAILURES = "domainaware__parsedmarc/samples/failure"
REPORTS = ["rfc6591_minimal.eml", "rfc9991_identity_alignment.eml", "missing_fields.eml", "exim_notice.eml",
           "quirks.eml"]
"""Arrival days 2026-11-01, 02, 03, 04 and 06: newest first is the reverse."""


def ingest_fixture(pipeline: IngestPipeline, name: str) -> Any:
    outcome = pipeline.ingest_path(FAILURE_FIXTURES / name)
    assert outcome.status == "ok", outcome
    [report] = outcome.reports
    return report


def stored(engine: Engine, report_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM failure_report WHERE id = :id"),
                           {"id": report_id}).mappings().one()
    return dict(row)


# -- ingest ----------------------------------------------------------------------------------------

def test_each_report_is_stored_exactly_once(pipeline: IngestPipeline, engine: Engine) -> None:
    first = ingest_fixture(pipeline, "rfc6591_minimal.eml")
    assert (first.kind, first.status, first.records) == ("failure", "new", 1)
    again = ingest_fixture(pipeline, "rfc6591_minimal.eml")
    assert (again.status, again.report_id) == ("duplicate", first.report_id)
    # the same report delivered another way (an mbox, CRLF line ends): other bytes, same report
    other_path = ingest_fixture(pipeline, "rfc6591_minimal.mbox-crlf.eml")
    assert (other_path.status, other_path.report_id) == ("duplicate", first.report_id)
    forwarded = ingest_fixture(pipeline, "forwarded.eml")
    assert (forwarded.status, forwarded.report_id) == ("duplicate", first.report_id)
    assert count_rows(engine, "failure_report") == 1
    assert count_rows(engine, "original") == 3

    row = stored(engine, first.report_id)
    assert (row["reported_domain"], row["source_ip"], row["format"]) == ("example.com", "192.0.2.10", "arf")
    assert bytes(row["source_ip_packed"]) == bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 10])
    assert str(row["arrival_day"]) == "2026-11-01"
    assert row["original_sha256"] and row["location"].endswith("rfc6591_minimal.eml")
    assert len(row["content_digest"]) == 64 and row["redacted"] in (False, 0)
    headers = row["original_headers"] if isinstance(row["original_headers"], list) \
        else json.loads(row["original_headers"])
    assert ["Subject", "Your invoice"] in headers
    assert "SECRET BODY" not in repr(row)


def test_redaction_on_ingest(engine: Engine, data_dir: Path, limits: UnpackLimits) -> None:
    redacting = IngestPipeline(engine, data_dir, limits, redact_local_parts=True)
    report = ingest_fixture(redacting, "rfc9991_identity_alignment.eml")
    assert report.status == "new"
    row = stored(engine, report.report_id)
    assert row["redacted"] in (True, 1)
    assert row["original_mail_from"] == "redacted@example.com"
    assert row["original_from"] == "redacted@example.com"
    everything = repr(row)
    for person in ("bob", "carol", "dave", "news@", "replies+"):
        assert person not in everything, person
    assert ingest_fixture(redacting, "rfc9991_identity_alignment.eml").status == "duplicate"


def test_unreadable_report_fails_alone(pipeline: IngestPipeline, engine: Engine) -> None:
    outcome = pipeline.ingest_path(FAILURE_FIXTURES / "nothing_readable.eml")
    assert outcome.status == "failed"
    [report] = outcome.reports
    assert (report.kind, report.status, report.reason) == ("failure", "failed", "malformed_report")
    assert "no failure details found" in (report.error or "")
    assert count_rows(engine, "failure_report") == 0


def test_every_corpus_failure_file_is_stored(corpus: Path, pipeline: IngestPipeline, engine: Engine) -> None:
    paths = sorted((corpus / CORPUS_FAILURES).iterdir())
    outcomes = {path.name: pipeline.ingest_path(path) for path in paths}
    assert len(outcomes) == 5
    statuses = {name: [(r.kind, r.status) for r in outcome.reports] for name, outcome in outcomes.items()}
    assert all(outcome.status == "ok" for outcome in outcomes.values()), statuses
    # LinkedIn's CRLF copy is read first (sorted names) and the LF original is the same report
    assert statuses["dmarc_ruf_report_linkedin.crlf.eml"] == [("failure", "new")]
    assert statuses["dmarc_ruf_report_linkedin.eml"] == [("failure", "duplicate")]
    assert sum(status == [("failure", "new")] for status in statuses.values()) == 4
    assert count_rows(engine, "failure_report") == 4
    with engine.connect() as conn:
        rows = set(conn.execute(text("SELECT reported_domain, source_ip, format FROM failure_report")).all())
    assert {tuple(row) for row in rows} == {
        ("domain.de", "10.10.10.10", "arf"), ("cardinal.com", "167.89.69.24", "arf"),
        ("example.com", "10.10.10.10", "arf"), ("example.com", "203.0.113.68", "non_arf")}


# -- the API ---------------------------------------------------------------------------------------

@pytest.fixture
def api(live_server: LiveServer, pipeline: IngestPipeline) -> dict[str, Any]:
    """The five fixture reports and two aggregate reports of example.com (Nov 1 and Nov 2)."""
    ids = {name: ingest_fixture(pipeline, name).report_id for name in REPORTS}
    aggregates = {name: ingest_fixture(pipeline, name).report_id
                  for name in ("aggregate_2026-11-01.xml", "aggregate_2026-11-02.xml")}
    return {"client": live_server.client(Scope.READ), "ids": ids, "aggregates": aggregates,
            "server": live_server}


def get(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def names(api: dict[str, Any], body: dict[str, Any]) -> list[str]:
    by_id = {report_id: name for name, report_id in api["ids"].items()}
    return [by_id[item["id"]] for item in body["items"]]


def test_list_newest_first_with_filters(api: dict[str, Any]) -> None:
    client = api["client"]
    everything = get(client, "/api/v1/failures")
    assert (everything["total"], everything["limit"], everything["offset"]) == (5, 100, 0)
    assert names(api, everything) == REPORTS[::-1]
    first = everything["items"][-1]
    assert first == {
        "id": api["ids"]["rfc6591_minimal.eml"], "format": "arf", "arrival_date": "2026-11-01T09:12:44Z",
        "arrival_day": "2026-11-01", "arrival_date_source": "Arrival-Date", "reported_domain": "example.com",
        "header_from": "example.com", "source_ip": "192.0.2.10", "auth_failure": ["dmarc"],
        "identity_alignment": "none", "delivery_result": "reject",
        "original_mail_from": "bounce@mailer.example.net", "original_rcpt_to": ["alice@receiver.example"],
        "original_from": "Billing <billing@example.com>", "original_subject": "Your invoice",
        "report_from": "dmarc-reports@receiver.example", "user_agent": "ReceiverMTA/2.1", "redacted": False,
        "stored_at": first["stored_at"], "notes": []}

    def listed(**params: Any) -> list[str]:
        return names(api, get(client, "/api/v1/failures", **params))

    assert listed(since="2026-11-02", until="2026-11-04") == [
        "exim_notice.eml", "missing_fields.eml", "rfc9991_identity_alignment.eml"]
    assert listed(since="2026-11-04T22:00:00Z") == ["quirks.eml", "exim_notice.eml"]
    assert listed(until="2026-11-01") == ["rfc6591_minimal.eml"]
    assert listed(domain=["EXAMPLE.com", "example.net"]) == REPORTS[:4][::-1]
    assert listed(domain="example.de") == ["quirks.eml"]
    assert listed(source_ip="192.0.2.10") == ["rfc6591_minimal.eml"]
    assert listed(source_ip="192.0.2.0/24") == ["quirks.eml", "rfc6591_minimal.eml"]
    assert listed(source_ip=["2001:db8::/32", "203.0.113.77"]) == [
        "exim_notice.eml", "rfc9991_identity_alignment.eml"]
    assert listed(auth_failure="signature") == ["rfc9991_identity_alignment.eml"]
    assert listed(auth_failure=["spf", "signature"]) == ["quirks.eml", "rfc9991_identity_alignment.eml"]
    assert listed(delivery_result="delivered") == ["missing_fields.eml", "rfc9991_identity_alignment.eml"]
    assert listed(domain="example.com", auth_failure="dmarc") == [
        "rfc9991_identity_alignment.eml", "rfc6591_minimal.eml"]

    page = get(client, "/api/v1/failures", limit=2, offset=1)
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)
    assert names(api, page) == ["exim_notice.eml", "missing_fields.eml"]

    for params in ({"source_ip": "not-an-ip"}, {"since": "yesterday"}, {"auth_failure": "nonsense"},
                   {"since": "2026-11-05", "until": "2026-11-01"}, {"limit": 0}):
        response = client.get("/api/v1/failures", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


def test_csv_export(api: dict[str, Any]) -> None:
    response = api["client"].get("/api/v1/failures", params={"format": "csv", "domain": "example.com"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["id"] for row in rows] == [str(api["ids"][name]) for name in REPORTS[:3][::-1]]
    rfc9991 = rows[1]
    assert rfc9991["auth_failure"] == "signature; dmarc"
    assert rfc9991["original_rcpt_to"] == "bob@receiver.example; carol@receiver.example"
    assert rfc9991["source_ip"] == "2001:db8::25" and rfc9991["identity_alignment"] == "dkim"
    assert rows[2]["arrival_date"] == "2026-11-01T09:12:44+00:00"
    accept = api["client"].get("/api/v1/failures", headers={"Accept": "text/csv"}, params={"limit": 1})
    assert len(list(csv.reader(io.StringIO(accept.text)))) == 2


def test_detail_with_headers_and_linked_aggregate_records(api: dict[str, Any]) -> None:
    client = api["client"]
    detail = get(client, f"/api/v1/failures/{api['ids']['rfc6591_minimal.eml']}")
    assert detail["original_headers"][:2] == [
        {"name": "Received", "value": "from mailer.example.net (mailer.example.net [192.0.2.10]) by "
                                      "mx.receiver.example with ESMTP id 4aB9; "
                                      "Sun, 01 Nov 2026 10:12:44 +0100"},
        {"name": "From", "value": "Billing <billing@example.com>"}]
    assert detail["original_headers_source"] == "message/rfc822"
    assert (detail["report_subject"], detail["report_message_id"]) == (
        "Authentication failure report for example.com", "<ruf-0001@receiver.example>")
    assert detail["original_date"] == "2026-11-01T09:12:40Z"
    assert detail["text"].startswith("This is an authentication failure report")
    assert detail["location"].endswith("rfc6591_minimal.eml") and len(detail["original_sha256"]) == 64
    # Nov 1's report, source 192.0.2.10: record 1 (header_from example.com) and record 3 (its
    # header_from is a subdomain, its policy domain example.com); not 192.0.2.11, not Nov 2
    nov1 = api["aggregates"]["aggregate_2026-11-01.xml"]
    assert detail["linked_records"] == [
        {"report_id": nov1, "record_no": 1, "org_name": "receiver.example", "begin": "2026-11-01T00:00:00Z",
         "end": "2026-11-01T23:59:59Z", "count": 4, "disposition": "reject", "dkim": "fail", "spf": "fail",
         "header_from": "example.com", "policy_domain": "example.com"},
        {"report_id": nov1, "record_no": 3, "org_name": "receiver.example", "begin": "2026-11-01T00:00:00Z",
         "end": "2026-11-01T23:59:59Z", "count": 2, "disposition": "quarantine", "dkim": "fail",
         "spf": "fail",
         "header_from": "billing.example.com", "policy_domain": "example.com"}]

    full = get(client, f"/api/v1/failures/{api['ids']['rfc9991_identity_alignment.eml']}")
    assert (full["source_port"], full["incidents"], full["dkim_selector"]) == (49152, 3, "s2026")
    assert full["identity_alignment"] == ["dkim"] and full["other_fields"] == [{"name": "X-Receiver-Trace",
                                                                              "value": "q77"}]
    assert full["dkim_canonicalized_body"] is True
    assert full["linked_records"] == []  # another source address

    notice = get(client, f"/api/v1/failures/{api['ids']['exim_notice.eml']}")
    assert notice["format"] == "non_arf" and notice["original_headers_source"] == "text"
    assert any("best-effort" in note for note in notice["notes"])


def test_missing_report_and_access(api: dict[str, Any]) -> None:
    client = api["client"]
    missing = client.get("/api/v1/failures/999999")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["type"] == "urn:rua:problem:not-found"
    assert client.get("/api/v1/failures/0").status_code == 422

    server: LiveServer = api["server"]
    anonymous = server.client(None)
    assert anonymous.get("/api/v1/failures").status_code == 401
    assert anonymous.get(f"/api/v1/failures/{api['ids']['quirks.eml']}").status_code == 401
    assert server.client(Scope.INGEST).get("/api/v1/failures").status_code == 403
    assert server.client(Scope.ADMIN).get("/api/v1/failures").status_code == 200
