"""The store's promises: every aggregate report exactly once, every input kept and linked.

Each test runs on SQLite and on PostgreSQL (the `database_url` fixture), through the real
pipeline: unpacking, parsing, normalising and writing, with no stand-ins.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, Table, select, text, update

from app.db import create_db_engine
from app.models import (
    Original,
    Record,
    RecordDkimResult,
    RecordReason,
    RecordSpfResult,
    Report,
    ReportOrigin,
    table_of,
)
from ingest.limits import UnpackLimits
from ingest.original_store import OriginalStore
from ingest.pipeline import IngestPipeline, InputOutcome
from tests import samples
from tests.conftest import count_rows

TABLES = ("original", "aggregate_report", "report_origin", "aggregate_record", "record_reason",
          "record_dkim_result", "record_spf_result")


def _table(model: type) -> Table:
    return model.__table__  # type: ignore[attr-defined, no-any-return]


def rows(engine: Engine, model: type, **where: object) -> list[dict[str, Any]]:
    """Every row of a model's table (optionally filtered), as dicts, in primary key order."""
    table = _table(model)
    query = select(table).order_by(*table.primary_key.columns)
    for name, value in where.items():
        query = query.where(table.c[name] == value)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def counts(engine: Engine) -> dict[str, int]:
    return {table: count_rows(engine, table) for table in TABLES}


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def statuses(outcome: InputOutcome) -> list[str]:
    return [report.status for report in outcome.reports]


def two_records() -> list[samples.Rec]:
    return [samples.Rec(), samples.Rec(source_ip="2001:db8::5", count="3", dkim="fail",
                                       dkim_results=[("example.com", "s1", "fail")])]


# -- exactly once -----------------------------------------------------------------------------

def test_same_file_twice_is_one_report(pipeline: IngestPipeline, engine: Engine, tmp_path: Path) -> None:
    """The most common re-delivery: the identical file again; nothing new may be written."""
    path = write(tmp_path, "r.xml.gz", samples.gz(samples.aggregate_xml(two_records())))
    first = pipeline.ingest_path(path)
    assert statuses(first) == ["new"] and first.status == "ok"
    assert first.reports[0].records == 2
    before = counts(engine)
    assert before["aggregate_report"] == 1 and before["aggregate_record"] == 2

    second = pipeline.ingest_path(path)
    assert statuses(second) == ["duplicate"]
    assert second.reports[0].report_id == first.reports[0].report_id
    assert second.records_new == 0
    assert counts(engine) == before
    (original,) = rows(engine, Original)
    assert original["receipts"] == 2, "a second receipt of the same bytes is counted"


def test_same_report_in_every_container_is_stored_once(
        pipeline: IngestPipeline, engine: Engine, tmp_path: Path) -> None:
    """The .xml, its .gz, a zip, the e-mail that carried it...: one report, every input linked."""
    xml = samples.aggregate_xml(two_records())
    inputs = {
        "report.xml": xml,
        "report.xml.gz": samples.gz(xml),
        "multi.xml.gz": samples.multi_member_gz(xml),
        "report.zlib": samples.raw_zlib(xml),
        "report.zip": samples.zipped({"report.xml": xml}),
        "nested.zip": samples.zipped({"inner/report.xml.gz": samples.gz(xml)}),
        "attached-gz.eml": samples.email_with([(samples.gz(xml), "application/gzip", "r.xml.gz")]),
        "attached-xml.eml": samples.email_with([(xml, "text/xml", "r.xml")]),
        "single-part.eml": samples.single_part_email(samples.gz(xml)),
        "forwarded.eml": samples.forwarded(
            samples.email_with([(samples.zipped({"r.xml": xml}), "application/zip", "r.zip")])),
        "mailbox.mbox": samples.mbox([samples.email_with([(samples.gz(xml), "application/gzip", "r.gz")])]),
    }
    outcomes = {name: pipeline.ingest_path(write(tmp_path, name, data)) for name, data in inputs.items()}

    assert statuses(outcomes["report.xml"]) == ["new"]
    report_id = outcomes["report.xml"].reports[0].report_id
    for name, outcome in list(outcomes.items())[1:]:
        assert statuses(outcome) == ["duplicate"], f"{name}: {outcome}"
        assert outcome.reports[0].report_id == report_id, name
        assert outcome.status == "ok", name
    assert count_rows(engine, "aggregate_report") == 1
    assert count_rows(engine, "aggregate_record") == 2
    assert count_rows(engine, "original") == len(inputs)

    origins = rows(engine, ReportOrigin)
    assert {origin["report_id"] for origin in origins} == {report_id}
    shas = {hashlib.sha256(data).hexdigest() for data in inputs.values()}
    assert {origin["original_sha256"] for origin in origins} == shas, "every input is linked"
    assert len(origins) == len(inputs)
    by_sha = {origin["original_sha256"]: origin["location"] for origin in origins}
    zip_location = by_sha[hashlib.sha256(inputs["nested.zip"]).hexdigest()]
    assert zip_location.endswith("nested.zip/inner/report.xml.gz"), zip_location

    before = counts(engine)
    for name in inputs:  # and all of it again
        assert statuses(pipeline.ingest_path(tmp_path / name)) == ["duplicate"]
    assert counts(engine) == before


def test_identity_is_normalised(pipeline: IngestPipeline, engine: Engine, tmp_path: Path) -> None:
    """Org name case and spacing, domain case and root dot, padded dates: still the same report."""
    first = pipeline.ingest_path(write(tmp_path, "a.xml", samples.aggregate_xml(two_records())))
    again = samples.aggregate_xml(two_records(), domain="Example.COM.", begin=" 1700000000 ",
                                  end="\n1700086399\n").replace(
        b"<org_name>receiver.example<", b"<org_name>  Receiver.EXAMPLE <")
    second = pipeline.ingest_path(write(tmp_path, "b.xml", again))
    assert statuses(first) == ["new"]
    assert statuses(second) == ["duplicate"]
    assert second.reports[0].report_id == first.reports[0].report_id
    assert count_rows(engine, "aggregate_report") == 1


@pytest.mark.parametrize("change", [
    {"org_name": "other-receiver.example"},
    {"report_id": "report-2"},
    {"domain": "example.org"},
    {"begin": "1700000001"},
    {"end": "1700086400"},
])
def test_each_identity_part_tells_reports_apart(pipeline: IngestPipeline, engine: Engine, tmp_path: Path,
                                                change: dict[str, str]) -> None:
    """Two reports differing in one identity part are two reports, not a conflict."""
    pipeline.ingest_path(write(tmp_path, "a.xml", samples.aggregate_xml(two_records())))
    outcome = pipeline.ingest_path(write(tmp_path, "b.xml", samples.aggregate_xml(two_records(), **change)))
    assert statuses(outcome) == ["new"]
    assert outcome.reports[0].conflict_of is None
    reports = rows(engine, Report)
    assert len(reports) == 2
    assert [report["conflict_of_id"] for report in reports] == [None, None]
    assert len({report["identity_hash"] for report in reports}) == 2


def test_resend_differing_in_whitespace_case_and_order_is_a_duplicate(
        pipeline: IngestPipeline, engine: Engine, tmp_path: Path) -> None:
    """Generators re-send the same report pretty-printed, with `Pass`, in another order."""
    records = [samples.Rec(source_ip="192.0.2.1", count="4"),
               samples.Rec(source_ip="192.0.2.2", count="1", dkim="fail", spf="fail",
                           disposition="quarantine", reasons=[("forwarded", "list")],
                           dkim_results=[("example.com", "s1", "fail"), ("other.example", "s2", "pass")],
                           spf_results=[("example.com", "mfrom", "softfail")]),
               samples.Rec(source_ip="2001:db8::1")]
    first = pipeline.ingest_path(write(tmp_path, "a.xml", samples.aggregate_xml(records)))
    before = counts(engine)

    resent = [samples.Rec(source_ip="2001:db8::1", dkim="Pass", spf="PASS", disposition="None",
                          dkim_results=[("Example.com", " s1 ", "Pass")],
                          spf_results=[("EXAMPLE.COM", "mfrom", "Pass")]),
              samples.Rec(source_ip=" 192.0.2.2 ", count=" 1 ", dkim="Fail", spf="fail",
                          disposition="Quarantine", reasons=[("Forwarded", "list")],
                          dkim_results=[("example.com", "s1", "FAIL"), ("other.example", "s2", "pass")],
                          spf_results=[("example.com", "MFROM", "SoftFail")]),
              samples.Rec(source_ip="192.0.2.1", count="4", header_from=" Example.com ")]
    text = samples.aggregate_xml(resent, p="Reject").decode().replace("><", ">\n   <").encode()
    second = pipeline.ingest_path(write(tmp_path, "b.xml", text))
    assert statuses(first) == ["new"]
    assert statuses(second) == ["duplicate"], second.reports
    assert second.reports[0].conflict_of is None
    assert second.reports[0].report_id == first.reports[0].report_id
    before["original"] += 1
    before["report_origin"] += 1
    assert counts(engine) == before


def test_same_identity_different_content_is_a_flagged_conflicting_copy(
        pipeline: IngestPipeline, engine: Engine, tmp_path: Path) -> None:
    """A re-send with other numbers is kept beside the first, flagged, never merged into it."""
    first = pipeline.ingest_path(write(tmp_path, "a.xml", samples.aggregate_xml(two_records())))
    changed = two_records()
    changed[1].count = "30"
    changed.append(samples.Rec(source_ip="198.51.100.7"))
    second = pipeline.ingest_path(write(tmp_path, "b.xml", samples.aggregate_xml(changed)))

    assert statuses(first) == ["new"] and statuses(second) == ["new"]
    original_id = first.reports[0].report_id
    copy_id = second.reports[0].report_id
    assert copy_id != original_id
    assert second.reports[0].conflict_of == original_id
    assert second.reports[0].records == 3

    reports = {report["id"]: report for report in rows(engine, Report)}
    assert reports[original_id]["conflict_of_id"] is None
    assert reports[copy_id]["conflict_of_id"] == original_id
    assert reports[copy_id]["identity_hash"] == reports[original_id]["identity_hash"]
    assert any("conflicting copy" in note and str(original_id) in note
               for note in reports[copy_id]["repair_notes"]), reports[copy_id]["repair_notes"]
    assert not any("conflict" in note for note in reports[original_id]["repair_notes"])
    assert [r["count"] for r in rows(engine, Record, report_id=original_id)] == [1, 3], "first copy untouched"
    assert [r["count"] for r in rows(engine, Record, report_id=copy_id)] == [1, 30, 1]

    # each copy, sent again, is a duplicate of itself
    before = counts(engine)
    third = pipeline.ingest_path(tmp_path / "b.xml")
    fourth = pipeline.ingest_path(tmp_path / "a.xml")
    assert statuses(third) == ["duplicate"] and third.reports[0].report_id == copy_id
    assert statuses(fourth) == ["duplicate"] and fourth.reports[0].report_id == original_id
    assert counts(engine) == before


def test_conflict_found_against_a_copy_whose_digest_was_never_computed(
        pipeline: IngestPipeline, engine: Engine, tmp_path: Path) -> None:
    """Digests are computed lazily from stored rows: the stored copy must digest as it parsed."""
    xml = samples.aggregate_xml(two_records(), extra_metadata="<error>dns timeout</error>")
    pipeline.ingest_path(write(tmp_path, "a.xml", xml))
    (stored,) = rows(engine, Report)
    second = pipeline.ingest_path(write(tmp_path, "b.xml.gz", samples.gz(xml)))
    assert statuses(second) == ["duplicate"]
    (after,) = rows(engine, Report)
    assert after["content_digest"] is not None
    assert stored["content_digest"] in (None, after["content_digest"])


# -- every field lands ------------------------------------------------------------------------

FULL_REPORT = b"""<?xml version="1.0" encoding="UTF-8"?>
<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0">
  <version>2.0</version>
  <report_metadata>
    <org_name>Receiver Example</org_name>
    <email>dmarc@receiver.example</email>
    <extra_contact_info>https://receiver.example/dmarc</extra_contact_info>
    <report_id>full-1</report_id>
    <date_range><begin>1700000000</begin><end>1700086399</end></date_range>
    <error>could not resolve _dmarc.example.com once</error>
    <generator>Receiver Reporter 3.1</generator>
  </report_metadata>
  <policy_published>
    <domain>Example.COM</domain>
    <adkim>s</adkim><aspf>relaxed</aspf>
    <p>quarantine</p><sp>none</sp><np>reject</np>
    <pct>50</pct><fo>1:d</fo>
    <testing>y</testing><discovery_method>treewalk</discovery_method>
  </policy_published>
  <record>
    <row>
      <source_ip>2001:DB8:0:0::5</source_ip>
      <count>12</count>
      <policy_evaluated>
        <disposition>Quarantine</disposition>
        <dkim>Pass</dkim>
        <spf>hardfail</spf>
        <reason><type>mailing_list</type><comment>list.example</comment></reason>
        <reason><type>Local_Policy</type></reason>
      </policy_evaluated>
    </row>
    <identifiers>
      <envelope_to>Rcpt.Example</envelope_to>
      <envelope_from>bounce@Mail.Example.com</envelope_from>
      <header_from>Example.com</header_from>
    </identifiers>
    <auth_results>
      <dkim><domain>example.com</domain><selector>s1</selector><result>Pass</result>
        <human_result>good signature</human_result></dkim>
      <dkim><domain>list.example</domain><result>fail</result></dkim>
      <spf><domain>mail.example.com</domain><scope>mailfrom</scope><result>hardfail</result>
        <human_result>not permitted</human_result></spf>
      <spf><domain>helo.example</domain><scope>helo</scope><result>pass</result></spf>
    </auth_results>
  </record>
  <record>
    <row>
      <source_ip>not-an-address</source_ip>
      <count>1</count>
      <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>pass</spf></policy_evaluated>
    </row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><spf><domain>example.com</domain><result>pass</result></spf></auth_results>
  </record>
</feedback>
"""


def test_every_field_lands_in_the_tables(pipeline: IngestPipeline, engine: Engine, tmp_path: Path) -> None:
    """Metadata, policy, records, reasons, DKIM and SPF results, raw values and repair notes."""
    outcome = pipeline.ingest_path(write(tmp_path, "full.xml", FULL_REPORT))
    assert statuses(outcome) == ["new"], outcome
    (report,) = rows(engine, Report)
    sha = hashlib.sha256(FULL_REPORT).hexdigest()
    expected = {
        "org_name": "Receiver Example", "org_name_key": "receiver example",
        "email": "dmarc@receiver.example", "extra_contact_info": "https://receiver.example/dmarc",
        "report_id": "full-1", "policy_domain": "example.com",
        "date_begin": datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        "date_end": datetime(2023, 11, 15, 22, 13, 19, tzinfo=UTC),
        "errors": ["could not resolve _dmarc.example.com once"],
        "generator": "Receiver Reporter 3.1", "version": "2.0",
        "xml_namespace": "urn:ietf:params:xml:ns:dmarc-2.0",
        "adkim": "s", "aspf": "r", "p": "quarantine", "sp": "none", "np": "reject", "pct": 50,
        "fo": "1:d", "testing": "y", "discovery_method": "treewalk",
        "record_count": 2, "message_count": 13, "conflict_of_id": None,
        "original_sha256": sha, "location": str(tmp_path / "full.xml"),
    }
    assert {key: report[key] for key in expected} == expected
    assert report["id"] == outcome.reports[0].report_id
    assert any("source_ip is not an IP address" in note for note in report["repair_notes"]), \
        report["repair_notes"]

    first, second = rows(engine, Record, report_id=report["id"])
    assert first == {
        "report_id": report["id"], "record_no": 1, "source_ip": "2001:db8::5",
        "source_ip_packed": bytes.fromhex("20010db8000000000000000000000005"), "count": 12,
        "disposition": "quarantine", "dkim": "pass", "spf": "fail", "header_from": "example.com",
        "envelope_from": "mail.example.com", "envelope_to": "rcpt.example",
        "raw_values": {"source_ip": "2001:DB8:0:0::5", "disposition": "Quarantine", "dkim": "Pass",
                       "spf": "hardfail", "envelope_from": "bounce@Mail.Example.com"},
    }
    assert second["source_ip"] is None and second["source_ip_packed"] is None
    assert second["raw_values"] == {"source_ip": "not-an-address"}
    assert second["envelope_from"] is None

    def parts(model: type, *columns: str) -> list[tuple[object, ...]]:
        return [tuple(row[c] for c in ("record_no", "seq", *columns))
                for row in rows(engine, model, report_id=report["id"])]

    assert parts(RecordReason, "type", "comment", "type_raw") == [
        (1, 0, "mailing_list", "list.example", None), (1, 1, "local_policy", None, "Local_Policy")]
    assert parts(RecordDkimResult, "domain", "selector", "result", "human_result", "result_raw") == [
        (1, 0, "example.com", "s1", "pass", "good signature", "Pass"),
        (1, 1, "list.example", None, "fail", None, None)]
    assert parts(RecordSpfResult, "domain", "scope", "result", "human_result", "result_raw") == [
        (1, 0, "mail.example.com", "mfrom", "fail", "not permitted", "hardfail"),
        (1, 1, "helo.example", "helo", "pass", None, None),
        (2, 0, "example.com", None, "pass", None, None)]


# -- originals --------------------------------------------------------------------------------

def test_originals_are_kept_compressed_and_read_back_byte_identical(
        pipeline: IngestPipeline, engine: Engine, data_dir: Path, tmp_path: Path) -> None:
    """Nothing sent is lost: the exact bytes come back, so a report can be parsed again."""
    xml = samples.aggregate_xml([samples.Rec(source_ip=f"192.0.2.{i}") for i in range(1, 60)])
    inputs = {"plain.xml": xml, "packed.xml.gz": samples.gz(xml, trailing=b"\x00\x00"),
              "carried.eml": samples.email_with([(samples.zipped({"r.xml": xml}), "application/zip", None)])}
    store = OriginalStore(data_dir)
    for name, data in inputs.items():
        pipeline.ingest_path(write(tmp_path, name, data))
    originals = {row["sha256"]: row for row in rows(engine, Original)}
    assert len(originals) == len(inputs)
    for name, data in inputs.items():
        sha = hashlib.sha256(data).hexdigest()
        row = originals[sha]
        assert row["size"] == len(data), name
        assert row["source"] == str(tmp_path / name)
        with store.open(row["storage_path"]) as stream:
            assert stream.read() == data, f"{name} does not read back byte-identical"
        kept = data_dir / row["storage_path"]
        assert sha in kept.name
        on_disk = kept.read_bytes()
        assert on_disk[:2] in (b"\x1f\x8b", b"PK"), f"{name} is not kept compressed"
    plain = originals[hashlib.sha256(xml).hexdigest()]
    assert (data_dir / plain["storage_path"]).stat().st_size < len(xml) / 3
    assert gzip.decompress((data_dir / plain["storage_path"]).read_bytes()) == xml

    (report,) = rows(engine, Report)
    assert report["original_sha256"] == hashlib.sha256(xml).hexdigest(), "linked to its first input"

    # parse the kept bytes again: the same report, recognised as such
    with store.open(originals[report["original_sha256"]]["storage_path"]) as stream:
        again = pipeline.ingest_stream(io.BytesIO(stream.read()), "re-parse")
    assert statuses(again) == ["duplicate"]
    assert again.reports[0].report_id == report["id"]


def test_ingest_stream_keeps_and_stores(pipeline: IngestPipeline, engine: Engine, data_dir: Path) -> None:
    """A one-shot stream (stdin, an upload) is kept first, then parsed from the kept copy."""
    data = samples.gz(samples.aggregate_xml(two_records()))
    outcome = pipeline.ingest_stream(io.BytesIO(data), "stdin")
    assert statuses(outcome) == ["new"] and outcome.reports[0].records == 2
    assert outcome.sha256 == hashlib.sha256(data).hexdigest()
    (original,) = rows(engine, Original)
    assert original["source"] == "stdin" and original["status"] == "ok"
    with OriginalStore(data_dir).open(original["storage_path"]) as stream:
        assert stream.read() == data
    assert count_rows(engine, "aggregate_record") == 2


def test_failed_input_is_kept_with_its_error(
        pipeline: IngestPipeline, engine: Engine, data_dir: Path, tmp_path: Path) -> None:
    """Bad input is quarantined, not dropped: the bytes and the reason stay for a later retry."""
    garbage = b"\x00\x01binary junk that is no report\xff" * 10
    outcome = pipeline.ingest_path(write(tmp_path, "junk.bin", garbage))
    assert outcome.status == "failed"
    (original,) = rows(engine, Original)
    assert original["status"] == "failed"
    assert original["error"] and "not a report" in original["error"]
    assert original["sha256"] == hashlib.sha256(garbage).hexdigest()
    with OriginalStore(data_dir).open(original["storage_path"]) as stream:
        assert stream.read() == garbage
    assert count_rows(engine, "aggregate_report") == 0

    retried = list(pipeline.retry_failed())
    assert [o.sha256 for o in retried] == [original["sha256"]]
    assert retried[0].status == "failed"
    (after,) = rows(engine, Original)
    assert after["attempts"] == 2 and after["status"] == "failed"


def test_retry_failed_parses_quarantined_inputs_again(
        engine: Engine, data_dir: Path, tmp_path: Path) -> None:
    """An input refused under one limit is stored once the limit allows it, and only once."""
    xml = samples.aggregate_xml([samples.Rec(source_ip=f"192.0.2.{i}") for i in range(1, 40)])
    strict = IngestPipeline(engine, data_dir, UnpackLimits(max_decompressed_bytes=len(xml) // 2))
    refused = strict.ingest_path(write(tmp_path, "r.xml.gz", samples.gz(xml)))
    assert refused.status == "failed"
    assert "max_decompressed_bytes" in (refused.describe_errors() or "")
    (original,) = rows(engine, Original)
    assert original["status"] == "failed" and "max_decompressed_bytes" in original["error"]
    assert count_rows(engine, "aggregate_report") == 0

    (tmp_path / "r.xml.gz").unlink()  # only the kept copy is left
    relaxed = IngestPipeline(engine, data_dir, UnpackLimits())
    (retried,) = list(relaxed.retry_failed())
    assert statuses(retried) == ["new"] and retried.status == "ok"
    assert retried.reports[0].records == 39
    (after,) = rows(engine, Original)
    assert after["status"] == "ok" and after["error"] is None and after["attempts"] == 2
    assert after["reports_new"] == 1
    assert count_rows(engine, "aggregate_record") == 39
    assert list(relaxed.retry_failed()) == [], "nothing is left to retry"


def test_retry_failed_finishes_interrupted_inputs(
        pipeline: IngestPipeline, engine: Engine, tmp_path: Path) -> None:
    """An input kept and noted but never finished (a crash, a kill) is parsed by the next retry."""
    data = samples.gz(samples.aggregate_xml(two_records()))
    with io.BytesIO(data) as stream:
        original = pipeline.originals.keep(stream, UnpackLimits().max_input_bytes)
    pipeline.store.note_original(original, "interrupted.xml.gz")
    (row,) = rows(engine, Original)
    assert row["status"] not in ("ok", "failed", "partial", "deferred")
    assert count_rows(engine, "aggregate_report") == 0

    (retried,) = list(pipeline.retry_failed())
    assert statuses(retried) == ["new"] and retried.reports[0].records == 2
    (row,) = rows(engine, Original)
    assert row["status"] == "ok"
    assert list(pipeline.retry_failed()) == []


def test_report_without_records_is_stored_once_with_a_note(
        pipeline: IngestPipeline, engine: Engine, tmp_path: Path) -> None:
    """An empty report still tells who reported what period: kept, noted, and deduplicated."""
    path = write(tmp_path, "empty.xml", samples.aggregate_xml([]))
    first = pipeline.ingest_path(path)
    assert statuses(first) == ["new"] and first.reports[0].records == 0
    (report,) = rows(engine, Report)
    assert report["record_count"] == 0
    assert any("no records" in note for note in report["repair_notes"])
    again = pipeline.ingest_path(write(tmp_path, "empty.xml.gz", samples.gz(samples.aggregate_xml([]))))
    assert statuses(again) == ["duplicate"]
    assert count_rows(engine, "aggregate_report") == 1


def test_partly_failed_input_keeps_its_good_reports(
        pipeline: IngestPipeline, engine: Engine, tmp_path: Path) -> None:
    """One bad zip member never hides its good siblings; a retry stores nothing twice."""
    archive = samples.zipped({"good.xml": samples.aggregate_xml(two_records()),
                              "bad.bin": b"\x00\x01\x02junk"})
    outcome = pipeline.ingest_path(write(tmp_path, "mixed.zip", archive))
    assert outcome.status == "partial"
    assert sorted(statuses(outcome)) == ["failed", "new"]
    (original,) = rows(engine, Original)
    assert original["status"] == "partial" and "bad.bin" in original["error"]
    assert (original["reports_new"], original["reports_failed"]) == (1, 1)
    before = counts(engine)
    (retried,) = list(pipeline.retry_failed())
    assert sorted(statuses(retried)) == ["duplicate", "failed"]
    assert counts(engine) == before


def test_a_broken_tls_report_is_kept_and_an_input_deferred_by_an_earlier_version_is_retried(
        pipeline: IngestPipeline, engine: Engine, tmp_path: Path) -> None:
    """A TLS report without its date range fails clearly and stays for a retry; an input an
    earlier version kept as deferred (its kind had no parser then) is parsed on retry."""
    broken = b'{"organization-name": "Example", "report-id": "r1", "date-range": {}, "policies": []}'
    outcome = pipeline.ingest_path(write(tmp_path, "tls.json", broken))
    assert outcome.status == "failed" and outcome.reports[0].kind == "tls"
    assert "start-datetime" in (outcome.reports[0].error or ""), outcome.reports[0].error
    (original,) = rows(engine, Original)
    assert original["status"] == "failed"

    good = (b'{"organization-name": "Example", "report-id": "r2", "policies": [], "date-range": '
            b'{"start-datetime": "2026-11-01T00:00:00Z", "end-datetime": "2026-11-01T23:59:59Z"}}')
    kept = pipeline.ingest_path(write(tmp_path, "good.json", good))
    with engine.begin() as conn:  # as an earlier version left it
        conn.execute(update(table_of(Original)).where(table_of(Original).c.sha256 == kept.sha256)
                     .values(status="deferred"))
        conn.execute(text("DELETE FROM tls_report"))
    retried = {outcome.sha256: outcome for outcome in pipeline.retry_failed()}
    assert retried[kept.sha256].status == "ok"
    assert [(r.kind, r.status) for r in retried[kept.sha256].reports] == [("tls", "new")]
    assert retried[outcome.sha256].status == "failed"  # still broken, still kept


# -- concurrency ------------------------------------------------------------------------------

def run_in_threads(database_url: str, data_dir: Path,
                   jobs: list[Callable[[IngestPipeline], InputOutcome]]) -> list[InputOutcome]:
    """Run each job in its own thread, each with its own engine and pipeline, all at once."""
    barrier = threading.Barrier(len(jobs))
    outcomes: list[InputOutcome | None] = [None] * len(jobs)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        engine = create_db_engine(database_url)
        try:
            pipeline = IngestPipeline(engine, data_dir, UnpackLimits())
            barrier.wait(timeout=60)
            outcomes[index] = jobs[index](pipeline)
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, f"{len(errors)} threads raised, first: {errors[0]!r}"
    assert all(outcome is not None for outcome in outcomes)
    return outcomes  # type: ignore[return-value]


def many_records(n: int, **kwargs: str) -> bytes:
    return samples.aggregate_xml([samples.Rec(source_ip=f"10.0.{i // 250}.{i % 250}") for i in range(n)],
                                 **kwargs)


THREADS = 6


def test_concurrent_same_file_is_stored_once(
        database_url: str, engine: Engine, data_dir: Path, tmp_path: Path) -> None:
    """Several uploads of the same file at once: one report, the others duplicates."""
    path = write(tmp_path, "r.xml", many_records(300))
    outcomes = run_in_threads(database_url, data_dir, [lambda p: p.ingest_path(path)] * THREADS)
    assert sorted(s for o in outcomes for s in statuses(o)) == ["duplicate"] * (THREADS - 1) + ["new"]
    assert count_rows(engine, "aggregate_report") == 1
    assert count_rows(engine, "aggregate_record") == 300
    (original,) = rows(engine, Original)
    assert original["receipts"] == THREADS and original["status"] == "ok"


def test_concurrent_same_report_in_different_containers_is_stored_once(
        database_url: str, engine: Engine, data_dir: Path, tmp_path: Path) -> None:
    """The identity lock, not the bytes, decides: each container of one report at the same time."""
    xml = many_records(300)
    variants = [xml, samples.gz(xml), samples.zipped({"r.xml": xml}), samples.raw_zlib(xml),
                samples.email_with([(samples.gz(xml), "application/gzip", "r.gz")]),
                samples.multi_member_gz(xml)]
    paths = [write(tmp_path, f"input-{i}", data) for i, data in enumerate(variants)]
    jobs: list[Callable[[IngestPipeline], InputOutcome]] = [
        lambda p, path=path: p.ingest_path(path) for path in paths]
    outcomes = run_in_threads(database_url, data_dir, jobs)
    assert sorted(s for o in outcomes for s in statuses(o)) == ["duplicate"] * (len(paths) - 1) + ["new"]
    assert count_rows(engine, "aggregate_report") == 1
    assert count_rows(engine, "aggregate_record") == 300
    assert count_rows(engine, "report_origin") == len(paths)
    assert count_rows(engine, "original") == len(paths)


def test_concurrent_conflicting_copies_are_each_stored_once(
        database_url: str, engine: Engine, data_dir: Path, tmp_path: Path) -> None:
    """Two contents of one identity racing each other: two reports, one flagged, no third."""
    a = write(tmp_path, "a.xml", many_records(200))
    b = write(tmp_path, "b.xml.gz", samples.gz(many_records(201)))
    outcomes = run_in_threads(database_url, data_dir,
                              [lambda p: p.ingest_path(a), lambda p: p.ingest_path(b)] * (THREADS // 2))
    assert sorted(s for o in outcomes for s in statuses(o)) == ["duplicate"] * (THREADS - 2) + ["new"] * 2
    reports = rows(engine, Report)
    assert len(reports) == 2
    assert sorted(r["record_count"] for r in reports) == [200, 201]
    assert [r["conflict_of_id"] for r in reports] == [None, reports[0]["id"]]
    assert count_rows(engine, "aggregate_record") == 401


def test_concurrent_different_reports_all_land(
        database_url: str, engine: Engine, data_dir: Path, tmp_path: Path) -> None:
    """Independent reports written at the same time must not block or fail one another."""
    paths = [write(tmp_path, f"r{i}.xml", many_records(150 + i, report_id=f"concurrent-{i}"))
             for i in range(THREADS)]
    jobs: list[Callable[[IngestPipeline], InputOutcome]] = [
        lambda p, path=path: p.ingest_path(path) for path in paths]
    outcomes = run_in_threads(database_url, data_dir, jobs)
    assert [statuses(o) for o in outcomes] == [["new"]] * THREADS
    assert count_rows(engine, "aggregate_report") == THREADS
    assert count_rows(engine, "aggregate_record") == sum(150 + i for i in range(THREADS))
    assert {r["report_id"] for r in rows(engine, Report)} == {f"concurrent-{i}" for i in range(THREADS)}


# -- large reports on the parallel parser ------------------------------------------------------

PARALLEL_INGEST = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from app.db import create_db_engine
    from ingest.aggregate_source import open_aggregate
    from ingest.read_mode import ReadMode
    from ingest.limits import UnpackLimits
    from ingest.parallel_parser import ParallelAggregateReader, pool_ready
    from ingest.pipeline import IngestPipeline

    def main():
        url, data_dir, path = sys.argv[1:]
        pipeline = IngestPipeline(create_db_engine(url), Path(data_dir), UnpackLimits())
        workers = pipeline.parse_workers
        deadline = time.monotonic() + 60
        while not pool_ready(workers):  # warm workers: a large document goes to them
            assert time.monotonic() < deadline, "the worker pool did not start"
            time.sleep(0.1)
        with open(path, "rb") as stream:
            source = open_aggregate(stream, ReadMode.AUTO, workers)
            assert isinstance(source, ParallelAggregateReader), "the parallel parser is not used"
        outcome = pipeline.ingest_path(Path(path))
        print(json.dumps([[r.status, r.records, r.error] for r in outcome.reports]))

    if __name__ == "__main__":
        main()
""")


def large_records(n: int) -> list[samples.Rec]:
    return [samples.Rec(source_ip=f"10.{i // 62500}.{i // 250 % 250}.{i % 250}") for i in range(n)]


def long_tail() -> bytes:
    """Past the last record, 2 MiB of blank space before `</feedback>` (a pretty-printer's)."""
    return samples.aggregate_xml(large_records(8000)).replace(
        b"</feedback>", b" " * (2 * 1024 * 1024) + b"</feedback>")


def one_huge_record() -> bytes:
    """One record, far into the document, larger than a megabyte (a huge override comment)."""
    records = large_records(8000)
    records[6000].reasons = [("other", "x" * (1536 * 1024))]
    return samples.aggregate_xml(records)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the parallel parser needs two cores")
@pytest.mark.parametrize("build", [long_tail, one_huge_record], ids=["long-tail", "huge-record"])
def test_large_reports_of_unusual_shape_are_stored_in_bounded_time(
        sqlite_template: Path, tmp_path: Path, build: Callable[[], bytes]) -> None:
    """Large well-formed reports are split for worker processes; the splitting must never spin.

    Run in a child process group (a spinning parser cannot be interrupted in-process), which is
    killed, workers included, if it takes far longer than the few seconds it needs.
    """
    database = tmp_path / "large.db"
    shutil.copy(sqlite_template, database)
    path = write(tmp_path, "large.xml", build())
    assert path.stat().st_size > 4 * 1024 * 1024
    process = subprocess.Popen(
        [sys.executable, "-c", PARALLEL_INGEST, f"sqlite:///{database}", str(tmp_path / "data"), str(path)],
        cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail("ingesting the report did not finish within 30 s (it needs a few)")
    assert process.returncode == 0, stderr[-3000:]
    assert json.loads(stdout.strip().splitlines()[-1]) == [["new", 8000, None]]
