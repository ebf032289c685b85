"""Write groups: many mailbox inputs committed at once, each still judged on its own.

`IngestPipeline.ingest_group` must answer every input exactly as `ingest_stream` would, keep a
failing input's writes out without touching the others', hand inputs whose stores open their
own transactions (failure and TLS reports) to the ordinary path, and store nothing of the
group when the store breaks. Lazily committed bookkeeping must not leave later transactions
without their durable commit. Each test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DBAPIError

from app.db import create_db_engine, lazy_commit, upgrade_database
from ingest.ingest_workers import StoreFailure, ingest_group
from ingest.limits import UnpackLimits
from ingest.original_store import StoredOriginal
from ingest.pipeline import IngestPipeline, InputOutcome
from ingest.unpack import Payload, UnpackFailure
from tests import samples
from tests.conftest import count_rows
from tests.test_imap_collector import block_writes_after, not_a_report, report_email, reports_in
from tests.test_unpack import arf_report, tls_email


def statuses(outcome: InputOutcome | StoreFailure) -> list[str]:
    assert isinstance(outcome, InputOutcome), outcome
    return [report.status for report in outcome.reports]


def test_each_input_of_a_group_is_answered_on_its_own(pipeline: IngestPipeline, engine: Engine) -> None:
    """(On PostgreSQL `ingest_group` gives each input its own transactions: the same answers.)"""
    first, second = report_email("g1"), report_email("g2", container="zip")
    inputs = [(first, "imap:1"), (not_a_report(), "imap:2"), (tls_email(), "imap:3"), (second, "imap:4"),
              (first, "imap:5"), (arf_report(), "imap:6")]

    outcomes = ingest_group(pipeline, inputs)

    assert [statuses(outcome) for outcome in outcomes] == [
        ["new"], ["failed"], ["new"], ["new"], ["duplicate"], ["new"]]
    assert [outcome.status for outcome in outcomes if isinstance(outcome, InputOutcome)] == [
        "ok", "failed", "ok", "ok", "ok", "ok"]
    assert [outcome.source for outcome in outcomes if isinstance(outcome, InputOutcome)] == [
        source for _, source in inputs]
    assert reports_in(engine) == 2 and count_rows(engine, "aggregate_record") == 4
    assert count_rows(engine, "tls_report") == 1 and count_rows(engine, "failure_report") == 1
    with engine.connect() as conn:  # the same bytes twice: one original, received twice
        by_status = text("SELECT status, count(*) FROM original GROUP BY status")
        kept: dict[str, int] = dict(conn.execute(by_status).all())
        receipts = conn.execute(text("SELECT max(receipts) FROM original")).scalar_one()
    assert kept == {"ok": 4, "failed": 1} and receipts == 2


def test_a_broken_store_keeps_the_whole_group_out(pipeline: IngestPipeline, engine: Engine) -> None:
    block_writes_after(engine, 2)
    inputs = [(report_email(f"b{number}"), f"imap:{number}") for number in range(4)]

    with pytest.raises(DBAPIError):
        pipeline.ingest_group(inputs)
    assert reports_in(engine) == 0 and count_rows(engine, "original") == 0
    if engine.dialect.name != "sqlite":
        return  # the collector's groups are SQLite's alone: the rest is that path
    outcomes = ingest_group(pipeline, inputs)

    assert len(outcomes) == 4 and all(isinstance(outcome, StoreFailure) for outcome in outcomes)
    assert reports_in(engine) == 0 and count_rows(engine, "original") == 0


def test_a_report_read_twice_in_one_group_is_stored_once(pipeline: IngestPipeline, engine: Engine) -> None:
    body = report_email("twice")
    other_copy = body.replace(b"Report-ID: twice", b"Report-ID: twice (resent)")
    outcomes = ingest_group(pipeline, [(body, "imap:1"), (other_copy, "imap:2")])
    assert [statuses(outcome) for outcome in outcomes] == [["new"], ["duplicate"]]
    assert reports_in(engine) == 1 and count_rows(engine, "original") == 2


def test_lazy_commits_leave_later_transactions_durable(database_url: str) -> None:
    engine = create_db_engine(database_url)
    durable: object
    lazy: object
    if engine.dialect.name == "sqlite":
        setting, durable, lazy = "PRAGMA synchronous", 2, 1  # FULL, NORMAL
    else:
        setting, durable, lazy = "SHOW synchronous_commit", "on", "off"

        @event.listens_for(engine, "connect")
        def durable_sessions(dbapi_connection: Any, _record: Any) -> None:
            # the test server runs with commits not flushed, for speed; production's default
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO on")
            dbapi_connection.commit()
    for _ in range(2):  # the pooled connection goes from lazy to durable and back
        with lazy_commit(engine) as conn:
            assert conn.exec_driver_sql(setting).scalar() == lazy
        with engine.begin() as conn:
            assert conn.exec_driver_sql(setting).scalar() == durable
    engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_groups_do_not_nest(pipeline: IngestPipeline) -> None:
    with pipeline.store.grouped(), pytest.raises(RuntimeError, match="do not nest"), pipeline.store.grouped():
        pass


class _SteppedPipeline(IngestPipeline):
    """Waits at a barrier after writing its first input inside the group's transaction (where
    a group writes each input: `_process`), so two groups interleave as the test says."""

    barrier: threading.Barrier

    def _process(self, original: StoredOriginal, items: Iterator[Payload | UnpackFailure], source: str,
                 retry: bool = False) -> InputOutcome:
        outcome = super()._process(original, items, source, retry)
        if source.endswith(":first"):
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait(5)
        return outcome


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_groups_that_deadlock_are_tried_again(engine: Engine, data_dir: Path, limits: UnpackLimits,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """Two groups writing the same two source addresses in opposite order: PostgreSQL ends one
    as a deadlock, and that group is written again once the other has committed."""
    def email(report_id: str, ip: str) -> bytes:
        xml = samples.aggregate_xml([samples.Rec(source_ip=ip)], report_id=report_id)
        return samples.email_with([(samples.gz(xml), "application/gzip", f"{report_id}.xml.gz")])

    caplog.set_level(logging.INFO, logger="ingest.pipeline")
    barrier = threading.Barrier(2)
    pipelines = [_SteppedPipeline(engine, data_dir, limits) for _ in range(2)]
    for pipeline in pipelines:
        pipeline.barrier = barrier
    groups = [[(email("a1", "198.51.100.1"), "a:first"), (email("a2", "198.51.100.2"), "a:second")],
              [(email("b1", "198.51.100.2"), "b:first"), (email("b2", "198.51.100.1"), "b:second")]]
    results: list[list[InputOutcome | StoreFailure]] = [[], []]

    def run(number: int) -> None:
        results[number] = list(pipelines[number].ingest_group(groups[number]))

    threads = [threading.Thread(target=run, args=(number,)) for number in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [[statuses(outcome) for outcome in result] for result in results] == [[["new"], ["new"]]] * 2
    assert reports_in(engine) == 4 and count_rows(engine, "source_address") == 2
    assert "ended as a deadlock; trying it again" in caplog.text


def stored_rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(
            "SELECT r.org_name, r.report_id, r.repair_notes, r.record_count, r.conflict_of_id IS NULL, "
            "a.record_no, a.source_ip, a.count, a.disposition, a.dkim, a.spf, a.header_from "
            "FROM aggregate_report r JOIN aggregate_record a ON a.report_id = r.id "
            "ORDER BY r.org_name, r.report_id, r.id, a.record_no"))]


def answers(outcome: InputOutcome | StoreFailure) -> tuple[Any, ...]:
    assert isinstance(outcome, InputOutcome), outcome
    return (outcome.status, outcome.reason, outcome.describe_errors(),
            [(r.location, r.status, r.reason, r.records, r.notes, r.conflict_of is None)
             for r in outcome.reports])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_group_stores_what_one_input_at_a_time_stores(
        pipeline: IngestPipeline, engine: Engine, tmp_path: Path, limits: UnpackLimits,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Read ahead of its transaction or not, every input gets the same answer and rows."""
    monkeypatch.setattr("ingest.write_group.PREPARED_BYTES", 3000)  # the last report streams
    records = [samples.Rec(source_ip=f"203.0.113.{n}") for n in range(1, 5)]
    xml = samples.aggregate_xml(records, report_id="plain")
    truncated = samples.aggregate_xml(records, report_id="cut")[:-200]
    prefixed = samples.aggregate_xml(records, report_id="prefixed", prefix="d",
                                     namespace="urn:ietf:params:xml:ns:dmarc-2.0")
    changed = samples.aggregate_xml(records[:2], report_id="plain")  # same identity, other content
    large = samples.aggregate_xml([samples.Rec(source_ip=f"198.51.100.{n}") for n in range(1, 60)],
                                  report_id="large")
    inputs = [
        samples.email_with([(samples.gz(xml), "application/gzip", "plain.xml.gz")]),
        samples.email_with([(samples.zipped({"a.xml": prefixed, "b.xml": truncated}), "application/zip",
                             "two.zip")]),
        samples.email_with([(samples.gz(xml, trailing=b"\0\0junk"), "application/gzip", "again.xml.gz")]),
        samples.mbox([samples.single_part_email(samples.gz(changed)), not_a_report()]),
        samples.email_with([(samples.gz(large), "application/gzip", "large.xml.gz")]),
        not_a_report(),
    ]
    sources = [(body, f"imap:{number}") for number, body in enumerate(inputs)]

    grouped = pipeline.ingest_group(sources)

    reference_url = f"sqlite:///{tmp_path}/reference.db"
    upgrade_database(reference_url)
    reference_engine = create_db_engine(reference_url)
    reference = IngestPipeline(reference_engine, tmp_path / "reference", limits)
    one_by_one = [reference.ingest_stream(io.BytesIO(body), source) for body, source in sources]

    assert [answers(outcome) for outcome in grouped] == [answers(outcome) for outcome in one_by_one]
    assert stored_rows(engine) == stored_rows(reference_engine) != []
    assert {answers(outcome)[0] for outcome in grouped} >= {"ok", "failed", "partial"}
    reference_engine.dispose()
