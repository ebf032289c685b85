"""The judging stage over the store: what is due, what a DNS change makes due again, and a
history that changes while a run is under way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.models import RecordVerdict, Report, ReportClassTotals, ReportSourceClasses, table_of
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


def test_a_report_deleted_while_its_batch_is_judged_gets_no_rows(engine, pipeline, tmp_path, monkeypatch):
    """The verdict rows carry no foreign keys (migration 0012): the judge checks each batch's
    reports in the transaction that writes it, and writes nothing for one gone since."""
    from ingest import recompute as stage

    kept, gone = store(pipeline, tmp_path, "kept"), store(pipeline, tmp_path, "gone")
    judge_batch = stage._judge_batch

    def judged_then_deleted(*args):  # type: ignore[no-untyped-def]
        judged = judge_batch(*args)
        with engine.begin() as conn:
            conn.execute(REPORTS.delete().where(REPORTS.c.id == gone))
        return judged

    monkeypatch.setattr(stage, "_judge_batch", judged_then_deleted)
    assert recompute(engine).reports == 1
    with engine.connect() as conn:
        for table in (VERDICTS, table_of(ReportClassTotals), table_of(ReportSourceClasses)):
            assert set(conn.execute(select(table.c.report_id)).scalars()) == {kept}, table.name
    assert due(engine) == set()


def test_the_record_reader_gives_each_record_its_parts_in_order(engine, pipeline, tmp_path):
    """RecordReader gathers a record's DKIM results, SPF results and reasons in the database;
    it must give what the tables hold, in `seq` order, with missing values as None and
    empty reason types left out, and records with none of them get empty tuples."""
    from ingest.record_verdict import DkimAuth, RecordFacts, SpfAuth
    from ingest.verdict_rows import RecordReader

    records = [
        samples.Rec(source_ip="192.0.2.7", count="4", dkim="fail",
                    dkim_results=[("zeta.example", "s2", "fail"), ("alpha.example", None, "pass"),
                                  ("example.com", "s1", "temperror")],
                    spf_results=[("example.com", "mfrom", "pass"), ("mail.example.com", "helo", "none")],
                    reasons=[("forwarded", "via a list"), ("local_policy", None)]),
        samples.Rec(source_ip="2001:db8::1", count="1", dkim_results=[], spf_results=[],
                    reasons=[("", "an empty type"), ("mailing_list", None)]),
        samples.Rec(source_ip="198.51.100.9", envelope_from=None),
    ]
    xml = samples.aggregate_xml(records, report_id="parts", begin=str(int(BEGIN.timestamp())),
                                end=str(int((BEGIN + DAY).timestamp()) - 1))
    (tmp_path / "parts.xml").write_bytes(xml)
    report_id = pipeline.ingest_path(tmp_path / "parts.xml").reports[0].report_id
    store(pipeline, tmp_path, "other")  # another report's rows must not leak in

    reader = RecordReader(engine.dialect.name, {"198.51.100.9": "forwarder"})
    with engine.connect() as conn:
        read = reader.read(conn, [report_id])
        again = reader.read(conn, [report_id])  # the parts now come from its caches
    assert read == again and list(read) == [report_id]
    assert read[report_id] == [
        (1, 4, RecordFacts("192.0.2.7", "example.com", "example.com", "fail", "pass",
                           (DkimAuth("zeta.example", "s2", "fail"), DkimAuth("alpha.example", None, "pass"),
                            DkimAuth("example.com", "s1", "temperror")),
                           (SpfAuth("example.com", "mfrom", "pass"),
                            SpfAuth("mail.example.com", "helo", "none")),
                           ("forwarded", "local_policy"), None)),
        (2, 1, RecordFacts("2001:db8::1", "example.com", "example.com", "pass", "pass", (), (),
                           ("mailing_list",), None)),
        (3, 1, RecordFacts("198.51.100.9", "example.com", None, "pass", "pass",
                           (DkimAuth("example.com", "s1", "pass"),),
                           (SpfAuth("example.com", "mfrom", "pass"),),
                           (), "forwarder")),
    ]
