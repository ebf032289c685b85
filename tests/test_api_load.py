"""The issue's load test: 20 clients post 2,000 uploads at once, a quarter of them duplicates of
earlier or concurrent uploads, to a real server on SQLite and on PostgreSQL. Every answer must
be a success and the store must hold exactly what the pipeline promises: each report once, each
distinct input once, one origin per (report, distinct input)."""

from __future__ import annotations

import gzip
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import text

from app.api_tokens import Scope
from tests import samples
from tests.conftest import count_rows
from tests.live_server import LiveServer

CLIENTS = 20
DISTINCT = 1500
SAME_BYTES = 250
"""duplicates sent as the very same bytes: one more receipt of an input already kept"""
OTHER_CONTAINER = 250
"""duplicates sent zipped: a new input, whose report is the one already stored"""


@dataclass(frozen=True)
class Upload:
    report: int
    body: bytes


def build_uploads() -> tuple[list[Upload], dict[int, int]]:
    """The 2,000 uploads in a fixed random order, and each report's record count."""
    shuffle = random.Random(20240101)
    uploads: list[Upload] = []
    records: dict[int, int] = {}
    for n in range(DISTINCT):
        records[n] = 1 + n % 7
        rows = [samples.Rec(source_ip=f"198.51.{n % 250}.{i + 1}", count=str(i + 1))
                for i in range(records[n])]
        xml = samples.aggregate_xml(rows, report_id=f"load-{n}", org_name=f"org{n % 13}.example",
                                    domain=f"d{n % 29}.example", begin=str(1_700_000_000 + 86400 * (n % 60)),
                                    end=str(1_700_000_000 + 86400 * (n % 60) + 86399))
        uploads.append(Upload(n, samples.gz(xml) if n % 2 else xml))
    originals = list(uploads)
    picked = shuffle.sample(originals, SAME_BYTES + OTHER_CONTAINER)
    uploads += [Upload(u.report, u.body) for u in picked[:SAME_BYTES]]
    for upload in picked[SAME_BYTES:]:
        xml = gzip.decompress(upload.body) if upload.report % 2 else upload.body
        uploads.append(Upload(upload.report, samples.zipped({f"load-{upload.report}.xml": xml})))
    shuffle.shuffle(uploads)
    return uploads, records


@pytest.mark.slow
def test_twenty_clients_two_thousand_uploads(live_server: LiveServer) -> None:
    uploads, records = build_uploads()
    assert len(uploads) == 2000
    token = live_server.token(Scope.INGEST)
    answers: list[tuple[Upload, int, dict[str, object]]] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS + 1)

    def client(share: list[Upload]) -> None:
        done: list[tuple[Upload, int, dict[str, object]]] = []
        with httpx.Client(base_url=live_server.url, timeout=120,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            start.wait()
            for upload in share:
                try:
                    answer = http.post("/api/v1/reports", content=upload.body)
                except httpx.TransportError as exc:  # counted as a failure, the client goes on
                    done.append((upload, 0, {"transport_error": repr(exc)}))
                    continue
                done.append((upload, answer.status_code, answer.json()))
        with lock:
            answers.extend(done)

    threads = [threading.Thread(target=client, args=(uploads[k::CLIENTS],)) for k in range(CLIENTS)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    print(f"\n{len(uploads)} uploads by {CLIENTS} clients on {live_server.engine.dialect.name}: "
          f"{seconds:.1f} s, {len(uploads) / seconds:.0f} uploads/s")

    assert len(answers) == len(uploads)
    failures = [(status, body) for _, status, body in answers if status not in (200, 201)]
    assert not failures, (len(failures), failures[:3], live_server.log_text()[-4000:])
    outcomes: Counter[str] = Counter()
    stored_as: dict[int, set[int]] = {}
    for upload, status, body in answers:
        reports = body["reports"]
        assert isinstance(reports, list) and len(reports) == 1
        outcome = reports[0]
        assert outcome["records"] == records[upload.report]
        assert status == (201 if outcome["status"] == "new" else 200)
        outcomes[outcome["status"]] += 1
        stored_as.setdefault(upload.report, set()).add(outcome["id"])
    assert outcomes == {"new": DISTINCT, "duplicate": SAME_BYTES + OTHER_CONTAINER}
    assert all(len(ids) == 1 for ids in stored_as.values())  # every copy answered with the same id

    engine = live_server.engine
    distinct_inputs = DISTINCT + OTHER_CONTAINER
    assert count_rows(engine, "aggregate_report") == DISTINCT
    assert count_rows(engine, "aggregate_record") == sum(records.values())
    assert count_rows(engine, "original") == distinct_inputs
    assert count_rows(engine, "report_origin") == distinct_inputs
    with engine.connect() as conn:
        receipts, statuses = conn.execute(text(
            "SELECT sum(receipts), count(DISTINCT status) FROM original")).one()
        assert (receipts, statuses) == (len(uploads), 1)
        assert conn.execute(text("SELECT DISTINCT status FROM original")).scalar_one() == "ok"
        per_report = Counter(row[0] for row in conn.execute(text(
            "SELECT count(*) FROM report_origin GROUP BY report_id")))
        assert per_report == {1: DISTINCT - OTHER_CONTAINER, 2: OTHER_CONTAINER}
        assert conn.execute(text("SELECT sum(record_count) FROM aggregate_report")).scalar_one() == \
            sum(records.values())
    assert not list((live_server.data_dir / "incoming").glob("*"))
