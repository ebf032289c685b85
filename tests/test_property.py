"""Whatever bytes arrive, the parse path answers with rows or an `IngestError`, nothing else.

Hypothesis feeds arbitrary bytes, and real and generated reports damaged the ways mail
damages them (flipped bytes, truncation, insertions, odd field values), through everything
an input goes through before the store: unpack, open_aggregate, header, batches and
normalise_header. Any other exception is a crash the collector would log as a bug.
"""

from __future__ import annotations

import base64
import csv
import io
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingest.aggregate_normaliser import normalise_header
from ingest.aggregate_report import RepairNotes
from ingest.aggregate_source import open_aggregate
from ingest.errors import IngestError
from ingest.limits import DecompressionBudget, UnpackLimits
from ingest.read_mode import ReadAgain, ReadMode
from ingest.record_batch import RECORD_COLUMNS
from ingest.unpack import Payload, ReportKind, UnpackFailure, unpack
from tests.samples import DMARC2_NS, DRAFT_NS, Rec, aggregate_xml, email_with, gz, zipped

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMITS = UnpackLimits(max_input_bytes=8 * 1024 * 1024, max_message_bytes=8 * 1024 * 1024,
                      max_decompressed_bytes=32 * 1024 * 1024)
COUNT = RECORD_COLUMNS.index("count")


def parse_everything(data: bytes) -> int:
    """The whole parse path of one input; returns how many records were read.

    Raises `IngestError` for bad input (that is allowed); also checks what comes out is sane.
    """
    records = 0
    for item in unpack(lambda: io.BytesIO(data), "input", DecompressionBudget(LIMITS)):
        if isinstance(item, UnpackFailure):
            assert isinstance(item.error, IngestError)
            continue
        assert isinstance(item, Payload)
        if item.kind is not ReportKind.AGGREGATE:
            continue
        mode = ReadMode.AUTO
        while True:  # as the pipeline does: read again when the parser says so
            try:
                records += read_payload(item, mode)
                break
            except ReadAgain as again:
                assert again.mode is not mode
                mode = again.mode
    return records


def read_payload(item: Payload, mode: ReadMode) -> int:
    records = 0
    with item.open() as stream:
        source = open_aggregate(stream, mode)
        notes = RepairNotes()
        normalise_header(source.header(), notes)
        previous = 0
        for batch in source.batches():
            for row in batch.records:
                assert isinstance(row[0], int) and row[0] > previous
                previous = row[0]
                count = row[COUNT]
                assert count is None or (isinstance(count, int) and count >= 0)
            records += len(batch)
            notes.merge(batch.notes)
        notes.extend(source.problems)
        notes.lines()
    return records


def survives(data: bytes) -> None:
    try:
        parse_everything(data)
    except IngestError as exc:
        assert str(exc), "an IngestError must say why"


# -- seeds -------------------------------------------------------------------------------------

def generated_seeds() -> list[bytes]:
    quirky = [Rec(count=" 7\t", dkim="Pass", spf="hardfail", source_ip="2001:DB8::1",
                  envelope_from="&lt;&gt;", reasons=[("", None), ("Forwarded", "a &amp; b")],
                  dkim_results=[("Example.COM.", None, "unknown")], spf_results=[("x", "MFROM", "error")]),
              Rec(source_ip="not-an-ip", count="-1", envelope_from="", envelope_to="example.net")]
    rfc7489 = aggregate_xml(quirky, extra_metadata="<error>e1</error><error>e2</error>")
    return [
        rfc7489,
        aggregate_xml(quirky, namespace=DMARC2_NS, prefix="dmarc", version=None, extra_policy=(
            "<np>none</np><testing>y</testing><discovery_method>psl</discovery_method>"),
            extra_metadata="<generator>g</generator>"),
        aggregate_xml([Rec()], namespace=DRAFT_NS,
                      declaration="<?xml version='1.0' encoding='utf-8'?>\n"),
        b"\xef\xbb\xbf  " + aggregate_xml([Rec(), Rec()]).replace(b"\n", b"\r\n"),
        aggregate_xml([Rec(reasons=[("other", "caf\u00e9")])], declaration=(
            '<?xml version="1.0" encoding="windows-1252"?>\n')).decode().encode("cp1252"),
        gz(rfc7489),
        zipped({"report.xml": rfc7489}),
        email_with([(gz(rfc7489), "application/gzip", "report.xml.gz")]),
    ]


GENERATED = generated_seeds()
TOKENS = [b"<", b">", b"&", b"&amp;", b"]]>", b"<![CDATA[", b"<!--", b"-->", b"</record>", b"<record>",
          b"<record/>", b"<!DOCTYPE x>", b"<!ENTITY a 'b'>", b"&a;", b"<?xml version='1.0'?>", b"\x00",
          b"\xff", b"\xef\xbb\xbf", b"\r\n", b"</feedback>", b"<feedback>", b"xmlns='urn:x'", b"\x1f\x8b",
          b"PK\x03\x04"]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few flips, truncations, insertions and deletions."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        operation = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "duplicate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if operation == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif operation == "truncate":
            del data[at:]
        elif operation == "insert":
            data[at:at] = draw(st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=16))
        elif operation == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        else:
            data[at:at] = data[at:at + draw(st.integers(1, 200))]
    return bytes(data)


VALUE_TEXTS = ["", " ", "\t\n", "inf", "-inf", "nan", "1e400", "-1", "0", "18446744073709551616",
               "99999999999999999999999999", "1.5", "0x10", "١٢", "Pass", "PASS", "hardfail", "unknown",
               "&lt;&gt;", "&amp;", "::", "::ffff:1.2.3.4", "fe80::1%eth0", "1.2.3.4.5", "a" * 300,
               "user@Example.COM", "\u00e9", "\U0001f600"]
TEXT_NODE = re.compile(rb">([^<>]*)</")


@st.composite
def field_mutated(draw: st.DrawFn) -> bytes:
    """A generated report with one or more element texts replaced by odd values."""
    data = draw(st.sampled_from(GENERATED[:4]))
    for _ in range(draw(st.integers(1, 3))):
        spans = [match.span(1) for match in TEXT_NODE.finditer(data)]
        start, end = draw(st.sampled_from(spans))
        value = draw(st.sampled_from(VALUE_TEXTS) | st.text(max_size=24).map(
            lambda text: text.replace("&", "&amp;").replace("<", "&lt;")))
        data = data[:start] + value.encode("utf-8", "surrogatepass") + data[end:]
    return data


# Inputs the properties below once found; kept so that they are always tried.
BAD_SUBJECT_EMAIL = (
    b"From: dmarc@receiver.example\r\nSubject: =?utf-8?B?QUJDR[E=?=\r\nContent-Type: application/gzip\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(gz(aggregate_xml())))
"""An RFC 2047 subject whose base64 is damaged (a corpus e-mail with one byte changed)."""
UNDECLARED_PREFIX = aggregate_xml([Rec()], namespace=DMARC2_NS, prefix="dmarc").replace(
    b' xmlns:dmarc="urn:ietf:params:xml:ns:dmarc-2.0"', b"")
"""Prefixed elements whose prefix is never declared (a mutated generated report)."""
INFINITE_BEGIN = aggregate_xml(begin="inf")

XML_STARTS = [b"", b"<?xml version='1.0'?>", b"\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
              b"<feedback>", b"<feedback xmlns='urn:ietf:params:xml:ns:dmarc-2.0'><record>", b"<"]


# -- properties --------------------------------------------------------------------------------

def test_seeds_are_read() -> None:
    """The seeds themselves parse: mutations start from working reports, not from junk."""
    for seed in GENERATED:
        assert parse_everything(seed) >= 1


@PROPERTY
@given(st.binary(max_size=4096))
@example(BAD_SUBJECT_EMAIL)
@example(UNDECLARED_PREFIX)
@example(INFINITE_BEGIN)
def test_arbitrary_bytes(data: bytes) -> None:
    survives(data)


@PROPERTY
@given(st.sampled_from(XML_STARTS), st.binary(max_size=2048))
def test_arbitrary_bytes_after_an_xml_start(start: bytes, rest: bytes) -> None:
    """Junk that gets past the sniffer reaches the XML parser itself."""
    survives(start + rest)


@settings(PROPERTY, max_examples=300)
@given(mutated(GENERATED))
def test_mutated_generated_reports(data: bytes) -> None:
    survives(data)


@settings(PROPERTY, max_examples=300)
@given(field_mutated())
def test_generated_reports_with_odd_field_values(data: bytes) -> None:
    """Any text in any element (numbers, dates, addresses, enums) is repaired or noted, never raised."""
    survives(data)


def test_every_field_with_every_odd_value() -> None:
    """The deterministic half of the property above: each element of each schema gets each odd
    value once, so a value that breaks one field (an infinite date, say) is always tried."""
    failures = []
    for seed in GENERATED[:2]:
        seen = set()
        for match in re.finditer(rb"<([\w:]+)>([^<>]*)</\1>", seed):
            if match.group(1) in seen:
                continue
            seen.add(match.group(1))
            for value in VALUE_TEXTS:
                data = seed[:match.start(2)] + value.encode() + seed[match.end(2):]
                try:
                    survives(data)
                except Exception as exc:  # collected so one run names every field that fails
                    failures.append(f"<{match.group(1).decode()}>{value[:20]!r}: {type(exc).__name__}: {exc}")
    assert len(seen) > 25
    assert not failures, "\n".join(failures)


def corpus_seeds(corpus: Path) -> list[bytes]:
    """Every aggregate file of the corpus as it arrived, and the XML documents inside them."""
    seeds: list[bytes] = []
    with open(corpus / "MANIFEST.tsv", newline="") as manifest:
        rows = [row for row in csv.DictReader(manifest, delimiter="\t") if row["kind"] == "aggregate"]
    for row in rows:
        path = corpus / row["relpath"]
        seeds.append(path.read_bytes())
        for item in unpack(lambda path=path: open(path, "rb"), row["relpath"], DecompressionBudget(LIMITS)):
            if isinstance(item, Payload) and row["container"] != "xml":
                with item.open() as stream:
                    seeds.append(stream.read())
    return [seed for seed in seeds if len(seed) < 64 * 1024]


@pytest.fixture(scope="module")
def corpus_documents(corpus: Path) -> list[bytes]:
    seeds = corpus_seeds(corpus)
    assert len(seeds) > 40
    return seeds


def test_mutated_corpus_reports(corpus_documents: list[bytes]) -> None:
    """Real reports (every generator's quirks at once), damaged at random."""

    @settings(PROPERTY, max_examples=300)
    @given(mutated(corpus_documents))
    def check(data: bytes) -> None:
        survives(data)

    check()
