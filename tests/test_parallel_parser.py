"""The parallel parser must agree with the serial one, or step aside for it.

Large documents (≥4 MiB) are split at `</record>` and parsed in worker processes. For every
document it splits, the header, each row and the notes must be exactly what the serial
parser (the reference) gives; a document it cannot split safely must end up read serially,
either at once or through `ParallelUnsuitable`, which the pipeline answers with a serial
re-read inside a fresh transaction.
"""

from __future__ import annotations

import functools
import io
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select

from app.models import Record, RecordDkimResult, RecordReason, RecordSpfResult, Report
from ingest.aggregate_normaliser import normalise_header
from ingest.aggregate_report import RawReportHeader, RepairNotes, ReportHeader
from ingest.aggregate_source import PARALLEL_MIN_BYTES, open_aggregate
from ingest.parallel_parser import CHUNK_BYTES, ParallelAggregateReader, ParallelUnsuitable, cores
from ingest.pipeline import IngestPipeline
from ingest.read_mode import ReadAgain, ReadMode
from ingest.record_batch import DKIM_COLUMNS, REASON_COLUMNS, RECORD_COLUMNS, SPF_COLUMNS, Row
from tests.samples import DMARC2_NS, DRAFT_NS, Rec, aggregate_xml

pytestmark = pytest.mark.skipif(cores() < 2, reason="the parallel parser is only used with two or more CPUs")

RECORDS = 6500


@dataclass
class Read:
    raw: RawReportHeader
    header: ReportHeader
    records: list[Row]
    reasons: list[Row]
    dkim: list[Row]
    spf: list[Row]
    messages: int
    notes: list[str]
    problems: list[str]


def read(data: bytes, parallel: bool) -> Read:
    """A whole read as the pipeline does it; notes are header, record, then parser notes.

    The parallel read is tried once (its refusal, `ParallelUnsuitable`, is what some tests
    look for); the serial reference reads again when told to, as the pipeline does.
    """
    if parallel:
        return _read_once(data, ReadMode.AUTO)
    mode = ReadMode.SERIAL
    while True:
        try:
            return _read_once(data, mode)
        except ReadAgain as again:
            assert again.mode is not mode
            mode = again.mode


def _read_once(data: bytes, mode: ReadMode) -> Read:
    source = open_aggregate(io.BytesIO(data), mode)
    if mode is ReadMode.AUTO:
        assert isinstance(source, ParallelAggregateReader), "the document was not read in parallel"
    raw = source.header()
    notes = RepairNotes()
    header = normalise_header(raw, notes)
    result = Read(raw, header, [], [], [], [], 0, [], [])
    for batch in source.batches():
        result.records += batch.records
        result.reasons += batch.reasons
        result.dkim += batch.dkim
        result.spf += batch.spf
        result.messages += batch.messages
        notes.merge(batch.notes)
    notes.extend(source.problems)
    result.notes = notes.lines()
    result.problems = list(source.problems)
    return result


def raw_fields(raw: RawReportHeader) -> tuple[object, ...]:
    return (raw.namespace, raw.version, raw.metadata, raw.errors, raw.policy, raw.seen)


def assert_same(serial: Read, parallel: Read) -> None:
    assert raw_fields(parallel.raw) == raw_fields(serial.raw)
    assert parallel.header == serial.header
    assert len(parallel.records) == len(serial.records)
    for mine, reference in zip(parallel.records, serial.records, strict=True):
        assert mine == reference
    assert parallel.reasons == serial.reasons
    assert parallel.dkim == serial.dkim
    assert parallel.spf == serial.spf
    assert parallel.messages == serial.messages
    assert parallel.problems == serial.problems
    assert parallel.notes == serial.notes


# -- documents ---------------------------------------------------------------------------------

def varied(index: int, odd: bool = True) -> Rec:
    """A record with reasons, several DKIM and SPF results, and (when `odd`) one real-world quirk."""
    domain = f"d{index % 13}.example"
    rec = Rec(source_ip=f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}", count=str(index % 50),
              disposition=("none", "quarantine", "reject", "pass")[index % 4],
              dkim=("pass", "fail")[index % 2], spf=("fail", "pass")[index % 3 % 2],
              header_from=domain, envelope_from=f"bounce.{domain}",
              envelope_to="example.net" if index % 5 == 0 else None,
              reasons=[("forwarded", f"list {index}"), ("local_policy", None)] if index % 3 == 0 else [],
              dkim_results=[(domain, f"s{index % 5}", "pass"), ("esp.example", "k1", "fail")],
              spf_results=[(f"bounce.{domain}", "mfrom", "pass"), ("mx.example", "helo", "neutral")])
    if not odd:
        return rec
    quirk = index % 17
    if quirk == 0:
        rec.dkim, rec.disposition = "Pass", "Quarantine"
    elif quirk == 1:
        rec.spf = "hardfail"
    elif quirk == 2:
        rec.count = " \t7\n"
    elif quirk == 3:
        rec.source_ip = f"2001:DB8:0::{index:x}"
    elif quirk == 4:
        rec.source_ip = "not-an-ip"
    elif quirk == 5:
        rec.envelope_from = "&lt;&gt;"
    elif quirk == 6:
        rec.envelope_from = ""
    elif quirk == 7:
        rec.reasons = [("", None), ("Forwarded", "list &amp; co")]
    elif quirk == 8:
        rec.dkim_results = [("x.example", None, "unknown"), ("y.example", "s", "Error")]
        rec.spf_results = [("x.example", None, "error")]
    elif quirk == 9:
        rec.count = "-3"
    elif quirk == 10:
        rec.header_from = "  "
    elif quirk == 11:
        rec.envelope_from = "Bounce@Example.COM"
    elif quirk == 12:
        rec.dkim_results = []
        rec.spf_results = [("example.com", "MFROM", "SoftFail")]
    elif quirk == 13:
        rec.reasons = [("$text", "unknown type")]
    return rec


def big_report(namespace: str | None = None, prefix: str | None = None, records: int = RECORDS,
               declaration: str = '<?xml version="1.0" encoding="UTF-8"?>\n', odd: bool = True,
               broken_records: bool = True) -> bytes:
    """A document large enough to be split, with every kind of value the normaliser repairs."""
    data = aggregate_xml([varied(i, odd) for i in range(records)], namespace=namespace, prefix=prefix,
                         declaration=declaration, extra_policy="<pct>100</pct><np>none</np><fo>1</fo>",
                         extra_metadata="<error>one</error><error>two</error>")
    if broken_records:
        q = f"{prefix}:".encode() if prefix else b""
        # an unreadable record and one without auth_results, deep inside a later chunk
        start = nth(data, b"<" + q + b"record>", records * 2 // 3)
        data = data[:start] + b"<" + q + b"record><" + q + b"junk/></" + q + b"record>\n" + data[start:]
        start = nth(data, b"<" + q + b"auth_results>", records // 2)
        end = data.index(b"</" + q + b"auth_results>", start) + len(b"</" + q + b"auth_results>")
        data = data[:start] + data[end:]
    assert len(data) > PARALLEL_MIN_BYTES + 100_000
    return data


def nth(data: bytes, needle: bytes, n: int) -> int:
    position = -1
    for _ in range(n + 1):
        position = data.index(needle, position + 1)
    return position


def microsoft_style() -> bytes:
    """BOM, leading whitespace, xsd/xsi prefixes and CRLF line ends (§7)."""
    data = big_report().replace(b"<feedback>", b'<feedback xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
                                               b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">')
    return b"\xef\xbb\xbf \r\n" + data.replace(b"\n", b"\r\n")


def wait_until_parallel(workers: int) -> None:
    """Block until `open_aggregate` hands a large document to a pool of `workers`.

    Worker processes take a second or so to start, and a cold pool may have a document read
    serially meanwhile; the tests below are about what the parallel reader does.
    """
    data = big_report(odd=False, broken_records=False)
    deadline = time.monotonic() + 120
    while not isinstance(open_aggregate(io.BytesIO(data), ReadMode.AUTO, workers), ParallelAggregateReader):
        assert time.monotonic() < deadline, "large documents are never read in parallel"
        time.sleep(0.25)


@pytest.fixture(scope="module", autouse=True)
def warm_pools() -> None:
    """Both pools in use here: the default one and the pipeline's (one core left to the writer)."""
    for workers in sorted({cores(), max(1, cores() - 1)}):
        wait_until_parallel(workers)


PARITY = {
    "rfc7489": lambda: big_report(),
    "draft-0.1-namespace": lambda: big_report(DRAFT_NS),
    "rfc9990-default-namespace": lambda: big_report(DMARC2_NS),
    "rfc9990-prefixed": lambda: big_report(DMARC2_NS, "dmarc"),
    "other-namespace-prefixed": lambda: big_report("urn:example:reports", "r"),
    "microsoft-bom-crlf": microsoft_style,
    "mailru-single-quoted-declaration": lambda: big_report(
        declaration="<?xml version='1.0' encoding='utf-8'?>\n"),
    "no-declaration": lambda: big_report(DMARC2_NS, declaration=""),
}


@pytest.mark.parametrize("name", list(PARITY))
def test_parallel_read_equals_serial_read(name: str) -> None:
    """Same header, rows, record numbers, message total and notes, whichever parser read it."""
    data = PARITY[name]()
    serial = read(data, parallel=False)
    assert len(serial.records) == RECORDS, "the reference read lost records"
    assert serial.notes, "the document is meant to carry repairs"
    assert_same(serial, read(data, parallel=True))


def test_chunks_stay_small_however_much_is_read_ahead() -> None:
    """A worker's tree is about ten times its chunk: chunks must stay near `CHUNK_BYTES` even
    when the reader starts with a large block already read (a cold pool reads ahead), or the
    workers' memory grows with the block (a regression once seen: 16 MiB chunks, 160 MB workers)."""
    data = big_report(odd=False, broken_records=False, records=RECORDS * 3)
    block = data[:len(data) - 1000]  # nearly everything read ahead
    reader = ParallelAggregateReader(io.BytesIO(data[len(block):]), block, workers=1)
    longest_record = max(len(part) for part in data.split(b"</record>"))
    sizes = [len(chunk) for chunk, _count in reader._chunks()]
    assert len(sizes) > 3
    assert max(sizes) <= CHUNK_BYTES + longest_record


def test_a_record_longer_than_a_chunk_is_cut_after_it() -> None:
    """One huge record (a long human_result) still ends a chunk, right after it."""
    huge = Rec(dkim_results=[("example.com", "s1", "pass")])
    records = [Rec() for _ in range(100)] + [huge] + [Rec() for _ in range(100)]
    data = aggregate_xml(records).replace(b"<selector>s1</selector>",
                                          b"<selector>" + b"s" * (2 * CHUNK_BYTES) + b"</selector>", 1)
    start = data.index(b"<record>")
    reader = ParallelAggregateReader(io.BytesIO(data[start + 100:]), data[:start + 100], workers=1)
    counts = [count for _chunk, count in reader._chunks()]
    assert sum(counts) == 201


def test_parallel_read_spans_several_chunks_and_batches() -> None:
    """The document is really split (the case the numbering across chunks depends on)."""
    data = big_report(odd=False, broken_records=False, records=RECORDS * 2)
    source = open_aggregate(io.BytesIO(data))
    assert isinstance(source, ParallelAggregateReader)
    source.header()
    sizes = [len(batch) for batch in source.batches()]
    assert len(sizes) >= 3
    assert sum(sizes) == RECORDS * 2


# -- documents that cannot be split safely -----------------------------------------------------

def in_middle(data: bytes, insert: bytes) -> bytes:
    """`insert` placed between two records halfway through the document."""
    position = data.index(b"<record>", len(data) // 2)
    return data[:position] + insert + data[position:]


def in_middle_record(data: bytes, old: bytes, new: bytes) -> bytes:
    position = data.index(b"<record>", len(data) // 2)
    return data[:position] + data[position:].replace(old, new, 1)


def with_record_at(data: bytes, where: str, record: bytes) -> bytes:
    if where == "start":
        start = data.index(b"<record>")
        return data[:start] + record + data[start:]
    end = data.rindex(b"</record>") + len(b"</record>")
    return data[:end] + record + data[end:]


def with_metadata_last(data: bytes) -> bytes:
    """<report_metadata> moved after the records (fewer than the 10,000 the serial parser waits for)."""
    start = data.index(b"<report_metadata>")
    end = data.index(b"</report_metadata>") + len(b"</report_metadata>")
    return data[:start] + data[end:].replace(b"</feedback>", data[start:end] + b"</feedback>")


OTHER_PREFIX_RECORD = (
    b"<e:record xmlns:e='urn:ietf:params:xml:ns:dmarc-2.0'><e:row><e:source_ip>192.0.2.99</e:source_ip>"
    b"<e:count>5</e:count><e:policy_evaluated><e:disposition>none</e:disposition><e:dkim>pass</e:dkim>"
    b"<e:spf>pass</e:spf></e:policy_evaluated></e:row><e:identifiers><e:header_from>example.com"
    b"</e:header_from></e:identifiers><e:auth_results/></e:record>\n")


UNSPLITTABLE = {
    "close-tag-in-comment": lambda: in_middle(big_report(), b"<!-- a stray </record> in a comment -->\n"),
    "close-tag-in-cdata": lambda: in_middle_record(
        big_report(), b"<header_from>", b"<header_from><![CDATA[</record>]]>"),
    "windows-1252-declared": lambda: big_report(
        declaration='<?xml version="1.0" encoding="windows-1252"?>\n').replace(b"list 9", b"list \xe9"),
    "unescaped-ampersand-mid-document": lambda: in_middle_record(
        big_report(), b"<header_from>", b"<header_from>A & B "),
    "invalid-utf8-mid-document": lambda: in_middle_record(
        big_report(), b"<header_from>", b"<header_from>\xff\xfe"),
    "non-record-element-between-records": lambda: in_middle(big_report(), b"<note>between</note>\n"),
    "ikea-unclosed-wrapper": lambda: big_report(declaration=(
        '<?xml version="1.0"?>\n<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">\n')),
    "truncated": lambda: big_report()[:-5000],
    # well-formed, but only the serial parser reads them right: libxml2 notes a repair
    # (a relative namespace URI), a record the splitter does not see (<record/> before the
    # first split point or after the last, or a record spelled with another prefix after it),
    # or header elements after the records
    "relative-namespace-uri": lambda: big_report("dmarc"),
    "empty-record-element-first": lambda: with_record_at(big_report(), "start", b"<record/>\n"),
    "empty-record-element-last": lambda: with_record_at(big_report(), "end", b"<record/>\n"),
    "other-prefix-record-last": lambda: big_report(DMARC2_NS, "d").replace(
        b"</d:feedback>", OTHER_PREFIX_RECORD + b"</d:feedback>"),
    "metadata-after-the-records": lambda: with_metadata_last(big_report()),
}


def parallel_or_fallback(data: bytes, serial: Read) -> str:
    """Try the parallel read; it must equal the serial one, or refuse by `ParallelUnsuitable`."""
    source = open_aggregate(io.BytesIO(data))
    if not isinstance(source, ParallelAggregateReader):
        return "serial from the start"
    try:
        result = read(data, parallel=True)
    except ParallelUnsuitable:
        return "ParallelUnsuitable"
    assert_same(serial, result)
    return "parallel, identical"


@functools.lru_cache(maxsize=4)
def unsplittable(name: str) -> tuple[bytes, Read]:
    """The document and its serial (reference) read, kept for the pipeline tests that follow."""
    data = UNSPLITTABLE[name]()
    return data, read(data, parallel=False)


@pytest.mark.parametrize("name", list(UNSPLITTABLE))
def test_unsplittable_documents_are_never_read_differently(name: str) -> None:
    """A document the splitter cannot trust is handed to the serial parser, never half-read."""
    data, serial = unsplittable(name)
    assert len(serial.records) >= RECORDS - 12, "the reference read lost records"
    assert serial.header.org_name == "receiver.example"
    outcome = parallel_or_fallback(data, serial)
    if name == "windows-1252-declared":
        assert outcome == "serial from the start"
        assert any(row[3] == "list é" for row in serial.reasons)
    if name.startswith("empty-record"):
        assert any("could not be read" in line for line in serial.notes)


# -- through the pipeline ----------------------------------------------------------------------

def naive_utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def stored(engine: Engine, report_id: int) -> dict[str, Any]:
    """A stored report as plain values, in the shapes the parser produced them."""
    with engine.connect() as conn:
        report = conn.execute(select(Report.__table__).where(  # type: ignore[attr-defined]
            Report.__table__.c.id == report_id)).mappings().one()  # type: ignore[attr-defined]
        parts: dict[str, list[Row]] = {}
        for key, model, columns in (
                ("records", Record, RECORD_COLUMNS), ("reasons", RecordReason, REASON_COLUMNS),
                ("dkim", RecordDkimResult, DKIM_COLUMNS), ("spf", RecordSpfResult, SPF_COLUMNS)):
            table = model.__table__  # type: ignore[attr-defined]
            order = [table.c.record_no, *([table.c.seq] if "seq" in columns else [])]
            rows = conn.execute(select(*(table.c[name] for name in columns))
                                .where(table.c.report_id == report_id).order_by(*order))
            parts[key] = [tuple(row) for row in rows]
    parts["records"] = [(*row[:2], bytes(row[2]) if row[2] is not None else None, *row[3:])
                        for row in parts["records"]]
    return {"report": dict(report), **parts}


def expected_rows(serial: Read) -> dict[str, list[Row]]:
    records = [(*row[:10], json.loads(row[10]) if row[10] else None)  # type: ignore[arg-type]
               for row in serial.records]
    return {"records": records, "reasons": serial.reasons, "dkim": serial.dkim, "spf": serial.spf}


PIPELINE_CASES = ["unescaped-ampersand-mid-document", "close-tag-in-comment",
                  "non-record-element-between-records", "metadata-after-the-records"]


@pytest.mark.parametrize("name", PIPELINE_CASES)
def test_pipeline_stores_what_the_serial_parser_reads(name: str, pipeline: IngestPipeline,
                                                      engine: Engine) -> None:
    """After a parallel attempt gives up mid-document, the stored report is the serial read:
    no rows from the abandoned attempt, no missing ones, and the serial parser's notes."""
    data, serial = unsplittable(name)
    wait_until_parallel(pipeline.parse_workers)
    outcome = pipeline.ingest_stream(io.BytesIO(data), f"{name}.xml")
    assert outcome.status == "ok", outcome
    [report] = outcome.reports
    assert (report.status, report.records) == ("new", len(serial.records))
    assert report.notes == serial.notes
    assert report.report_id is not None
    saved = stored(engine, report.report_id)
    row = saved["report"]
    header = serial.header
    assert (row["org_name"], row["report_id"], row["policy_domain"], row["p"], row["np"], row["pct"]) == (
        header.org_name, header.report_id, header.policy.domain, header.policy.p, header.policy.np,
        header.policy.pct)
    assert (naive_utc(row["date_begin"]), naive_utc(row["date_end"])) == (
        naive_utc(header.begin), naive_utc(header.end))
    assert list(row["errors"]) == list(header.errors)
    assert (row["record_count"], row["message_count"]) == (len(serial.records), serial.messages)
    assert list(row["repair_notes"]) == serial.notes
    expected = expected_rows(serial)
    for key in ("records", "reasons", "dkim", "spf"):
        assert saved[key] == expected[key], key
