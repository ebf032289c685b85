"""TLS reports stored exactly once and read back over the API, on SQLite and PostgreSQL.

Ingest goes through the real pipeline (files, gzip, e-mail with application/tlsrpt+gzip, the
upload endpoint); reads go to a real `rua serve` with real tokens, as a script would.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import threading
from datetime import UTC, datetime
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, select, text

from app.api_tokens import Scope
from app.models import table_of
from app.tls_models import TlsFailureRow, TlsPolicyRow, TlsReportRow
from ingest.errors import LimitExceeded
from ingest.limits import UnpackLimits
from ingest.pipeline import IngestPipeline, InputOutcome
from ingest.tls_store import MAX_TLS_REPORT_BYTES, store_tls_report
from ingest.unpack import Payload, ReportKind
from tests.conftest import FIXTURES, count_rows
from tests.live_server import LiveServer

TLS_FIXTURES = FIXTURES / "tls"
TABLES = ("tls_report", "tls_policy", "tls_failure", "tls_report_origin")


def fixture_bytes(name: str) -> bytes:
    return (TLS_FIXTURES / name).read_bytes()


def ingest(pipeline: IngestPipeline, directory: Path, name: str, data: bytes) -> InputOutcome:
    path = directory / name
    path.write_bytes(data)
    return pipeline.ingest_path(path)


def only_report(outcome: InputOutcome) -> Any:
    assert len(outcome.reports) == 1, outcome
    report = outcome.reports[0]
    assert report.kind == "tls", report
    return report


REPORT_FILENAME = "sender.example!example.com!1791590400!1791676799.json"


def tlsrpt_email(report: bytes, gzipped: bool = True) -> bytes:
    """An RFC 8460 §5 report message: multipart/report; report-type=tlsrpt, the report attached."""
    message = MIMEMultipart("report", report_type="tlsrpt")
    message["From"] = "tlsrpt@sender.example"
    message["To"] = "tls-reports@example.com"
    message["Subject"] = "Report Domain: example.com Submitter: sender.example Report-ID: <r@sender.example>"
    message["TLS-Report-Domain"] = "example.com"
    message["TLS-Report-Submitter"] = "sender.example"
    message.attach(MIMEText("This is an aggregate TLS report from sender.example", "plain"))
    subtype, payload = ("tlsrpt+gzip", gzip.compress(report)) if gzipped else ("tlsrpt+json", report)
    part = MIMEApplication(payload, subtype)
    part.add_header("Content-Disposition", "attachment",
                    filename=REPORT_FILENAME + (".gz" if gzipped else ""))
    message.attach(part)
    return message.as_bytes()


def with_counts(data: bytes, successful: int) -> bytes:
    """The same report re-issued with another success count: same identity, other content."""
    document = json.loads(data)
    document["policies"][0]["summary"]["total-successful-session-count"] = successful
    return json.dumps(document).encode()


# -- storing, exactly once -------------------------------------------------------------------------

def test_stored_with_every_field(pipeline: IngestPipeline, engine: Engine, tmp_path: Path) -> None:
    outcome = ingest(pipeline, tmp_path, "every.json", fixture_bytes("every-result-type.json"))
    assert outcome.status == "ok"
    report = only_report(outcome)
    assert (report.status, report.records, report.conflict_of, report.notes) == ("new", 1, None, [])
    reports, policies, failures_table = (table_of(model)
                                         for model in (TlsReportRow, TlsPolicyRow, TlsFailureRow))
    with engine.connect() as conn:
        row = conn.execute(select(reports)).one()
        failures = conn.execute(select(failures_table).order_by(failures_table.c.policy_seq,
                                                                failures_table.c.seq)).all()
        policy = conn.execute(select(policies)).one()
    assert (row.organization_name, row.report_id, row.contact_info, row.successful, row.failed,
            row.policy_count) == ("Thorough Reporter", "thorough-11", "mailto:tlsrpt@thorough.example",
                                  1000, 66, 1)
    assert row.original_sha256 == outcome.sha256 and row.id == report.report_id
    assert row.date_begin == datetime(2026, 10, 11, tzinfo=UTC)
    assert row.policy_domains == ["example.com"] and row.notes == []
    assert [f.failed_session_count for f in failures] == list(range(1, 12))
    assert failures[-1].receiving_mx_helo == "mx2.example.com"
    assert policy.policy_type == "sts" and policy.mx_hosts == ["*.example.com"]
    assert policy.policy_strings[0] == "version: STSv1"


def test_same_report_again_is_a_duplicate(pipeline: IngestPipeline, engine: Engine, tmp_path: Path) -> None:
    """Once as sent, then in other containers and encodings: one report, every delivery kept."""
    data = fixture_bytes("bom-numbers-as-strings.json")
    first = only_report(ingest(pipeline, tmp_path, "a.json", data))
    assert first.status == "new" and "UTF-8 byte order mark removed" in first.notes
    before = {table: count_rows(engine, table) for table in TABLES}
    again = only_report(ingest(pipeline, tmp_path, "a.json", data))
    assert (again.status, again.report_id, again.records) == ("duplicate", first.report_id, 1)
    # the same content without the BOM, with numbers as numbers, other key order, gzipped
    document = json.loads(data.decode("utf-8-sig"))
    document["policies"][0]["summary"] = {"total-failure-session-count": 8,
                                          "total-successful-session-count": 1200}
    document["policies"][0]["failure-details"][0]["failed-session-count"] = 8
    reencoded = gzip.compress(json.dumps(dict(reversed(document.items())), indent=1).encode())
    third = only_report(ingest(pipeline, tmp_path, "a.json.gz", reencoded))
    assert (third.status, third.report_id) == ("duplicate", first.report_id)
    after = {table: count_rows(engine, table) for table in TABLES}
    # a.json twice is one delivery (same bytes, same place); the gzip is another
    assert after == {**before, "tls_report_origin": before["tls_report_origin"] + 1}
    with engine.connect() as conn:
        locations = conn.execute(text("SELECT location FROM tls_report_origin ORDER BY received_at")) \
            .scalars().all()
    assert [Path(location).name for location in locations] == ["a.json", "a.json.gz"]


def test_other_content_under_the_same_identity_is_a_flagged_copy(
        pipeline: IngestPipeline, engine: Engine, tmp_path: Path) -> None:
    data = fixture_bytes("mx-host-string.json")
    first = only_report(ingest(pipeline, tmp_path, "first.json", data))
    changed = only_report(ingest(pipeline, tmp_path, "changed.json", with_counts(data, 101)))
    assert (changed.status, changed.conflict_of) == ("new", first.report_id)
    assert changed.report_id != first.report_id
    assert any(f"same identity as TLS report {first.report_id}" in note for note in changed.notes)
    # each copy is itself stored once
    changed_again = only_report(ingest(pipeline, tmp_path, "changed-again.json", with_counts(data, 101)))
    assert changed_again.report_id == changed.report_id
    assert only_report(ingest(pipeline, tmp_path, "first-again.json", data)).report_id == first.report_id
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, conflict_of_id, successful FROM tls_report ORDER BY id")).all()
    assert [tuple(row) for row in rows] == [(first.report_id, None, 100),
                                            (changed.report_id, first.report_id, 101)]


def test_identity_is_organization_and_report_id(pipeline: IngestPipeline, tmp_path: Path) -> None:
    """Case and spacing of the organisation make neither another report nor other content;
    another report-id is another report."""
    data = fixture_bytes("contact-info-null.json")
    first = only_report(ingest(pipeline, tmp_path, "1.json", data))
    refolded = only_report(ingest(pipeline, tmp_path, "2.json", data.replace(b'"Mailer Example"',
                                                                               b'"MAILER   example"')))
    assert (refolded.status, refolded.report_id) == ("duplicate", first.report_id)
    other = data.replace(b"mailer-2026-10-05-example.org", b"mailer-2026-10-06-example.org")
    another = only_report(ingest(pipeline, tmp_path, "3.json", other))
    assert (another.status, another.conflict_of) == ("new", None)


@pytest.mark.parametrize("gzipped", [True, False], ids=["tlsrpt+gzip", "tlsrpt+json"])
def test_tlsrpt_email_is_stored(pipeline: IngestPipeline, engine: Engine, tmp_path: Path,
                                gzipped: bool) -> None:
    data = fixture_bytes("no-sender-ip-or-mx.json")
    outcome = ingest(pipeline, tmp_path, "report.eml", tlsrpt_email(data, gzipped))
    assert outcome.status == "ok"
    report = only_report(outcome)
    assert (report.status, report.records) == ("new", 2)
    assert report.location.endswith("!1791676799.json" + (".gz" if gzipped else ""))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT organization_name FROM tls_report")).scalar_one() == "Big Cloud Mail"
        unsent = text("SELECT count(*) FROM tls_failure WHERE sending_mta_ip IS NULL")
        assert conn.execute(unsent).scalar_one() == 2
    # the bare JSON of the same report is the same report
    assert only_report(ingest(pipeline, tmp_path, "report.json", data)).status == "duplicate"


def test_unreadable_reports_fail_alone_and_are_kept(pipeline: IngestPipeline, engine: Engine,
                                                    tmp_path: Path) -> None:
    broken = b'{"organization-name": "x", "policies": "none", "report-id": "1"}'
    outcome = ingest(pipeline, tmp_path, "broken.json", broken)
    report = only_report(outcome)
    assert (outcome.status, report.status, report.reason) == ("failed", "failed", "malformed_report")
    assert "no date-range" in (report.error or "")
    assert count_rows(engine, "tls_report") == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM original")).scalar_one() == "failed"


def test_oversized_reports_are_refused() -> None:
    """Refused before parsing or touching the database (this engine has no tables at all)."""
    assert MAX_TLS_REPORT_BYTES == 64 * 1024 * 1024
    huge = b"{" + b" " * MAX_TLS_REPORT_BYTES + b"}"
    payload = Payload("huge.json", ReportKind.TLS, lambda: io.BytesIO(huge))
    with pytest.raises(LimitExceeded, match="max_tls_report_bytes"):
        store_tls_report(create_engine("sqlite://"), payload, "0" * 64)


def test_concurrent_deliveries_store_one_report(engine: Engine, data_dir: Path, tmp_path: Path) -> None:
    data = fixture_bytes("mx-host-string.json")
    paths = []
    for number in range(4):  # distinct inputs (another container each) of one report
        path = tmp_path / f"copy{number}.json"
        path.write_bytes(data + b" " * number)
        paths.append(path)
    pipeline = IngestPipeline(engine, data_dir, UnpackLimits())
    statuses: list[str] = []
    start = threading.Barrier(len(paths))

    def deliver(path: Path) -> None:
        start.wait()
        statuses.extend(r.status for r in pipeline.ingest_path(path).reports)

    threads = [threading.Thread(target=deliver, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses) == ["duplicate"] * 3 + ["new"]
    assert count_rows(engine, "tls_report") == 1 and count_rows(engine, "tls_report_origin") == 4


# -- the API ---------------------------------------------------------------------------------------

@pytest.fixture
def api(live_server: LiveServer, tmp_path: Path) -> dict[str, Any]:
    """Five reports (three domains, four reporters), a conflicting copy, a duplicate delivery."""
    pipeline = IngestPipeline(live_server.engine, live_server.data_dir, UnpackLimits())
    ids: dict[str, int] = {}
    for name in ("contact-info-null", "no-sender-ip-or-mx", "mx-host-string", "unknown-types",
                 "every-result-type"):
        outcome = ingest(pipeline, tmp_path, f"{name}.json", fixture_bytes(f"{name}.json"))
        ids[name] = only_report(outcome).report_id
    conflict = only_report(ingest(pipeline, tmp_path, "conflict.json",
                                  with_counts(fixture_bytes("every-result-type.json"), 2000)))
    ids["conflict"] = conflict.report_id
    email = tlsrpt_email(fixture_bytes("mx-host-string.json"))
    assert only_report(ingest(pipeline, tmp_path, "again.eml", email)).status == "duplicate"
    return {"client": live_server.client(Scope.READ), "ids": ids, "server": live_server}


def get(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_list_newest_first_with_policy_summaries(api: dict[str, Any]) -> None:
    client, ids = api["client"], api["ids"]
    listed = get(client, "/api/v1/tls")
    assert (listed["total"], listed["limit"], listed["offset"]) == (6, 100, 0)
    assert [item["id"] for item in listed["items"]] == [
        ids["conflict"], ids["every-result-type"], ids["unknown-types"], ids["mx-host-string"],
        ids["no-sender-ip-or-mx"], ids["contact-info-null"]]
    conflict, original = listed["items"][0], listed["items"][1]
    assert conflict["conflict_of_id"] == original["id"] and original["conflict_of_id"] is None
    cloud = next(item for item in listed["items"] if item["id"] == ids["no-sender-ip-or-mx"])
    assert cloud["organization_name"] == "Big Cloud Mail" and cloud["policy_domains"] == ["example.org"]
    assert (cloud["successful"], cloud["failed"], cloud["failure_rate"]) == (14, 5, round(5 / 19, 6))
    assert cloud["policies"] == [
        {"seq": 1, "policy_type": "sts", "policy_domain": "example.org", "mx_hosts": [], "successful": 7,
         "failed": 5, "failures": {"certificate-expired": 1, "sts-policy-fetch-error": 4}},
        {"seq": 2, "policy_type": "tlsa", "policy_domain": "example.org", "mx_hosts": [], "successful": 7,
         "failed": 0, "failures": {}}]
    null_contact = listed["items"][-1]
    assert null_contact["contact_info"] is None and null_contact["notes"] == ["contact-info is null"]
    assert null_contact["date_begin"] == "2026-10-05T00:00:00Z"

    page = get(client, "/api/v1/tls", limit=2, offset=1)
    assert page["total"] == 6 and [i["id"] for i in page["items"]] == [i["id"] for i in listed["items"][1:3]]


def test_list_filters(api: dict[str, Any]) -> None:
    client, ids = api["client"], api["ids"]

    def listed(**params: Any) -> list[int]:
        return [item["id"] for item in get(client, "/api/v1/tls", **params)["items"]]

    assert listed(domain="EXAMPLE.ORG.") == [ids["no-sender-ip-or-mx"], ids["contact-info-null"]]
    assert listed(domain=["example.net", "example.org"]) == [ids["mx-host-string"], ids["no-sender-ip-or-mx"],
                                                           ids["contact-info-null"]]
    assert listed(organization="big  CLOUD mail") == [ids["no-sender-ip-or-mx"]]
    assert listed(since="2026-10-07", until="2026-10-08") == [ids["unknown-types"], ids["mx-host-string"]]
    assert listed(since="2026-10-11T12:00:00Z") == [ids["conflict"], ids["every-result-type"]]
    assert listed(until="2026-10-05") == [ids["contact-info-null"]]
    assert listed(domain="example.com", organization="odd sender") == [ids["unknown-types"]]
    assert listed(domain="nowhere.example") == []
    for params in ({"since": "soon"}, {"since": "2026-10-09", "until": "2026-10-01"}, {"limit": 0},
                   {"format": "xml"}, {"domain": "example\x00.org"}, {"organization": "\x00"}):
        response = client.get("/api/v1/tls", params=params)
        assert response.status_code == 422, params
        assert response.headers["content-type"] == "application/problem+json"


def test_one_report_in_full(api: dict[str, Any]) -> None:
    client, ids = api["client"], api["ids"]
    detail = get(client, f"/api/v1/tls/{ids['every-result-type']}")
    assert (detail["report_id"], detail["contact_info"]) == ("thorough-11", "mailto:tlsrpt@thorough.example")
    policy = detail["policies"][0]
    assert policy["policy_strings"] == ["version: STSv1", "mode: enforce", "mx: *.example.com",
                                        "max_age: 86400"]
    assert len(policy["failure_details"]) == 11 and policy["failures"]["sts-webpki-invalid"] == 11
    assert policy["failure_details"][-1] == {
        "seq": 11, "result_type": "sts-webpki-invalid", "sending_mta_ip": "2001:db8::25",
        "receiving_mx_hostname": "mx2.example.com", "receiving_mx_helo": "mx2.example.com",
        "receiving_ip": "2001:db8::80", "failed_session_count": 11,
        "additional_information": "https://thorough.example/tls/11", "failure_reason_code": None}
    assert [d["location"].rsplit("/", 1)[-1] for d in detail["deliveries"]] == ["every-result-type.json"]

    twice = get(client, f"/api/v1/tls/{ids['mx-host-string']}")
    assert [d["container"] for d in twice["deliveries"]] == ["json", "email"]
    assert twice["notes"] == ["policy 1: mx-host given as a single value, not a list"]

    odd = get(client, f"/api/v1/tls/{ids['unknown-types']}")
    assert [p["policy_type"] for p in odd["policies"]] == ["no-policy-found", "invalid-policy-type"]
    assert odd["policies"][1]["failure_details"][0]["result_type"] == "quantum-decoherence"
    assert odd["policies"][0]["policy_domain"] is None

    conflict = get(client, f"/api/v1/tls/{ids['conflict']}")
    assert conflict["conflict_of_id"] == ids["every-result-type"] and conflict["successful"] == 2000

    for missing in ("/api/v1/tls/999999", "/api/v1/tls/0"):
        response = client.get(missing)
        assert response.status_code == (404 if missing.endswith("999999") else 422)
        assert response.headers["content-type"] == "application/problem+json"
    assert client.get("/api/v1/tls/999999").json()["detail"] == "there is no TLS report 999999"


def test_summary_per_policy_domain(api: dict[str, Any]) -> None:
    client = api["client"]
    summary = get(client, "/api/v1/tls/summary")
    rows = {(p["policy_domain"], p["policy_type"]): p for p in summary["policies"]}
    assert list(rows) == [("example.com", "invalid-policy-type"), ("example.com", "sts"),
                          ("example.net", "sts"), ("example.org", "sts"), ("example.org", "tlsa"),
                          (None, "no-policy-found")]
    # the conflicting copy restates every-result-type: left out
    assert rows[("example.com", "sts")] == {
        "policy_domain": "example.com", "policy_type": "sts", "reports": 1, "successful": 1000, "failed": 66,
        "failure_rate": round(66 / 1066, 6),
        "failures": {name: RESULT_ORDER.index(name) + 1 for name in RESULT_ORDER}}
    assert rows[("example.org", "sts")]["reports"] == 2
    assert rows[("example.org", "sts")]["successful"] == 42 + 7
    assert rows[("example.org", "sts")]["failures"] == {"certificate-expired": 1, "sts-policy-fetch-error": 4}
    assert rows[(None, "no-policy-found")]["failure_rate"] == 0.0
    assert summary["reports"] == 5
    assert (summary["successful"], summary["failed"]) == (42 + 14 + 100 + 4 + 1000, 5 + 2 + 1 + 66)
    assert summary["failures"]["certificate-expired"] == 1 + 3
    assert summary["window"] == {"since": None, "until": None}

    org = get(client, "/api/v1/tls/summary", domain="example.org", since="2026-10-06", until="2026-10-06")
    assert [(p["policy_type"], p["reports"], p["successful"]) for p in org["policies"]] == [
        ("sts", 1, 7), ("tlsa", 1, 7)]
    assert org["reports"] == 1 and org["window"]["until"] == "2026-10-07T00:00:00Z"
    empty = get(client, "/api/v1/tls/summary", organization="nobody")
    assert (empty["reports"], empty["policies"], empty["failure_rate"]) == (0, [], None)


RESULT_ORDER = ["starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
                "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
                "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid"]
"""the every-result-type fixture's order: its failed-session-counts are 1 to 11 in this order"""


def read_csv(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def test_csv_exports(api: dict[str, Any]) -> None:
    client, ids = api["client"], api["ids"]
    by_param = read_csv(client.get("/api/v1/tls", params={"format": "csv"}))
    by_accept = read_csv(client.get("/api/v1/tls", headers={"Accept": "text/csv"}))
    assert by_param == by_accept
    assert len(by_param) == 8  # one row per policy: six reports, two of them with two policies
    cloud = [row for row in by_param if row["id"] == str(ids["no-sender-ip-or-mx"])]
    assert [(r["policy_seq"], r["policy_type"], r["successful"], r["failed"], r["failures"])
            for r in cloud] == [("1", "sts", "7", "5", "certificate-expired=1; sts-policy-fetch-error=4"),
                                ("2", "tlsa", "7", "0", "")]
    assert by_param[0]["id"] == str(ids["conflict"])
    assert by_param[0]["conflict_of_id"] == str(ids["every-result-type"])
    limited = read_csv(client.get("/api/v1/tls", params={"format": "csv", "limit": 1, "offset": 2}))
    assert [r["id"] for r in limited] == [str(ids["unknown-types"])] * 2
    assert read_csv(client.get("/api/v1/tls", params={"format": "csv", "domain": "nowhere.example"})) == []

    summary = read_csv(client.get("/api/v1/tls/summary", params={"format": "csv"}))
    assert len(summary) == len(get(client, "/api/v1/tls/summary")["policies"])
    org = next(row for row in summary if (row["policy_domain"], row["policy_type"]) == ("example.org", "sts"))
    assert (org["reports"], org["successful"], org["failed"]) == ("2", "49", "5")


def test_csv_export_pages_through_many_reports(live_server: LiveServer, tmp_path: Path) -> None:
    """More reports than one export batch: every one exported once, in the list's order."""
    pipeline = IngestPipeline(live_server.engine, live_server.data_dir, UnpackLimits())
    document = json.loads(fixture_bytes("mx-host-string.json"))
    reports = []
    for number in range(520):  # the export reads 500 at a time
        document["report-id"] = f"bulk-{number}"
        reports.append(json.dumps(document).encode())
    for number, data in enumerate(reports):
        (tmp_path / f"{number}.json").write_bytes(data)
    for number in range(len(reports)):
        assert only_report(pipeline.ingest_path(tmp_path / f"{number}.json")).status == "new"
    client = live_server.client(Scope.READ)
    rows = read_csv(client.get("/api/v1/tls", params={"format": "csv"}))
    listed = [item["id"] for offset in range(0, 520, 300)
              for item in get(client, "/api/v1/tls", limit=300, offset=offset)["items"]]
    assert [int(row["id"]) for row in rows] == listed and len(set(listed)) == 520
    window = read_csv(client.get("/api/v1/tls", params={"format": "csv", "limit": 450, "offset": 60}))
    assert [int(row["id"]) for row in window] == listed[60:510]


def test_reading_needs_a_read_token(api: dict[str, Any]) -> None:
    server: LiveServer = api["server"]
    anonymous = server.client(None)
    ingest_only = server.client(Scope.INGEST)
    for path in ("/api/v1/tls", "/api/v1/tls/summary", f"/api/v1/tls/{api['ids']['mx-host-string']}"):
        response = anonymous.get(path)
        assert response.status_code == 401 and response.json()["type"] == "urn:rua:problem:unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
        forbidden = ingest_only.get(path)
        assert forbidden.status_code == 403
        assert forbidden.json()["type"] == "urn:rua:problem:insufficient-scope"
    assert server.client(Scope.ADMIN).get("/api/v1/tls").status_code == 200


def test_upload_endpoint_stores_tls_reports_once(live_server: LiveServer) -> None:
    client = live_server.client(Scope.INGEST)
    data = fixture_bytes("unknown-types.json")
    first = client.post("/api/v1/reports", content=data, headers={"Content-Type": "application/tlsrpt+json"})
    assert first.status_code == 201, first.text
    report = first.json()["reports"][0]
    assert (report["kind"], report["status"], report["records"]) == ("tls", "new", 2)
    assert "policy 2: unknown policy-type 'invalid-policy-type' kept as given" in report["notes"]
    again = client.post("/api/v1/reports", content=gzip.compress(data),
                        headers={"Content-Type": "application/tlsrpt+gzip"})
    assert again.status_code == 200, again.text
    repeated = again.json()["reports"][0]
    assert (repeated["status"], repeated["id"]) == ("duplicate", report["id"])
    listed = get(live_server.client(Scope.READ), "/api/v1/tls")
    assert [item["id"] for item in listed["items"]] == [report["id"]]
