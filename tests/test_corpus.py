"""Every file of the shared real-world corpus through the real pipeline, on both databases.

The corpus (../shared/corpus, read-only, never copied here) holds what real receivers send:
each aggregate file must yield exactly the records MANIFEST.tsv counts, failure and TLS
files must reach their own stores, and a second pass must add nothing at all.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

from ingest.pipeline import IngestPipeline, InputOutcome
from tests.conftest import count_rows

TABLES = ("original", "aggregate_report", "report_origin", "aggregate_record", "record_reason",
          "record_dkim_result", "record_spf_result")
OTHER_KIND = {"forensic": "failure", "tlsrpt": "tls"}


@dataclass(frozen=True)
class Entry:
    relpath: str
    kind: str
    record_count: int | None
    quirk: str
    sha256: str


def manifest(corpus: Path) -> list[Entry]:
    with open(corpus / "MANIFEST.tsv", newline="", encoding="utf-8") as handle:
        return [Entry(row["relpath"], row["kind"],
                      None if row["record_count"] == "-" else int(row["record_count"]),
                      row["quirk"], row["sha256"])
                for row in csv.DictReader(handle, delimiter="\t")]


def ingest_all(pipeline: IngestPipeline, corpus: Path, entries: list[Entry]) -> dict[str, InputOutcome]:
    return {entry.relpath: pipeline.ingest_path(corpus / entry.relpath) for entry in entries}


def stored_records(engine: Engine, sha256: str) -> int:
    """Records stored for the reports this input is linked to (first delivery or duplicate)."""
    with engine.connect() as conn:
        query = text("SELECT count(*) FROM aggregate_record WHERE report_id IN "
                     "(SELECT report_id FROM report_origin WHERE original_sha256 = :sha)")
        return int(conn.execute(query, {"sha": sha256}).scalar_one())


def test_manifest_matches_the_files(corpus: Path) -> None:
    """The expectations below are only as good as the manifest: it must describe these bytes."""
    entries = manifest(corpus)
    assert len(entries) == 88
    for entry in entries:
        data = (corpus / entry.relpath).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry.sha256, entry.relpath
    assert {entry.kind for entry in entries} == {"aggregate", "forensic", "tlsrpt"}


def test_every_corpus_file_yields_its_manifest_records(
        corpus: Path, pipeline: IngestPipeline, engine: Engine) -> None:
    """No crash; each aggregate file's records all stored; failure and TLS reports stored (new,
    or a duplicate where the corpus holds the same report twice).

    Every count matches the manifest, malformed files included: libxml2's recovery mode reads
    all their records (ikea's unclosed wrapper, invalid UTF-8, a broken attribute), and the
    e-mail whose zip is unreadable holds no report at all (manifest count 0): it fails.
    """
    entries = manifest(corpus)
    outcomes = ingest_all(pipeline, corpus, entries)
    problems: list[str] = []
    for entry in entries:
        outcome = outcomes[entry.relpath]
        errors = [r.error or "" for r in outcome.reports] + [outcome.error or ""]
        if any("internal error" in error for error in errors):
            problems.append(f"{entry.relpath}: crashed: {errors}")
        if outcome.sha256 != entry.sha256:
            problems.append(f"{entry.relpath}: kept as {outcome.sha256}, not by its sha256")
            continue
        if entry.kind in OTHER_KIND:
            kinds = sorted({(r.kind, r.status) for r in outcome.reports})
            if outcome.status != "ok" or len(kinds) != 1 or kinds[0][0] != OTHER_KIND[entry.kind] \
                    or kinds[0][1] not in ("new", "duplicate"):
                problems.append(f"{entry.relpath}: {entry.kind} gave {outcome.status} {kinds} "
                                f"{outcome.describe_errors()}")
            continue
        assert entry.record_count is not None
        if entry.record_count == 0:
            if outcome.status != "failed" or any(r.status in ("new", "duplicate") for r in outcome.reports):
                problems.append(f"{entry.relpath}: holds no report but gave {outcome.status}")
            continue
        statuses = sorted({r.status for r in outcome.reports})
        if outcome.status != "ok" or not set(statuses) <= {"new", "duplicate"}:
            problems.append(f"{entry.relpath}: {outcome.status} {statuses} {outcome.describe_errors()}")
        found = sum(r.records for r in outcome.reports)
        stored = stored_records(engine, entry.sha256)
        if found != entry.record_count or stored != entry.record_count:
            problems.append(f"{entry.relpath}: manifest {entry.record_count} records, pipeline "
                            f"answered {found}, database holds {stored}")
        if "malformed XML" in entry.quirk and "leading whitespace" not in entry.quirk:
            notes = [note for r in outcome.reports for note in r.notes]
            if not any("XML" in note for note in notes):
                problems.append(f"{entry.relpath}: repaired XML without a repair note: {notes}")
    assert not problems, "\n".join(problems)

    aggregate_total = sum(e.record_count or 0 for e in entries if e.kind == "aggregate")
    with engine.connect() as conn:
        origins = int(conn.execute(text("SELECT count(DISTINCT original_sha256) FROM report_origin"))
                      .scalar_one())
    assert origins == sum(1 for e in entries if e.kind == "aggregate" and e.record_count)
    assert count_rows(engine, "aggregate_record") <= aggregate_total
    assert count_rows(engine, "original") == len(entries)

    # go-dmarc-report's test_report.xml.gz differs from its .xml in one source_ip: same identity,
    # other content, so it is kept as a flagged conflicting copy rather than called a duplicate
    gz = next(e for e in entries if e.relpath.endswith("go-dmarc-report/testdata/test_report.xml.gz"))
    xml = next(e for e in entries if e.relpath.endswith("go-dmarc-report/testdata/test_report.xml"))
    gz_report = outcomes[gz.relpath].reports[0]
    assert gz_report.status == "new"
    assert gz_report.conflict_of == outcomes[xml.relpath].reports[0].report_id


def test_second_pass_over_the_corpus_adds_nothing(
        corpus: Path, pipeline: IngestPipeline, engine: Engine) -> None:
    """Idempotence: the whole corpus again is all duplicates and leaves every table as it was."""
    entries = manifest(corpus)
    first = ingest_all(pipeline, corpus, entries)
    assert sum(o.count("new") for o in first.values()) > 0
    before = {table: count_rows(engine, table) for table in TABLES}

    second = ingest_all(pipeline, corpus, entries)
    assert sum(o.count("new") for o in second.values()) == 0
    assert sum(o.records_new for o in second.values()) == 0
    stored_first = sum(o.count("new") + o.count("duplicate") for o in first.values())
    assert sum(o.count("duplicate") for o in second.values()) == stored_first
    for relpath, outcome in second.items():
        assert outcome.status == first[relpath].status, relpath
        ids = [r.report_id for r in first[relpath].reports]
        assert [r.report_id for r in outcome.reports] == ids, relpath
    assert {table: count_rows(engine, table) for table in TABLES} == before
    with engine.connect() as conn:
        receipts = conn.execute(text("SELECT min(receipts), max(receipts) FROM original")).one()
    assert tuple(receipts) == (2, 2)
