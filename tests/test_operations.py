"""Operating Rua: `/metrics`, request ids, access and JSON logs, and the local API docs.

All against `rua serve` (real uvicorn) on SQLite and PostgreSQL, as a Prometheus scraper, a
log collector or a browser would meet them.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app.api_tokens import Scope
from tests import samples
from tests.live_server import LiveServer, run_server

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

FAMILIES = {"rua_inputs", "rua_reports_ingested", "rua_records_ingested", "rua_ingest_failures",
            "rua_http_requests", "rua_http_request_duration_seconds", "rua_database_up",
            "rua_stored_reports", "rua_stored_records", "rua_quarantined_inputs"}
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


def scrape(client: httpx.Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(metrics: Samples, name: str, **labels: str) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def families(client: httpx.Client) -> set[str]:
    return {family.name for family in text_string_to_metric_families(client.get("/metrics").text)}


def wait_for_log(server: LiveServer, found: Callable[[str], bool]) -> str:
    """The access line is written just after the response is sent: give it a moment."""
    deadline = time.monotonic() + 10
    while True:
        log = server.log_text()
        if found(log) or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


def report(report_id: str, records: int) -> bytes:
    return samples.gz(samples.aggregate_xml(
        [samples.Rec(source_ip=f"192.0.2.{n + 1}") for n in range(records)], report_id=report_id))


# -- /metrics -------------------------------------------------------------------------------------

def test_metrics_count_what_uploads_bring(live_server: LiveServer) -> None:
    """Uploads move the ingest counters by exactly what they brought in, failures by reason,
    and the store gauges follow the database."""
    public = live_server.client(None)
    before = scrape(public)
    assert families(public) >= FAMILIES
    assert value(before, "rua_database_up") == 1
    assert value(before, "rua_stored_reports") == 0

    ingest = live_server.client(Scope.INGEST)
    uploads = [
        (report("ops-1", 3), 201),
        (report("ops-1", 3), 200),  # the same report again: a duplicate, no new records
        (report("ops-2", 2), 201),
        (b"hello, this is not a report", 422),
        (b'<?xml version="1.0"?><feedback></feedback>', 422),
    ]
    for body, status in uploads:
        response = ingest.post("/api/v1/reports", content=body)
        assert response.status_code == status, response.text

    after = scrape(public)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("rua_inputs_total", status="ok") == 3
    assert delta("rua_inputs_total", status="failed") == 2
    assert delta("rua_reports_ingested_total", kind="aggregate", status="new") == 2
    assert delta("rua_reports_ingested_total", kind="aggregate", status="duplicate") == 1
    assert delta("rua_reports_ingested_total", kind="aggregate", status="failed") == 1
    assert delta("rua_reports_ingested_total", kind="unknown", status="failed") == 1
    assert delta("rua_records_ingested_total") == 5
    assert delta("rua_ingest_failures_total", reason="unrecognised_input") == 1
    assert delta("rua_ingest_failures_total", reason="malformed_report") == 1
    assert sum(v for (name, _), v in after.items() if name == "rua_ingest_failures_total") == 2
    assert value(after, "rua_stored_reports") == 2
    assert value(after, "rua_stored_records") == 5
    assert value(after, "rua_quarantined_inputs") == 2

    post = {"method": "POST", "route": "/api/v1/reports"}
    assert value(after, "rua_http_requests_total", status="201", **post) == 2
    assert value(after, "rua_http_requests_total", status="200", **post) == 1
    assert value(after, "rua_http_requests_total", status="422", **post) == 2
    assert value(after, "rua_http_request_duration_seconds_count", **post) == 5
    assert value(after, "rua_http_request_duration_seconds_sum", **post) > 0


def test_latency_is_labelled_by_route_template(live_server: LiveServer) -> None:
    """Labels carry the route template, never the raw path: ids in URLs must not each make
    a new time series."""
    reader = live_server.client(Scope.READ)
    for report_id in (1, 2, 999_999):
        assert reader.get(f"/api/v1/reports/{report_id}").status_code == 404
    assert reader.get("/no/such/page").status_code == 404
    assert reader.get("/no/other/page").status_code == 404

    metrics = scrape(live_server.client(None))
    detail = {"method": "GET", "route": "/api/v1/reports/{report_id}"}
    assert value(metrics, "rua_http_request_duration_seconds_count", **detail) == 3
    assert value(metrics, "rua_http_request_duration_seconds_bucket", le="+Inf", **detail) == 3
    assert value(metrics, "rua_http_requests_total", status="404", **detail) == 3
    assert value(metrics, "rua_http_requests_total", method="GET", route="unmatched", status="404") == 2
    routes = {dict(labels).get("route") for (name, labels) in metrics
              if name.startswith("rua_http_request")}
    assert not any(route and re.search(r"/\d|/no/", route) for route in routes), routes


def test_metrics_need_a_read_token_when_not_public(database_url: str, tmp_path: Path) -> None:
    with run_server(database_url, tmp_path / "server", env={"RUA_PUBLIC_METRICS": "false"}) as server:
        anonymous = server.client(None).get("/metrics")
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"] == "application/problem+json"
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert "rua_" not in anonymous.text
        assert server.client(Scope.INGEST).get("/metrics").status_code == 403
        for scope in (Scope.READ, Scope.ADMIN):
            assert families(server.client(scope)) >= FAMILIES
        # health probes stay open
        assert server.client(None).get("/healthz").status_code == 200


def test_store_trouble_shows_in_metrics_and_logs(live_server: LiveServer) -> None:
    """A broken store makes a 500 whose log line carries the request id, and the scrape still
    answers, saying the database is down."""
    with live_server.engine.begin() as conn:
        conn.execute(text("ALTER TABLE aggregate_report RENAME TO aggregate_report_gone"))
    reader = live_server.client(Scope.READ)
    failed = reader.get("/api/v1/reports", headers={"X-Request-ID": "broken-store-1"})
    assert failed.status_code == 500
    assert failed.headers["content-type"] == "application/problem+json"
    metrics = scrape(live_server.client(None))
    assert value(metrics, "rua_database_up") == 0
    assert ("rua_stored_reports", frozenset()) not in metrics
    assert value(metrics, "rua_http_requests_total", method="GET", route="/api/v1/reports",
                 status="500") == 1
    log = wait_for_log(live_server, lambda text: "GET /api/v1/reports 500" in text)
    error_lines = [line for line in log.splitlines() if "ERROR" in line and "[broken-store-1]" in line]
    assert error_lines, log[-3000:]
    assert "GET /api/v1/reports 500" in log


# -- request ids and logs -------------------------------------------------------------------------

def test_request_ids_are_echoed_or_made(live_server: LiveServer) -> None:
    client = live_server.client(None)
    for good in ("abc", "A-b_c.9", "x" * 64, "3f2a9c1e-7a55-4a4b-9d60-0c1a2b3c4d5e"):
        assert client.get("/healthz", headers={"X-Request-ID": good}).headers["x-request-id"] == good
    made = {client.get("/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(made) == 3 and all(GENERATED_ID.fullmatch(rid) for rid in made)
    for bad in ("x" * 65, "a b", "<script>", "id;drop", "naïve".encode(), ""):
        echoed = client.get("/healthz", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert echoed != bad and GENERATED_ID.fullmatch(echoed)
    # errors and problem documents carry one too
    assert client.get("/api/v1/reports", headers={"X-Request-ID": "no-token-1"}).headers[
        "x-request-id"] == "no-token-1"

    log = wait_for_log(live_server, lambda text: "no-token-1" in text)
    access = [line for line in log.splitlines() if "[no-token-1]" in line]
    assert len(access) == 1 and "GET /api/v1/reports 401" in access[0], log[-2000:]
    assert "uvicorn.access" not in log  # uvicorn's own access log is off: one line per request


def test_json_logs(database_url: str, tmp_path: Path) -> None:
    """RUA_LOG_FORMAT=json: every line is one JSON object, and every line written while a
    request is handled (the upload's own, in a worker thread, too) carries its id."""
    with run_server(database_url, tmp_path / "server", env={"RUA_LOG_FORMAT": "json"}) as server:
        ingest_token = server.token(Scope.INGEST)
        ingest = server.client(Scope.INGEST)
        uploaded = ingest.post("/api/v1/reports", content=report("json-1", 2),
                               headers={"X-Request-ID": "upload-1"})
        assert uploaded.status_code == 201, uploaded.text
        assert server.client(None).get("/missing", headers={"X-Request-ID": "miss-1"}).status_code == 404
        server.client(None).get("/healthz", headers={"X-Request-ID": "bad id"})

        log = wait_for_log(server, lambda text: '"miss-1"' in text and text.count('"rua.access"') >= 3)
    lines: list[dict[str, Any]] = []
    for line in log.splitlines():
        if line.strip():
            entry = json.loads(line)  # every line, uvicorn's start-up lines included
            assert {"time", "level", "logger", "message", "request_id"} <= entry.keys(), entry
            lines.append(entry)

    def access(request_id: str) -> dict[str, Any]:
        found = [e for e in lines if e["logger"] == "rua.access" and e["request_id"] == request_id]
        assert len(found) == 1, found
        return found[0]

    upload = access("upload-1")
    assert (upload["method"], upload["path"], upload["status"]) == ("POST", "/api/v1/reports", 201)
    assert upload["duration_ms"] >= 0 and upload["client"] == "127.0.0.1"
    missing = access("miss-1")
    assert (missing["path"], missing["status"]) == ("/missing", 404)
    app_lines = [e for e in lines if e["request_id"] == "upload-1" and e["logger"] != "rua.access"]
    assert app_lines, "the upload route's own log line should carry the request id"
    assert not [e for e in lines if e["request_id"] == "bad id"]
    assert any(e["logger"].startswith("uvicorn") and e["request_id"] == "-" for e in lines)
    assert ingest_token not in log and "Bearer" not in log


# -- interactive docs -----------------------------------------------------------------------------

class PageReferences(HTMLParser):
    """Every URL an HTML page makes the browser load: script, stylesheet and icon links."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, url in attrs:
            if name in ("src", "href") and url is not None:
                self.urls.append(url)


def page_references(html: str) -> list[str]:
    parser = PageReferences()
    parser.feed(html)
    return parser.urls


DOCS_PATHS = ("/docs", "/redoc", "/openapi.json", "/docs/assets/swagger-ui-bundle.js")


def test_docs_need_a_read_token_by_default(live_server: LiveServer) -> None:
    anonymous = live_server.client(None)
    for path in DOCS_PATHS:
        response = anonymous.get(path)
        assert response.status_code == 401, path
        assert response.headers["content-type"] == "application/problem+json"
        assert live_server.client(Scope.INGEST).get(path).status_code == 403, path
    reader = live_server.client(Scope.READ)
    for path in DOCS_PATHS:
        assert reader.get(path).status_code == 200, path
    schema = reader.get("/openapi.json").json()
    assert "/api/v1/reports" in schema["paths"] and "/metrics" in schema["paths"]
    assert not {"/docs", "/redoc", "/openapi.json"} & schema["paths"].keys()


def test_public_docs_load_only_from_the_server(database_url: str, tmp_path: Path) -> None:
    """The pages and everything they load come from the server itself: nothing from a CDN."""
    with run_server(database_url, tmp_path / "server", env={"RUA_PUBLIC_DOCS": "true"}) as server:
        client = server.client(None)
        loaded: set[str] = set()
        for page in ("/docs", "/redoc"):
            response = client.get(page)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/html")
            html = response.text
            assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]", html, re.IGNORECASE), html
            references = page_references(html)
            assert references and all(url.startswith("/") and not url.startswith("//")
                                      for url in references), references
            loaded.update(references)
        assert "/openapi.json" in client.get("/docs").text
        assert "persistAuthorization" in client.get("/docs").text
        assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css",
                "/docs/assets/redoc.standalone.js", "/docs/assets/favicon.png"} <= loaded
        types = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
        for url in loaded:
            asset = client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url
            assert types[Path(url).suffix] in asset.headers["content-type"], url
            assert "max-age" in asset.headers["cache-control"], url
            assert asset.headers.get("etag"), url
        assert client.get("/docs/assets/..%2Fcore.py").status_code == 404
        assert client.get("/docs/assets/core.py").status_code == 404
        schema = client.get("/openapi.json")
        assert schema.status_code == 200 and schema.json()["info"]["title"] == "Rua"
        # only the docs are opened up: the API itself still needs a token
        assert client.get("/api/v1/reports").status_code == 401
