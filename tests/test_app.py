"""The web app as deployed (`tests.live_server`): health, readiness, the report listing."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api_tokens import Scope
from ingest.pipeline import IngestPipeline
from tests import samples
from tests.conftest import drop_postgres_database, free_port
from tests.live_server import RUA, LiveServer, run_server


@pytest.fixture
def server(live_server: LiveServer) -> httpx.Client:
    """A client of the live server holding a read token."""
    return live_server.client(Scope.READ)


def test_health_and_readiness(server: httpx.Client) -> None:
    """Load balancers and orchestrators probe these; both must answer 200 with a JSON status."""
    health = server.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = server.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"


def test_the_installed_script_serves_and_stops_on_sigterm(database_url: str, tmp_path: Path) -> None:
    """The other tests' servers are forked from a process with the app imported already
    (tests.preloaded_server); this one is the installed `rua` script, started from scratch."""
    with run_server(database_url, tmp_path / "server", installed=True) as live, \
            live.client(Scope.READ) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json()["status"] == "ok"
        assert client.get("/api/v1/reports").status_code == 200
    assert "Traceback" not in live.log_text()


DAY = 86400
BASE = 1_700_000_000


def ingest_reports(pipeline: IngestPipeline, tmp_path: Path) -> list[dict[str, Any]]:
    """Five reports on distinct days, one conflicting copy and one duplicate; the expected rows."""
    expected = []
    for n in range(5):
        begin = BASE + n * DAY
        records = [samples.Rec(source_ip=f"192.0.2.{i}", count=str(i + 1)) for i in range(n + 1)]
        xml = samples.aggregate_xml(records, org_name=f"org{n}.example", report_id=f"rid-{n}",
                                    domain=f"domain{n}.example", begin=str(begin),
                                    end=str(begin + DAY - 1), p="quarantine" if n % 2 else "reject")
        path = tmp_path / f"r{n}.xml.gz"
        path.write_bytes(samples.gz(xml))
        outcome = pipeline.ingest_path(path)
        assert [r.status for r in outcome.reports] == ["new"]
        expected.append({
            "id": outcome.reports[0].report_id, "org_name": f"org{n}.example", "report_id": f"rid-{n}",
            "policy_domain": f"domain{n}.example",
            "date_begin": datetime.fromtimestamp(begin, UTC),
            "date_end": datetime.fromtimestamp(begin + DAY - 1, UTC),
            "record_count": n + 1, "message_count": sum(range(1, n + 2)),
            "p": "quarantine" if n % 2 else "reject", "conflict_of_id": None,
        })
        duplicate = pipeline.ingest_path(path)
        assert [r.status for r in duplicate.reports] == ["duplicate"]
    # the same identity as report 2, with other numbers: listed too, and flagged
    conflict = tmp_path / "conflict.xml"
    conflict.write_bytes(samples.aggregate_xml(
        [samples.Rec(count="99")], org_name="org2.example", report_id="rid-2", domain="domain2.example",
        begin=str(BASE + 2 * DAY), end=str(BASE + 3 * DAY - 1), p="reject"))
    outcome = pipeline.ingest_path(conflict)
    assert outcome.reports[0].conflict_of == expected[2]["id"]
    expected.append(dict(expected[2], id=outcome.reports[0].report_id, record_count=1, message_count=99,
                         p="reject", conflict_of_id=expected[2]["id"]))
    return expected


def as_expected(item: dict[str, Any]) -> dict[str, Any]:
    """An API item in the shape of `ingest_reports`' rows; dates must name their offset."""
    out = {key: item[key] for key in ("id", "org_name", "report_id", "policy_domain", "record_count",
                                      "message_count", "p", "conflict_of_id")}
    for key in ("date_begin", "date_end"):
        moment = datetime.fromisoformat(item[key].replace("Z", "+00:00"))
        assert moment.tzinfo is not None, f"{key} {item[key]!r} has no UTC offset"
        out[key] = moment
    return out


def test_reports_listing_and_pagination(server: httpx.Client, pipeline: IngestPipeline,
                                        tmp_path: Path) -> None:
    """`/api/v1/reports` lists what was stored, newest period first, paged by limit/offset."""
    empty = server.get("/api/v1/reports")
    assert empty.status_code == 200
    assert empty.json() == {"total": 0, "limit": 100, "offset": 0, "items": []}

    expected = ingest_reports(pipeline, tmp_path)  # while the server is running
    newest_first = sorted(expected, key=lambda r: (r["date_begin"], r["id"]), reverse=True)

    page = server.get("/api/v1/reports")
    assert page.status_code == 200
    body = page.json()
    assert (body["total"], body["limit"], body["offset"]) == (6, 100, 0)
    assert [as_expected(item) for item in body["items"]] == newest_first
    conflict = next(item for item in body["items"] if item["conflict_of_id"] is not None)
    assert any("conflicting copy" in note for note in conflict["repair_notes"])
    for item in body["items"]:
        ingested = datetime.fromisoformat(item["ingested_at"].replace("Z", "+00:00"))
        assert ingested.tzinfo is not None
        assert abs((datetime.now(UTC) - ingested).total_seconds()) < 600

    pages = []
    for offset in (0, 2, 4):
        response = server.get("/api/v1/reports", params={"limit": 2, "offset": offset})
        assert response.status_code == 200
        data = response.json()
        assert (data["total"], data["limit"], data["offset"]) == (6, 2, offset)
        assert len(data["items"]) == 2
        pages.extend(data["items"])
    assert [item["id"] for item in pages] == [r["id"] for r in newest_first]

    tail = server.get("/api/v1/reports", params={"limit": 4, "offset": 5}).json()
    assert [item["id"] for item in tail["items"]] == [newest_first[5]["id"]]
    beyond = server.get("/api/v1/reports", params={"offset": 50}).json()
    assert beyond["items"] == [] and beyond["total"] == 6

    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"limit": "many"}):
        assert server.get("/api/v1/reports", params=bad).status_code == 422, bad


def test_reports_without_a_period_are_listed_last(server: httpx.Client, pipeline: IngestPipeline,
                                                  tmp_path: Path) -> None:
    """A report with a broken date_range must not push real ones off the first page, on any database."""
    undated = tmp_path / "undated.xml"
    undated.write_bytes(samples.aggregate_xml(report_id="undated").replace(
        b"<begin>1700000000</begin><end>1700086399</end>", b""))
    dated = tmp_path / "dated.xml"
    dated.write_bytes(samples.aggregate_xml(report_id="dated"))
    older = tmp_path / "older.xml"
    older.write_bytes(samples.aggregate_xml(report_id="older", begin=str(BASE - DAY), end=str(BASE - 1)))
    for path in (dated, undated, older):
        assert [r.status for r in pipeline.ingest_path(path).reports] == ["new"]
    items = server.get("/api/v1/reports").json()["items"]
    assert [item["report_id"] for item in items] == ["dated", "older", "undated"]
    assert items[-1]["date_begin"] is None
    first = server.get("/api/v1/reports", params={"limit": 1}).json()["items"]
    assert [item["report_id"] for item in first] == ["dated"]


def test_readyz_reports_a_lost_database(server: httpx.Client, database_url: str) -> None:
    """When the database goes away, /readyz must stop saying ok (and say why), /healthz not."""
    if not database_url.startswith("postgresql"):
        pytest.skip("an embedded SQLite file cannot become unreachable to a running server")
    assert server.get("/readyz").status_code == 200
    base, name = database_url.rsplit("/", 1)
    drop_postgres_database(base, name, required=True)
    ready = server.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] != "ok" and ready.json().get("error")
    assert server.get("/healthz").status_code == 200


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    """Serving an empty database would answer 500s; refuse to start and say what to do."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RUA_")}
    env.update(RUA_DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}", RUA_DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run([str(RUA), "serve", "--host", "127.0.0.1", "--port", str(free_port())],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert "rua db upgrade" in result.stderr
    assert "Traceback" not in result.stderr
