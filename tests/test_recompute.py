"""The judging stage over the store: what is due, what a DNS change makes due again, and a
history that changes while a run is under way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.models import RecordVerdict, Report, ReportClassTotals, table_of
from ingest.dns_snapshot_store import record_answers
from ingest.dns_source import DnsAnswer, DnsOutcome
from ingest.recompute import mark_due, recompute
from tests import samples

REPORTS = table_of(Report)
VERDICTS = table_of(RecordVerdict)
DAY = timedelta(days=1)
BEGIN = datetime(2026, 6, 1, tzinfo=UTC)
ALLOW = DnsAnswer("example.com", "TXT", DnsOutcome.ANSWER, ("v=spf1 ip4:192.0.2.0/24 -all",))
DENY = DnsAnswer("example.com", "TXT", DnsOutcome.ANSWER, ("v=spf1 -all",))


def store(pipeline, tmp_path, name: str, domain: str = "example.com", selector: str = "s1") -> int:
    xml = samples.aggregate_xml([samples.Rec(
        source_ip="192.0.2.7", count="4", header_from=domain, envelope_from=domain, dkim="fail", spf="pass",
        dkim_results=[(domain, selector, "fail")], spf_results=[(domain, "mfrom", "pass")])],
        report_id=name, domain=domain, begin=str(int(BEGIN.timestamp())),
        end=str(int((BEGIN + DAY).timestamp()) - 1))
    path = tmp_path / f"{name}.xml"
    path.write_bytes(xml)
    return pipeline.ingest_path(path).reports[0].report_id


def spf_results(engine) -> dict[int, str | None]:
    with engine.connect() as conn:
        return dict(conn.execute(select(VERDICTS.c.report_id, VERDICTS.c.spf_result)).all())


def due(engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(select(REPORTS.c.id).where(REPORTS.c.verdicts_at.is_(None))).scalars())


def test_new_reports_are_due_once(engine, pipeline, tmp_path):
    first = store(pipeline, tmp_path, "a")
    assert due(engine) == {first}
    assert recompute(engine).reports == 1
    assert due(engine) == set() and recompute(engine).reports == 0
    assert recompute(engine, everything=True).reports == 1  # rua align --recompute
    with engine.connect() as conn:
        totals = conn.execute(select(table_of(ReportClassTotals))).all()
    assert [(row.record_class, row.messages, row.records) for row in totals] == [("aligned", 4, 1)]


def test_a_dns_change_makes_the_reports_it_affects_due(engine, pipeline, tmp_path):
    mine = store(pipeline, tmp_path, "mine")
    other = store(pipeline, tmp_path, "other", domain="example.org", selector="k9")
    recompute(engine)
    with engine.begin() as conn:
        assert mark_due(conn, domains=["EXAMPLE.com"]) == 1
    assert due(engine) == {mine}
    recompute(engine)
    with engine.begin() as conn:
        mark_due(conn, dkim_keys=[("example.org", "k9")])
    assert due(engine) == {other}


def test_a_history_that_grows_during_a_run_is_applied_before_it_ends(engine, pipeline, tmp_path):
    """A snapshot taken by another process while a run judges: the run's reports are judged
    again against the new history, so no verdict rests on DNS that had already changed."""
    ids = [store(pipeline, tmp_path, f"r{n}") for n in range(3)]
    with engine.begin() as conn:
        record_answers(conn, [ALLOW], BEGIN - DAY)
    snapshots_taken = []

    def progress(stats):
        if not snapshots_taken:  # after the first batch, the record tightens
            with engine.begin() as conn:
                record_answers(conn, [DENY], BEGIN - DAY / 2)
            snapshots_taken.append(stats.reports)

    stats = recompute(engine, batch_records=1, progress=progress)
    assert snapshots_taken == [1]
    assert stats.reports == 3 + 3  # the first pass, then every report of it again
    assert spf_results(engine) == dict.fromkeys(ids, "fail")
