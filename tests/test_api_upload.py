"""`POST /api/v1/reports` on a real server, SQLite and PostgreSQL: every container, multipart,
duplicates, quarantine, size limits, scopes, deferred kinds, concurrency, a failing database."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import Engine, text

from app.api_tokens import Scope
from tests import samples
from tests.conftest import count_rows
from tests.live_server import LiveServer, run_server

UPLOAD = "/api/v1/reports"
PROBLEM = "application/problem+json"
TABLES = ("original", "aggregate_report", "aggregate_record", "report_origin")


def report(report_id: str, records: int, org: str = "receiver.example", begin: int = 1_700_000_000) -> bytes:
    rows = [samples.Rec(source_ip=f"192.0.2.{n + 1}", count=str(n + 1)) for n in range(records)]
    return samples.aggregate_xml(rows, report_id=report_id, org_name=org, begin=str(begin),
                                 end=str(begin + 86399))


def row_counts(engine: Engine) -> dict[str, int]:
    return {table: count_rows(engine, table) for table in TABLES}


def stored(engine: Engine, report_id: int) -> tuple[str, int, int]:
    """(report id as sent, record_count column, records actually in the table)."""
    with engine.connect() as conn:
        sent, count = conn.execute(text("SELECT report_id, record_count FROM aggregate_report "
                                        "WHERE id = :id"), {"id": report_id}).one()
        rows = conn.execute(text("SELECT count(*) FROM aggregate_record WHERE report_id = :id"),
                            {"id": report_id}).scalar_one()
    return sent, count, rows


def original(engine: Engine, sha256: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM original WHERE sha256 = :sha"),
                           {"sha": sha256}).mappings().one()
    return dict(row)


def incoming_files(server: LiveServer) -> list[Path]:
    directory = server.data_dir / "incoming"
    return list(directory.iterdir()) if directory.exists() else []


@pytest.fixture
def ingest(live_server: LiveServer) -> httpx.Client:
    return live_server.client(Scope.INGEST)


# -- every container --------------------------------------------------------------------------------

def failure_report() -> bytes:
    """An RFC 6591 failure report (multipart/report; report-type=feedback-report)."""
    message = MIMEMultipart("report", report_type="feedback-report")
    message["From"] = "dmarc@receiver.example"
    message["Subject"] = "FW: Authentication failure report"
    feedback = MIMEBase("message", "feedback-report")
    feedback.set_payload("Feedback-Type: auth-failure\nVersion: 1\nAuth-Failure: dmarc\n"
                         "Source-IP: 192.0.2.1\nReported-Domain: example.com\n")
    message.attach(MIMEText("This is an authentication failure report."))
    message.attach(feedback)
    return message.as_bytes()


TLS_REPORT = json.dumps({"organization-name": "Google Inc.", "report-id": "tls-1",
                         "date-range": {"start-datetime": "2024-01-01T00:00:00Z",
                                        "end-datetime": "2024-01-01T23:59:59Z"},
                         "policies": []}).encode()


def test_raw_upload_of_every_container(live_server: LiveServer, ingest: httpx.Client) -> None:
    """XML, gzip, zip, e-mail and mbox bodies are each unpacked and stored with their records."""
    email = samples.email_with([(samples.gz(report("eml-1", 4)), "application/gzip", "r.xml.gz")])
    cases = [
        ("xml", report("xml-1", 3), "application/xml", [("xml-1", 3)]),
        ("gzip", samples.gz(report("gz-1", 2)), "application/gzip", [("gz-1", 2)]),
        ("zip", samples.zipped({"a.xml": report("zip-1", 5), "b.xml": report("zip-2", 1)}),
         "application/zip", [("zip-1", 5), ("zip-2", 1)]),
        ("eml", email, "message/rfc822", [("eml-1", 4)]),
        ("mbox", samples.mbox([samples.email_with([(report("mbox-1", 2), "text/xml", "1.xml")]),
                               samples.email_with([(samples.gz(report("mbox-2", 6)), "application/gzip",
                                                    "2.xml.gz")])]),
         "application/mbox", [("mbox-1", 2), ("mbox-2", 6)]),
    ]
    for name, body, content_type, expected in cases:
        answer = ingest.post(UPLOAD, content=body, headers={"Content-Type": content_type})
        assert answer.status_code == 201, (name, answer.text)
        result = answer.json()
        assert [(r["status"], r["kind"], r["records"]) for r in result["reports"]] == \
            [("new", "aggregate", records) for _, records in expected], name
        assert result["reports_new"] == len(expected)
        assert result["records_new"] == sum(records for _, records in expected)
        assert result["inputs"] == [{"filename": "body", "sha256": result["inputs"][0]["sha256"],
                                     "size": len(body), "status": "ok", "error": None, "reason": None}]
        for sent, report_outcome in zip(expected, result["reports"], strict=True):
            assert stored(live_server.engine, report_outcome["id"]) == (sent[0], sent[1], sent[1])
            assert report_outcome["location"].startswith("upload:body")
        kept = original(live_server.engine, result["inputs"][0]["sha256"])
        assert (kept["status"], kept["source"], kept["size"]) == ("ok", "upload:body", len(body))
        assert (live_server.data_dir / kept["storage_path"]).is_file()
    assert row_counts(live_server.engine) == {"original": 5, "aggregate_report": 7,
                                              "aggregate_record": 23, "report_origin": 7}
    assert incoming_files(live_server) == []


def test_raw_upload_named_by_content_disposition(live_server: LiveServer, ingest: httpx.Client) -> None:
    """The recorded source carries the client's file name, without directories or control bytes."""
    answer = ingest.post(UPLOAD, content=samples.gz(report("named", 1)), headers={
        "Content-Disposition": 'attachment; filename="C:\\reports\\google.com!x\x1b[31m.xml.gz"'})
    assert answer.status_code == 201, answer.text
    result = answer.json()
    assert result["inputs"][0]["filename"] == "google.com!x [31m.xml.gz"
    assert result["reports"][0]["location"] == "upload:google.com!x [31m.xml.gz"
    assert original(live_server.engine, result["inputs"][0]["sha256"])["source"] == \
        "upload:google.com!x [31m.xml.gz"


def test_large_upload_spills_to_disk_and_is_stored(live_server: LiveServer, ingest: httpx.Client) -> None:
    """Bodies past the in-memory threshold (1 MiB), raw and as a multipart part, go through a
    temporary file that is gone afterwards."""
    big = report("big", 6000)
    assert len(big) > 2 * 1024 * 1024
    answer = ingest.post(UPLOAD, content=big)
    assert answer.status_code == 201, answer.text
    assert answer.json()["records_new"] == 6000
    other = report("big-2", 6000, org="other.example")
    answer = ingest.post(UPLOAD, files=[("files", ("big-2.xml", other, "text/xml")),
                                        ("files", ("big.xml", big, "text/xml"))])
    assert answer.status_code == 201, answer.text
    assert [(r["status"], r["records"]) for r in answer.json()["reports"]] == \
        [("new", 6000), ("duplicate", 6000)]
    assert count_rows(live_server.engine, "aggregate_record") == 12000
    assert incoming_files(live_server) == []


# -- multipart --------------------------------------------------------------------------------------

def test_multipart_with_several_files(live_server: LiveServer, ingest: httpx.Client) -> None:
    """One answer lists every file and every report; a bad file beside good ones is listed as failed
    and kept, while the good ones are stored (201)."""
    files = [
        ("files", ("one.xml", report("mp-1", 2), "text/xml")),
        ("files", ("two.xml.gz", samples.gz(report("mp-2", 3)), "application/gzip")),
        ("files", ("junk.bin", b"\x00\x01 not a report", "application/octet-stream")),
        ("other", ("three.zip", samples.zipped({"3.xml": report("mp-3", 4)}), "application/zip")),
    ]
    answer = ingest.post(UPLOAD, files=files, data={"comment": "plain fields are ignored"})
    assert answer.status_code == 201, answer.text
    result = answer.json()
    assert [i["filename"] for i in result["inputs"]] == ["one.xml", "two.xml.gz", "junk.bin", "three.zip"]
    assert [i["status"] for i in result["inputs"]] == ["ok", "ok", "failed", "ok"]
    assert [(r["input"], r["status"], r["records"]) for r in result["reports"]] == \
        [(0, "new", 2), (1, "new", 3), (2, "failed", 0), (3, "new", 4)]
    assert result["reports"][2]["reason"] == "unrecognised_input"
    assert (result["reports_new"], result["reports_failed"], result["records_new"]) == (3, 1, 9)
    assert result["reports"][3]["location"] == "upload:three.zip/3.xml"
    junk = original(live_server.engine, result["inputs"][2]["sha256"])
    assert (junk["status"], junk["source"]) == ("failed", "upload:junk.bin")
    assert row_counts(live_server.engine) == {"original": 4, "aggregate_report": 3,
                                              "aggregate_record": 9, "report_origin": 3}
    assert incoming_files(live_server) == []
    metrics = live_server.client(None).get("/metrics").text  # every input is counted
    assert 'rua_inputs_total{status="ok"} 3.0' in metrics
    assert 'rua_inputs_total{status="failed"} 1.0' in metrics


@pytest.mark.parametrize("content_type,body,kind", [
    ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="a"\r\n\r\n'
     b"just a field\r\n--xyz--\r\n", "no-file"),
    ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="f"; '
     b'filename="r.xml"\r\n\r\n<feedback>', "malformed-multipart"),
    ("multipart/form-data", b"--xyz--\r\n", "malformed-multipart"),
])
def test_multipart_without_a_readable_file(live_server: LiveServer, ingest: httpx.Client,
                                           content_type: str, body: bytes, kind: str) -> None:
    answer = ingest.post(UPLOAD, content=body, headers={"Content-Type": content_type})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["type"] == f"urn:rua:problem:{kind}"
    assert row_counts(live_server.engine)["original"] == 0


# -- duplicates and quarantine ----------------------------------------------------------------------

def test_same_upload_twice_is_a_duplicate(live_server: LiveServer, ingest: httpx.Client) -> None:
    body = samples.gz(report("twice", 3))
    first = ingest.post(UPLOAD, content=body)
    assert first.status_code == 201, first.text
    before = row_counts(live_server.engine)
    second = ingest.post(UPLOAD, content=body)
    assert second.status_code == 200, second.text
    result = second.json()
    assert [(r["status"], r["id"], r["records"]) for r in result["reports"]] == \
        [("duplicate", first.json()["reports"][0]["id"], 3)]
    assert (result["reports_new"], result["reports_duplicate"], result["records_new"]) == (0, 1, 0)
    assert row_counts(live_server.engine) == before
    assert original(live_server.engine, result["inputs"][0]["sha256"])["receipts"] == 2
    # the same report in another container is a duplicate too; that input is recorded as its origin
    third = ingest.post(UPLOAD, content=report("twice", 3))
    assert third.status_code == 200, third.text
    assert third.json()["reports"][0]["status"] == "duplicate"
    after = row_counts(live_server.engine)
    assert (after["aggregate_report"], after["aggregate_record"]) == (1, 3)
    assert (after["original"], after["report_origin"]) == (2, 2)


@pytest.mark.parametrize("body,reason", [
    (b"\x89PNG\r\n\x1a\n certainly not a report", "unrecognised_input"),
    (b"", "unrecognised_input"),
    (samples.email_with([(b"hello", "text/plain", "notes.txt")]), "unrecognised_input"),
    (b"<html><body>a web page</body></html>", "malformed_report"),
    (samples.gz(report("cut", 3))[:-40], "malformed_report"),
])
def test_unreadable_upload_is_refused_and_quarantined(live_server: LiveServer, ingest: httpx.Client,
                                                      body: bytes, reason: str) -> None:
    """Nothing stored and something failed: a 422 problem saying why; the bytes are kept, status
    failed, findable by the sha256 in the answer."""
    answer = ingest.post(UPLOAD, content=body, headers={"Content-Disposition": "attachment; filename=x.bin"})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    problem = answer.json()
    assert (problem["type"], problem["status"]) == ("urn:rua:problem:nothing-stored", 422)
    assert problem["detail"].startswith("no report could be stored: upload:x.bin")
    assert problem["errors"] and {e["reason"] for e in problem["errors"]} == {reason}
    sha256 = problem["inputs"][0]["sha256"]
    assert problem["errors"][0]["sha256"] == sha256
    assert problem["inputs"][0]["status"] == "failed"
    kept = original(live_server.engine, sha256)
    assert (kept["status"], kept["source"], kept["size"]) == ("failed", "upload:x.bin", len(body))
    assert kept["error"]
    assert (live_server.data_dir / kept["storage_path"]).is_file()
    assert count_rows(live_server.engine, "aggregate_report") == 0


def test_failure_and_tls_reports_are_stored(live_server: LiveServer, ingest: httpx.Client) -> None:
    """The endpoint takes every kind: failure and TLS reports are stored, once each."""
    for body, kind, status, code in ((failure_report(), "failure", "new", 201),
                                     (TLS_REPORT, "tls", "new", 201),
                                     (samples.gz(TLS_REPORT), "tls", "duplicate", 200)):
        answer = ingest.post(UPLOAD, content=body)
        assert answer.status_code == code, answer.text
        result = answer.json()
        assert [(r["kind"], r["status"]) for r in result["reports"]] == [(kind, status)]
        assert original(live_server.engine, result["inputs"][0]["sha256"])["status"] == "ok"
    assert count_rows(live_server.engine, "failure_report") == 1
    assert count_rows(live_server.engine, "tls_report") == 1
    # beside a new aggregate report in one upload
    answer = ingest.post(UPLOAD, files=[("files", ("tls.json", TLS_REPORT, "application/json")),
                                        ("files", ("agg.xml", report("with-tls", 1), "text/xml"))])
    assert answer.status_code == 201, answer.text
    assert [r["status"] for r in answer.json()["reports"]] == ["duplicate", "new"]


# -- size limit -------------------------------------------------------------------------------------

LIMIT = 64 * 1024


@pytest.fixture
def small_limit_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    with run_server(database_url, tmp_path / "server", env={"RUA_MAX_UPLOAD_BYTES": str(LIMIT)}) as server:
        yield server


def raw_exchange(server: LiveServer, head: bytes, body_parts: list[bytes]) -> bytes:
    """Send a request's head and some body bytes on a plain socket, then read the answer to its
    end without sending anything more."""
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=20) as sock:
        sock.sendall(head)
        for part in body_parts:
            sock.sendall(part)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def parse_answer(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_content_length_over_the_limit_is_refused_before_the_body(small_limit_server: LiveServer) -> None:
    """413 comes back while almost none of the declared body has been sent, and the server closes
    the connection rather than read the rest."""
    token = small_limit_server.token(Scope.INGEST)
    head = (f"POST {UPLOAD} HTTP/1.1\r\nHost: rua\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/gzip\r\nContent-Length: {500 * 1024 * 1024}\r\n\r\n").encode()
    status, headers, body = parse_answer(raw_exchange(small_limit_server, head, [b"\x1f\x8b" + b"x" * 100]))
    assert status == 413
    assert headers["content-type"] == PROBLEM
    assert headers["connection"] == "close"
    problem = json.loads(body)
    assert (problem["type"], problem["limit"]) == ("urn:rua:problem:upload-too-large", LIMIT)
    assert row_counts(small_limit_server.engine)["original"] == 0


def test_chunked_body_over_the_limit_is_cut_off(small_limit_server: LiveServer) -> None:
    """Without a length, reading stops once the count passes the limit: the 413 arrives although
    the body was never ended; nothing is kept, no temporary file is left."""
    token = small_limit_server.token(Scope.INGEST)
    head = (f"POST {UPLOAD} HTTP/1.1\r\nHost: rua\r\nAuthorization: Bearer {token}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    chunk = b"<" * 8192
    # just past the limit, and never the last chunk; no more, or the server closing with bytes
    # still unread would reset the connection under the answer
    chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (LIMIT // len(chunk) + 1)
    status, headers, body = parse_answer(raw_exchange(small_limit_server, head, chunks))
    assert (status, headers["connection"]) == (413, "close")
    assert json.loads(body)["type"] == "urn:rua:problem:upload-too-large"
    assert row_counts(small_limit_server.engine)["original"] == 0
    assert incoming_files(small_limit_server) == []


def test_chunked_and_exact_limit_bodies_are_accepted(small_limit_server: LiveServer) -> None:
    """Under the limit, a chunked body is read in full; a body of exactly the limit passes."""
    client = small_limit_server.client(Scope.INGEST)
    body = samples.gz(report("chunked", 40))
    answer = client.post(UPLOAD, content=iter([body[:100], body[100:]]))  # an iterator: sent chunked
    assert answer.status_code == 201, answer.text
    exact = report("exact", 1)
    exact = exact.replace(b"</feedback>\n", b"</feedback>\n" + b" " * (LIMIT - len(exact)))
    assert len(exact) == LIMIT
    answer = client.post(UPLOAD, content=exact)
    assert answer.status_code == 201, answer.text
    answer = client.post(UPLOAD, content=exact + b" ")
    assert answer.status_code == 413


# -- access -----------------------------------------------------------------------------------------

def test_upload_needs_the_ingest_scope(live_server: LiveServer) -> None:
    body = report("scoped", 1)
    anonymous = live_server.client(None).post(UPLOAD, content=body)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.headers["content-type"] == PROBLEM
    reader = live_server.client(Scope.READ).post(UPLOAD, content=body)
    assert reader.status_code == 403
    assert reader.json()["type"] == "urn:rua:problem:insufficient-scope"
    assert row_counts(live_server.engine)["original"] == 0
    assert live_server.client(Scope.INGEST).post(UPLOAD, content=body).status_code == 201
    assert live_server.client(Scope.ADMIN).post(UPLOAD, content=body).status_code == 200


def test_upload_is_documented(live_server: LiveServer) -> None:
    schema = live_server.client(Scope.READ).get("/openapi.json").json()
    operation = schema["paths"][UPLOAD]["post"]
    assert set(operation["requestBody"]["content"]) == {
        "application/octet-stream", "application/xml", "text/xml", "application/gzip", "application/zip",
        "message/rfc822", "application/mbox", "multipart/form-data"}
    assert {"200", "201", "202", "401", "403", "413", "422", "503"} <= set(operation["responses"])
    for status in ("401", "403", "413", "422", "503"):
        assert PROBLEM in operation["responses"][status]["content"]
    success = operation["responses"]["201"]["content"]["application/json"]["schema"]
    assert success == {"$ref": "#/components/schemas/UploadResult"}
    assert schema["components"]["schemas"]["UploadResult"]["examples"]


# -- concurrency and failures of the store ----------------------------------------------------------

def test_same_report_from_twenty_clients_at_once(live_server: LiveServer) -> None:
    """Exactly one upload stores it; the nineteen others answer duplicate with its id."""
    body = samples.gz(report("racing", 50))
    token = live_server.token(Scope.INGEST)
    start = threading.Barrier(20)
    answers: list[httpx.Response] = []

    def upload() -> None:
        with httpx.Client(base_url=live_server.url, timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            start.wait()
            answers.append(client.post(UPLOAD, content=body))

    threads = [threading.Thread(target=upload) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    unexpected = [(a.status_code, a.text[:300]) for a in answers if a.status_code != 200]
    assert sorted(a.status_code for a in answers) == [200] * 19 + [201], \
        (unexpected, live_server.log_text()[-3000:])
    outcomes = [a.json()["reports"][0] for a in answers]
    assert sorted(o["status"] for o in outcomes) == ["duplicate"] * 19 + ["new"]
    assert {o["id"] for o in outcomes} == {outcomes[0]["id"]}
    assert row_counts(live_server.engine) == {"original": 1, "aggregate_report": 1,
                                              "aggregate_record": 50, "report_origin": 1}
    assert original(live_server.engine, answers[0].json()["inputs"][0]["sha256"])["receipts"] == 20


def test_database_failure_answers_503_and_keeps_the_bytes(live_server: LiveServer,
                                                         ingest: httpx.Client) -> None:
    """The store breaks mid-upload (its report table is gone): 503 'try again', the input is left
    for `rua ingest --retry-failed`, and once the store is back the same upload succeeds."""
    body = samples.gz(report("unlucky", 2))
    with live_server.engine.begin() as conn:
        conn.execute(text("ALTER TABLE aggregate_report RENAME TO aggregate_report_away"))
    try:
        answer = ingest.post(UPLOAD, content=body)
    finally:
        with live_server.engine.begin() as conn:
            conn.execute(text("ALTER TABLE aggregate_report_away RENAME TO aggregate_report"))
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert answer.headers["retry-after"] == "30"
    assert "try again" in answer.json()["detail"]
    with live_server.engine.connect() as conn:
        sha256, status = conn.execute(text("SELECT sha256, status FROM original")).one()
    assert status == "processing"  # what --retry-failed picks up
    retried = ingest.post(UPLOAD, content=body)
    assert retried.status_code == 201, retried.text
    assert retried.json()["inputs"][0]["sha256"] == sha256
    assert original(live_server.engine, sha256)["status"] == "ok"
