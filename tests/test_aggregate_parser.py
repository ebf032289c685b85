"""The aggregate report parser: namespaces, every schema field, leniency, safety, streaming.

Documents are built in code (tests/samples.py) so each test shows the quirk it exercises
(../shared/STANDARDS.md §1, §2, §7); the shared corpus, when present, checks real files.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import os
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.aggregate_normaliser import normalise_header
from ingest.aggregate_report import RawReportHeader, RepairNotes, ReportHeader
from ingest.aggregate_source import open_aggregate
from ingest.errors import IngestError, MalformedReport, UnsafeInput
from ingest.limits import DecompressionBudget, UnpackLimits
from ingest.read_mode import ReadAgain, ReadMode
from ingest.record_batch import DKIM_COLUMNS, REASON_COLUMNS, RECORD_COLUMNS, SPF_COLUMNS
from ingest.unpack import Payload, ReportKind, unpack
from tests.samples import DMARC2_NS, DRAFT_NS, Rec, aggregate_xml

V4_MAPPED = b"\x00" * 10 + b"\xff\xff"


@dataclass
class Parsed:
    raw: RawReportHeader
    header: ReportHeader
    records: list[dict[str, object]]
    reasons: list[dict[str, object]]
    dkim: list[dict[str, object]]
    spf: list[dict[str, object]]
    notes: list[str]
    """Header notes, then record notes, then the parser's problems: what the store keeps."""
    problems: list[str]
    messages: int = 0
    batches: list[int] = field(default_factory=list)

    def raw_values(self, index: int) -> dict[str, str]:
        text = self.records[index]["raw_values"]
        return json.loads(text) if text else {}  # type: ignore[arg-type]


def parse(data: bytes, parallel: bool = True) -> Parsed:
    """The whole read of one document, as the pipeline does it (reading again when told to)."""
    mode = ReadMode.AUTO if parallel else ReadMode.SERIAL
    while True:
        try:
            return _parse_once(data, mode)
        except ReadAgain as again:
            assert again.mode is not mode
            mode = again.mode


def _parse_once(data: bytes, mode: ReadMode) -> Parsed:
    source = open_aggregate(io.BytesIO(data), mode)
    raw = source.header()
    notes = RepairNotes()
    header = normalise_header(raw, notes)
    parsed = Parsed(raw, header, [], [], [], [], [], [])
    for batch in source.batches():
        parsed.records += [dict(zip(RECORD_COLUMNS, row, strict=True)) for row in batch.records]
        parsed.reasons += [dict(zip(REASON_COLUMNS, row, strict=True)) for row in batch.reasons]
        parsed.dkim += [dict(zip(DKIM_COLUMNS, row, strict=True)) for row in batch.dkim]
        parsed.spf += [dict(zip(SPF_COLUMNS, row, strict=True)) for row in batch.spf]
        parsed.messages += batch.messages
        parsed.batches.append(len(batch))
        notes.merge(batch.notes)
    notes.extend(source.problems)
    parsed.notes = notes.lines()
    parsed.problems = list(source.problems)
    return parsed


def counts(parsed: Parsed) -> list[object]:
    return [record["count"] for record in parsed.records]


def mentions(lines: list[str], *words: str) -> bool:
    return any(all(word.lower() in line.lower() for word in words) for line in lines)


# -- 1. namespaces -----------------------------------------------------------------------------

NAMESPACE_CASES = [
    pytest.param(None, None, None, id="rfc7489-no-namespace"),
    pytest.param(DRAFT_NS, None, DRAFT_NS, id="draft-0.1-default"),
    pytest.param(DMARC2_NS, None, DMARC2_NS, id="rfc9990-default"),
    pytest.param(DMARC2_NS, "dmarc", DMARC2_NS, id="rfc9990-prefixed"),
    pytest.param("urn:example:made-up", "x", "urn:example:made-up", id="other-prefixed"),
    pytest.param("http://example.org/some/schema", None, "http://example.org/some/schema",
                 id="other-default"),
]


@pytest.mark.parametrize(("namespace", "prefix", "reported"), NAMESPACE_CASES)
def test_every_namespace_is_read_and_reported(namespace: str | None, prefix: str | None,
                                              reported: str | None) -> None:
    """GMX already sends dmarc-2.0; namespace-unaware parsers return nothing (§7)."""
    data = aggregate_xml([Rec(count="3"), Rec(count="4", source_ip="2001:db8::1")], namespace=namespace,
                         prefix=prefix, extra_metadata="<error>oops</error>")
    parsed = parse(data)
    assert counts(parsed) == [3, 4]
    assert [record["record_no"] for record in parsed.records] == [1, 2]
    assert len(parsed.dkim) == len(parsed.spf) == 2
    assert parsed.header.xml_namespace == reported
    assert parsed.header.org_name == "receiver.example"
    assert parsed.header.errors == ("oops",)
    assert parsed.header.policy.p == "reject"
    assert parsed.header.version == "1.0"
    assert parsed.notes == []


def test_elements_in_mixed_namespaces_are_matched_by_local_name() -> None:
    """A generator that qualifies only some elements must still be read."""
    data = aggregate_xml([Rec(count="2")], namespace=DMARC2_NS, prefix="d").replace(
        b"<d:row>", b"<row xmlns='urn:other'>").replace(b"</d:row>", b"</row>")
    parsed = parse(data)
    assert counts(parsed) == [2]
    assert parsed.records[0]["disposition"] == "none"


# -- 2. every field of both schemas ------------------------------------------------------------

FULL_9990 = b"""<?xml version="1.0" encoding="UTF-8"?>
<feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0" xmlns:ext="urn:example:extension">
  <version>1.0</version>
  <report_metadata>
    <generator>Example Reporter 4.2</generator>
    <org_name>Example Receiver</org_name>
    <email>dmarc@receiver.example</email>
    <extra_contact_info>https://receiver.example/dmarc</extra_contact_info>
    <report_id>9990-report-1</report_id>
    <date_range><begin>1700000000</begin><end>1700086399</end></date_range>
    <error lang="en">a DNS lookup failed</error>
  </report_metadata>
  <policy_published>
    <domain>Example.COM</domain>
    <discovery_method>treewalk</discovery_method>
    <p>reject</p>
    <sp>quarantine</sp>
    <np>reject</np>
    <adkim>s</adkim>
    <aspf>r</aspf>
    <testing>n</testing>
    <fo>1</fo>
  </policy_published>
  <extension><ext:info ext:kind="sample"><ext:detail>ignored</ext:detail></ext:info></extension>
  <record>
    <row>
      <source_ip>2001:db8::25</source_ip>
      <count>12</count>
      <policy_evaluated>
        <disposition>pass</disposition>
        <dkim>pass</dkim>
        <spf>fail</spf>
        <reason><type>policy_test_mode</type><comment lang="en">t=y</comment></reason>
        <reason><type>local_policy</type></reason>
      </policy_evaluated>
    </row>
    <identifiers>
      <envelope_to>example.net</envelope_to>
      <envelope_from>bounce.example.com</envelope_from>
      <header_from>example.com</header_from>
    </identifiers>
    <auth_results>
      <dkim><domain>example.com</domain><selector>s1</selector><result>pass</result>
        <human_result lang="en">good signature</human_result></dkim>
      <dkim><domain>esp.example</domain><selector>s2</selector><result>fail</result>
        <human_result>body hash mismatch</human_result></dkim>
      <spf><domain>bounce.example.com</domain><scope>mfrom</scope><result>softfail</result>
        <human_result>~all</human_result></spf>
    </auth_results>
    <ext:note>record extension, ignored</ext:note>
  </record>
  <record>
    <row>
      <source_ip>198.51.100.7</source_ip>
      <count>1</count>
      <policy_evaluated><disposition>quarantine</disposition><dkim>fail</dkim><spf>fail</spf>
      </policy_evaluated>
    </row>
    <identifiers><envelope_from></envelope_from><header_from>example.com</header_from></identifiers>
    <auth_results></auth_results>
  </record>
</feedback>
"""


def test_rfc9990_every_field() -> None:
    """Every element RFC 9990 defines lands in its column; extensions change nothing (§2)."""
    parsed = parse(FULL_9990)
    header = parsed.header
    assert header == ReportHeader(
        org_name="Example Receiver", email="dmarc@receiver.example",
        extra_contact_info="https://receiver.example/dmarc", report_id="9990-report-1",
        begin=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        end=datetime(2023, 11, 15, 22, 13, 19, tzinfo=UTC),
        errors=("a DNS lookup failed",), generator="Example Reporter 4.2", version="1.0",
        xml_namespace=DMARC2_NS, policy=header.policy)
    policy = header.policy
    assert (policy.domain, policy.discovery_method, policy.p, policy.sp, policy.np, policy.adkim,
            policy.aspf, policy.testing, policy.fo, policy.pct) == (
        "example.com", "treewalk", "reject", "quarantine", "reject", "s", "r", "n", "1", None)
    assert parsed.records == [
        {"record_no": 1, "source_ip": "2001:db8::25",
         "source_ip_packed": bytes.fromhex("20010db8000000000000000000000025"), "count": 12,
         "disposition": "pass", "dkim": "pass", "spf": "fail", "header_from": "example.com",
         "envelope_from": "bounce.example.com", "envelope_to": "example.net", "raw_values": None},
        {"record_no": 2, "source_ip": "198.51.100.7",
         "source_ip_packed": V4_MAPPED + bytes([198, 51, 100, 7]), "count": 1,
         "disposition": "quarantine", "dkim": "fail", "spf": "fail",
         "header_from": "example.com", "envelope_from": "", "envelope_to": None, "raw_values": None},
    ]
    assert parsed.reasons == [
        {"record_no": 1, "seq": 0, "type": "policy_test_mode", "comment": "t=y", "type_raw": None},
        {"record_no": 1, "seq": 1, "type": "local_policy", "comment": None, "type_raw": None},
    ]
    assert parsed.dkim == [
        {"record_no": 1, "seq": 0, "domain": "example.com", "selector": "s1", "result": "pass",
         "human_result": "good signature", "result_raw": None},
        {"record_no": 1, "seq": 1, "domain": "esp.example", "selector": "s2", "result": "fail",
         "human_result": "body hash mismatch", "result_raw": None},
    ]
    assert parsed.spf == [
        {"record_no": 1, "seq": 0, "domain": "bounce.example.com", "scope": "mfrom", "result": "softfail",
         "human_result": "~all", "result_raw": None},
    ]
    assert parsed.messages == 13
    assert parsed.notes == [], "a conforming RFC 9990 report needs no repair"


def test_rfc7489_every_field() -> None:
    """RFC 7489 Appendix C: several errors, pct, fo, reasons with and without comment (§1)."""
    records = [
        Rec(source_ip="192.0.2.10", count="5", disposition="reject", dkim="fail", spf="fail",
            header_from="example.com", envelope_from="example.com", envelope_to="example.org",
            reasons=[("forwarded", "list"), ("sampled_out", None)],
            dkim_results=[("example.com", "sel1", "fail"), ("other.example", None, "neutral")],
            spf_results=[("example.com", "mfrom", "fail"), ("mx.example.com", "helo", "pass")]),
        Rec(source_ip="192.0.2.11", count="0", disposition="quarantine", dkim_results=[]),
    ]
    data = aggregate_xml(records, extra_policy="<pct>50</pct><fo>d:s</fo>",
                         extra_metadata="<extra_contact_info>call us</extra_contact_info>"
                                        "<error>first</error><error>  second  </error><error> </error>")
    parsed = parse(data)
    header = parsed.header
    assert (header.org_name, header.email, header.extra_contact_info, header.report_id) == (
        "receiver.example", "noreply@receiver.example", "call us", "report-1")
    assert header.errors == ("first", "second")
    assert (header.policy.pct, header.policy.fo, header.policy.sp) == (50, "d:s", "reject")
    assert header.xml_namespace is None
    first, second = parsed.records
    assert (first["source_ip"], first["count"], first["disposition"], first["dkim"], first["spf"]) == (
        "192.0.2.10", 5, "reject", "fail", "fail")
    assert (first["envelope_from"], first["envelope_to"]) == ("example.com", "example.org")
    assert (second["count"], second["disposition"]) == (0, "quarantine")
    assert [(r["record_no"], r["seq"], r["type"], r["comment"]) for r in parsed.reasons] == [
        (1, 0, "forwarded", "list"), (1, 1, "sampled_out", None)]
    assert [(r["record_no"], r["seq"], r["domain"], r["selector"], r["result"]) for r in parsed.dkim] == [
        (1, 0, "example.com", "sel1", "fail"), (1, 1, "other.example", None, "neutral")]
    assert [(r["record_no"], r["seq"], r["domain"], r["scope"], r["result"]) for r in parsed.spf] == [
        (1, 0, "example.com", "mfrom", "fail"), (1, 1, "mx.example.com", "helo", "pass"),
        (2, 0, "example.com", "mfrom", "pass")]
    assert parsed.messages == 5
    assert parsed.notes == []


def test_google_np_in_rfc7489_shaped_report() -> None:
    """Google emits <np> in otherwise RFC 7489 reports (§7)."""
    parsed = parse(aggregate_xml(extra_policy="<pct>100</pct><np>quarantine</np>"))
    assert parsed.header.policy.np == "quarantine"
    assert parsed.header.policy.pct == 100
    assert parsed.notes == []


def test_missing_pct_and_version_are_not_errors() -> None:
    """RFC 9990 removes pct and makes version optional; 25 of 44 real files lack version (§1)."""
    parsed = parse(aggregate_xml(extra_policy="", version=None, namespace=DMARC2_NS))
    assert parsed.header.policy.pct is None
    assert parsed.header.version is None
    assert parsed.notes == []


def test_extension_content_does_not_change_the_header() -> None:
    """An <extension> may hold anything, including elements named like DMARC's own (§2)."""
    extension = (b"<extension><ext:meta xmlns:ext='urn:example:ext'><ext:version>9.9</ext:version>"
                 b"<ext:policy_published><ext:domain>elsewhere.example</ext:domain><ext:p>none</ext:p>"
                 b"</ext:policy_published></ext:meta></extension>")
    plain = aggregate_xml([Rec(count="2")], namespace=DMARC2_NS)
    extended = plain.replace(b"</policy_published>", b"</policy_published>" + extension)
    assert extended != plain
    expected, parsed = parse(plain), parse(extended)
    assert parsed.header == expected.header
    assert parsed.records == expected.records


def test_record_extension_does_not_change_the_header() -> None:
    """Namespaced elements at the end of a record are extensions (§2), not report fields."""
    plain = aggregate_xml([Rec(count="2"), Rec(count="3")], namespace=DMARC2_NS)
    extended = plain.replace(b"</auth_results>", b"</auth_results><x:version xmlns:x='urn:x'>7</x:version>")
    source = open_aggregate(io.BytesIO(extended))
    raw = source.header()
    batches = list(source.batches())
    assert sum(len(batch) for batch in batches) == 2
    assert raw.version == "1.0"
    assert parse(extended).header == parse(plain).header


# -- 3. leniency -------------------------------------------------------------------------------

def test_case_folding_and_synonyms_keep_raw_values() -> None:
    """Pass casing, hardfail, unknown and error are folded, the originals kept (§7)."""
    record = Rec(disposition="None", dkim="Pass", spf="hardfail", reasons=[("Trusted_Forwarder", None)],
                 dkim_results=[("example.com", "s", "Pass"), ("example.com", "t", "unknown")],
                 spf_results=[("example.com", "MFROM", "hardfail"), ("example.com", "helo", "error")])
    parsed = parse(aggregate_xml([record]))
    row = parsed.records[0]
    assert (row["disposition"], row["dkim"], row["spf"]) == ("none", "pass", "fail")
    assert parsed.raw_values(0) == {"disposition": "None", "dkim": "Pass", "spf": "hardfail"}
    assert [(r["type"], r["type_raw"]) for r in parsed.reasons] == [
        ("trusted_forwarder", "Trusted_Forwarder")]
    assert [(r["result"], r["result_raw"]) for r in parsed.dkim] == [
        ("pass", "Pass"), ("temperror", "unknown")]
    assert [(r["scope"], r["result"], r["result_raw"]) for r in parsed.spf] == [
        ("mfrom", "fail", "hardfail"), ("helo", "permerror", "error")]


def test_padded_numbers() -> None:
    """Tab/space padding inside numbers (oliverpool, patrickkerrigan untrimmed) (§7)."""
    data = aggregate_xml([Rec(count="\n\t\t7\n\t")], begin=" 1700000000\t", end="\n1700086399 ",
                         extra_policy="<pct> 100 </pct>")
    parsed = parse(data)
    assert counts(parsed) == [7]
    assert parsed.header.begin == datetime.fromtimestamp(1700000000, UTC)
    assert parsed.header.end == datetime.fromtimestamp(1700086399, UTC)
    assert parsed.header.policy.pct == 100
    assert parsed.notes == []


def test_missing_required_fields_become_nulls_with_notes() -> None:
    """XSD "required" is advisory in practice: keep the record, null the field, say so."""
    data = aggregate_xml([Rec(count="1"), Rec(count="2")]).replace(
        b"<identifiers><envelope_from>example.com</envelope_from><header_from>example.com</header_from>"
        b"</identifiers>", b"", 1).replace(b"<count>2</count>", b"", 1)
    parsed = parse(data)
    assert len(parsed.records) == 2
    assert parsed.records[0]["header_from"] is None
    assert parsed.records[1]["count"] is None
    assert mentions(parsed.notes, "record 1", "identifiers")
    assert mentions(parsed.notes, "record 1", "header_from")
    assert mentions(parsed.notes, "record 2", "count")


def test_unreadable_record_is_counted_and_named() -> None:
    """A record with nothing in it cannot be stored, but must not vanish without a word."""
    data = aggregate_xml([Rec(count="1"), Rec(count="2"), Rec(count="3")])
    first = data.index(b"<record>")
    second = data.index(b"<record>", first + 1)
    third = data.index(b"<record>", second + 1)
    data = data[:second] + b"<record><junk>?</junk></record>\n" + data[third:]
    parsed = parse(data)
    assert counts(parsed) == [1, 3]
    assert [record["record_no"] for record in parsed.records] == [1, 3]
    assert mentions(parsed.notes, "record 2", "could not be read")


def test_ip_addresses_validated_and_canonicalised() -> None:
    records = [Rec(source_ip="2001:DB8:0:0::1"), Rec(source_ip=" 192.0.2.5 "), Rec(source_ip="300.1.1.1"),
               Rec(source_ip="fe80::1::2")]
    parsed = parse(aggregate_xml(records))
    assert [record["source_ip"] for record in parsed.records] == ["2001:db8::1", "192.0.2.5", None, None]
    assert parsed.records[0]["source_ip_packed"] == bytes.fromhex("20010db8000000000000000000000001")
    assert parsed.records[1]["source_ip_packed"] == V4_MAPPED + bytes([192, 0, 2, 5])
    assert parsed.raw_values(0) == {"source_ip": "2001:DB8:0:0::1"}
    assert parsed.raw_values(2) == {"source_ip": "300.1.1.1"}
    assert parsed.raw_values(3) == {"source_ip": "fe80::1::2"}
    assert mentions(parsed.notes, "source_ip", "2 records", "first is record 3")


def test_negative_count_and_reversed_dates_are_noted() -> None:
    parsed = parse(aggregate_xml([Rec(count="-4")], begin="1700086399", end="1700000000"))
    assert counts(parsed) == [None]
    assert parsed.raw_values(0) == {"count": "-4"}
    assert mentions(parsed.notes, "record 1", "count")
    assert mentions(parsed.notes, "begin", "after")


def test_empty_reason_type() -> None:
    """parsedmarc's empty_reason.xml: `<reason><type/>` (§7)."""
    data = aggregate_xml([Rec(reasons=[("other", "x")])]).replace(b"<type>other</type>", b"<type/>")
    parsed = parse(data)
    assert [(r["type"], r["comment"]) for r in parsed.reasons] == [(None, "x")]
    assert mentions(parsed.notes, "record 1", "reason")


@pytest.mark.parametrize(("element", "value", "raw"), [
    (b"<envelope_from>&lt;&gt;</envelope_from>", "", {"envelope_from": "<>"}),
    (b"<envelope_from></envelope_from>", "", {}),
    (b"<envelope_from/>", "", {}),
    (b"", None, {}),
])
def test_envelope_from_null_reverse_path(element: bytes, value: str | None, raw: dict[str, str]) -> None:
    """`<>` (DmarcAnalyzerApp#196) and empty mean the null reverse-path: "", not absent (§2, §7)."""
    data = aggregate_xml([Rec(envelope_from="@@")]).replace(b"<envelope_from>@@</envelope_from>", element)
    parsed = parse(data)
    assert parsed.records[0]["envelope_from"] == value
    assert parsed.raw_values(0) == raw
    assert parsed.notes == []


def test_windows_1252_declaration_with_non_ascii_bytes() -> None:
    """AOL declares windows-1252 and sends bytes that are not UTF-8 (§7)."""
    text = aggregate_xml([Rec(reasons=[("other", "café – 20€")])], org_name="AOL Düsseldorf",
                         declaration='<?xml version="1.0" encoding="windows-1252"?>\n').decode("utf-8")
    parsed = parse(text.encode("cp1252"))
    assert parsed.header.org_name == "AOL Düsseldorf"
    assert parsed.reasons[0]["comment"] == "café – 20€"
    assert parsed.problems == []


@pytest.mark.parametrize("prefix", [
    pytest.param(b"", id="plain"),
    pytest.param(b"\xef\xbb\xbf", id="utf8-bom"),
    pytest.param(b"  \r\n\t", id="leading-whitespace"),
    pytest.param(b"\xef\xbb\xbf \n", id="bom-and-whitespace"),
])
@pytest.mark.parametrize("declaration", [
    pytest.param('<?xml version="1.0" encoding="UTF-8"?>\n', id="utf8"),
    pytest.param("<?xml version='1.0' encoding='utf-8'?>\n", id="mailru-single-quotes"),
    pytest.param('<?xml version="1.0"?>\n', id="no-encoding"),
    pytest.param("", id="no-declaration"),
])
def test_declarations_bom_and_leading_whitespace(prefix: bytes, declaration: str) -> None:
    """Mail.ru quotes, UTF-8 BOM, whitespace before the declaration (patrickkerrigan) (§7).

    Whitespace before a declaration is not XML; it is removed and noted. A BOM is allowed, and
    whitespace before a root element with no declaration is too: neither is noted.
    """
    data = prefix + aggregate_xml([Rec(count="2", reasons=[("other", "naïve")])], declaration=declaration)
    parsed = parse(data)
    assert counts(parsed) == [2]
    assert parsed.reasons[0]["comment"] == "naïve"
    assert parsed.header.org_name == "receiver.example"
    junk = bool(declaration) and prefix.lstrip(b"\xef\xbb\xbf") != b""
    assert parsed.notes == (["whitespace before the XML declaration removed"] if junk else [])


def test_microsoft_xsd_xsi_prefixes_and_crlf() -> None:
    """Outlook.com declares xsd/xsi prefixes and ends lines with CRLF (§7)."""
    data = aggregate_xml([Rec(count="2"), Rec(count="3")]).replace(
        b"<feedback>", b'<feedback xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
                       b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">').replace(b"\n", b"\r\n")
    data = data.replace(b"><", b">\r\n  <")
    parsed = parse(data)
    assert counts(parsed) == [2, 3]
    assert parsed.records[0]["header_from"] == "example.com"
    assert parsed.header.xml_namespace is None
    assert parsed.notes == []


def test_ikea_unclosed_schema_wrapper() -> None:
    """IKEA wraps the report in an `<xs:schema>` it never closes (parsedmarc#18) (§7)."""
    data = aggregate_xml([Rec(count="1"), Rec(count="2")], org_name="ikea.com", declaration=(
        '<?xml version="1.0"?>\n<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">\n'))
    parsed = parse(data)
    assert counts(parsed) == [1, 2]
    assert parsed.header.org_name == "ikea.com"
    assert mentions(parsed.problems, "repaired")


@pytest.mark.parametrize(("damage", "header_from"), [
    pytest.param(b"exa\xffmple.com", None, id="invalid-utf8-byte"),
    pytest.param(b"A & B", "a  b", id="unescaped-ampersand"),
    pytest.param(b"exa&mple.com", "exa", id="ampersand-as-entity"),
    pytest.param(b"bad<xml.net", "bad", id="unescaped-lt-before-a-name"),
    pytest.param(b"a < b", "a", id="unescaped-lt-before-space"),
    pytest.param(b"<2", None, id="unescaped-lt-before-digit"),
])
def test_recoverable_damage_in_a_record_keeps_every_record(damage: bytes, header_from: str | None) -> None:
    """Damage inside one record (parsedmarc#122) must not cost the records after it.

    libxml2's recovery mode reads past each of these (a non-streaming recover parse returns
    every record); what was repaired is noted.
    """
    records = [Rec(count=str(n)) for n in range(1, 6)]
    records[1] = Rec(count="2", header_from="@@")
    data = aggregate_xml(records).replace(b"@@", damage)
    parsed = parse(data)
    assert len(parsed.records) == 5, parsed.problems
    assert counts(parsed)[2:] == [3, 4, 5]
    assert parsed.problems, "the repair must be noted"
    if header_from is not None:
        assert parsed.records[1]["header_from"] is not None


def test_stray_text_between_elements_is_ignored() -> None:
    data = aggregate_xml([Rec(count="1"), Rec(count="2")]).replace(b"</row>", b"</row>stray text", 1)
    data = data.replace(b"</record>\n", b"</record>\nmore stray text\n", 1)
    parsed = parse(data)
    assert counts(parsed) == [1, 2]
    assert parsed.notes == []


def test_trailing_junk_after_the_report() -> None:
    parsed = parse(aggregate_xml([Rec(count="1")]) + b"\ntrailing <junk")
    assert counts(parsed) == [1]
    assert mentions(parsed.problems, "repaired")


def test_truncated_document_keeps_the_records_before_the_cut() -> None:
    data = aggregate_xml([Rec(count="1"), Rec(count="2"), Rec(count="3")])
    cut = data.index(b"<record>", data.index(b"<record>") + 1) + 40
    parsed = parse(data[:cut])
    assert counts(parsed)[0] == 1
    assert parsed.problems


def test_kddi_broken_report_id_close_tag_keeps_the_metadata() -> None:
    """KDDI writes `<report_id>…/report_id>` (cry-inc#21): the rest of the metadata must survive.

    org_name, email and report_id are well-formed and come before the damage; losing them
    also loses the report's identity, so every KDDI report would look like the same one.
    """
    data = aggregate_xml([Rec(count="1"), Rec(count="2")], org_name="kddi.com",
                         report_id="202504210000000")
    data = data.replace(b"202504210000000</report_id>", b"202504210000000/report_id>\n")
    parsed = parse(data)
    assert counts(parsed) == [1, 2]
    assert parsed.problems
    assert parsed.header.org_name == "kddi.com"
    assert parsed.header.email == "noreply@kddi.com"
    assert parsed.header.report_id is not None and parsed.header.report_id.startswith("202504210000000")
    assert parsed.header.policy.domain == "example.com"


def test_kddi_broken_report_id_close_tag_keeps_the_date_range() -> None:
    """After the broken tag libxml2 nests date_range inside report_id; begin/end are still there."""
    data = aggregate_xml([Rec(count="1")], org_name="kddi.com", report_id="202504210000000")
    data = data.replace(b"202504210000000</report_id>", b"202504210000000/report_id>\n")
    parsed = parse(data)
    assert parsed.header.begin == datetime.fromtimestamp(1700000000, UTC)
    assert parsed.header.end == datetime.fromtimestamp(1700086399, UTC)


def test_missing_record_close_tag_keeps_both_records() -> None:
    """A record whose `</record>` is lost swallows the next one; both are still readable."""
    data = aggregate_xml([Rec(count="1"), Rec(count="2"), Rec(count="3")]).replace(b"</record>", b"", 1)
    parsed = parse(data)
    assert parsed.problems
    assert sorted(counts(parsed)) == [1, 2, 3]  # type: ignore[type-var]


def test_undeclared_prefix_is_read_by_local_name() -> None:
    """A generator writing `dmarc:` prefixes it never declares: libxml2 recovers the elements
    (the prefix stays in their names); they are still DMARC's elements, not a crash."""
    data = aggregate_xml([Rec(count="2"), Rec(count="3")], namespace=DMARC2_NS, prefix="dmarc").replace(
        b' xmlns:dmarc="urn:ietf:params:xml:ns:dmarc-2.0"', b"")
    parsed = parse(data)
    assert counts(parsed) == [2, 3]
    assert parsed.header.org_name == "receiver.example"
    assert parsed.header.policy.p == "reject"
    assert parsed.problems


def test_text_before_the_root_is_refused_clearly() -> None:
    """Not even libxml2's recovery reads a document that starts with text: say so, do not crash."""
    with pytest.raises(MalformedReport, match="not a DMARC aggregate report"):
        parse(b"Hello there\n" + aggregate_xml())


@pytest.mark.parametrize("data", [
    pytest.param(b"<html><body>not a report</body></html>", id="other-xml"),
    pytest.param(b"<feedback><version>1.0</version></feedback>", id="empty-feedback"),
    pytest.param(b"<?xml version='1.0'?>", id="declaration-only"),
    pytest.param(b"<", id="lt-only"),
])
def test_documents_without_report_content_are_malformed(data: bytes) -> None:
    with pytest.raises(MalformedReport):
        parse(data)


# -- 4. safety ---------------------------------------------------------------------------------

DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
BODY = aggregate_xml(org_name="&xxe;")[len(DECLARATION):]
PLAIN_BODY = aggregate_xml()[len(DECLARATION):]
SECRET = "rua-test-secret-7f3c"

UNSAFE = {
    "xxe-file": b'<!DOCTYPE feedback [<!ENTITY xxe SYSTEM "file://{secret}">]>\n' + BODY,
    "xxe-http": b'<!DOCTYPE feedback [<!ENTITY xxe SYSTEM "http://127.0.0.1:{port}/x">]>\n' + BODY,
    "billion-laughs": (b'<!DOCTYPE feedback [<!ENTITY a "lollollollollol">'
                       + b"".join(b'<!ENTITY %s "%s">' % (bytes([98 + i]), b"&%s;" % bytes([97 + i]) * 10)
                                  for i in range(9))
                       + b'<!ENTITY xxe "&j;">]>\n' + BODY),
    "external-dtd": b'<!DOCTYPE feedback SYSTEM "http://127.0.0.1:{port}/evil.dtd">\n' + PLAIN_BODY,
    "public-dtd": b'<!DOCTYPE feedback PUBLIC "-//X//Y" "http://127.0.0.1:{port}/p.dtd">\n' + PLAIN_BODY,
    "parameter-entity": (b'<!DOCTYPE feedback [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/p"> %p;]>\n'
                         + PLAIN_BODY),
    "after-comment-and-pi": b"<!-- hello --><?pi x?>\n<!DOCTYPE feedback>\n" + PLAIN_BODY,
    "lower-case": b'<!doctype feedback SYSTEM "http://127.0.0.1:{port}/l.dtd">\n' + PLAIN_BODY,
    "after-long-comment": (b"<!--" + b"x" * 70_000 + b"-->\n"
                           + b'<!DOCTYPE feedback SYSTEM "http://127.0.0.1:{port}/long.dtd">\n' + PLAIN_BODY),
}


class Listener:
    """A loopback TCP port that records whether anything connected to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def listener_server() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def listener(listener_server: Listener) -> Iterator[Listener]:
    """The shared loopback listener, checked to have seen no connection during the test."""
    before = listener_server.connections
    yield listener_server
    time.sleep(0.05)
    assert listener_server.connections == before, "the parser opened a network connection"


def unsafe_document(name: str, port: int, secret: Path, prefix: bytes = DECLARATION) -> bytes:
    return prefix + UNSAFE[name].replace(b"{port}", str(port).encode()).replace(
        b"{secret}", str(secret).encode())


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    return path


@pytest.mark.parametrize("name", list(UNSAFE))
@pytest.mark.parametrize("prefix", [pytest.param(DECLARATION, id="declared"),
                                    pytest.param(b"", id="undeclared"),
                                    pytest.param(b"\xef\xbb\xbf" + DECLARATION, id="bom")])
def test_dtds_are_refused_with_a_clear_reason(name: str, prefix: bytes, listener: Listener,
                                              secret_file: Path) -> None:
    """XXE, entity expansion and external DTDs: refused outright, and the message says why."""
    data = unsafe_document(name, listener.port, secret_file, prefix)
    with pytest.raises(UnsafeInput) as caught:
        parse(data)
    message = str(caught.value)
    assert "DTD" in message or "entit" in message.lower()
    assert "refused" in message


@pytest.mark.parametrize("name", list(UNSAFE))
def test_no_file_or_network_access_whatever_the_dtd(name: str, listener: Listener, secret_file: Path) -> None:
    """Whether or not a DTD is refused up front, parsing never reads files or opens connections
    (the `listener` fixture fails the test if anything connected to it)."""
    data = unsafe_document(name, listener.port, secret_file)
    try:
        parsed = parse(data)
    except IngestError:
        pass
    else:
        assert SECRET not in repr(parsed)


UTF16 = [pytest.param(b"\xff\xfe", "utf-16-le", id="le-bom"),
         pytest.param(b"\xfe\xff", "utf-16-be", id="be-bom")]


@pytest.mark.parametrize(("bom", "encoding"), UTF16)
def test_utf16_document_with_dtd_is_refused(bom: bytes, encoding: str) -> None:
    """The DTD check must see through UTF-16, which libxml2 reads as readily as UTF-8."""
    text = ('<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE feedback SYSTEM "http://127.0.0.1:9/x.dtd">\n'
            + PLAIN_BODY.decode())
    with pytest.raises(UnsafeInput, match="DTD"):
        parse(bom + text.encode(encoding))


@pytest.mark.parametrize(("bom", "encoding"), UTF16)
def test_utf16_document_without_dtd_is_read(bom: bytes, encoding: str) -> None:
    text = aggregate_xml([Rec(count="4")], declaration='<?xml version="1.0" encoding="UTF-16"?>\n').decode()
    assert counts(parse(bom + text.encode(encoding))) == [4]


def test_entity_declared_deep_in_the_document_is_refused() -> None:
    """An <!ENTITY> anywhere in the opening bytes is refused, not just right after the prolog."""
    data = (DECLARATION + b"<!-- c -->\n<!DOCTYPE feedback [\n<!ELEMENT feedback ANY>\n<!ENTITY e 'x'>]>\n"
            + BODY)
    with pytest.raises(UnsafeInput):
        parse(data)


# -- 5. streaming ------------------------------------------------------------------------------

STREAM_HEAD = (b'<?xml version="1.0" encoding="UTF-8"?>\n<feedback><report_metadata><org_name>big</org_name>'
               b"<email>e@big.example</email><report_id>big-1</report_id><date_range><begin>1700000000</begin>"
               b"<end>1700086399</end></date_range></report_metadata><policy_published><domain>example.com"
               b"</domain><p>none</p></policy_published>\n")
STREAM_RECORD = (b"<record><row><source_ip>10.0.%d.%d</source_ip><count>3</count><policy_evaluated>"
                 b"<disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>"
                 b"<identifiers><header_from>example.com</header_from></identifiers><auth_results><spf>"
                 b"<domain>example.com</domain><result>pass</result></spf></auth_results>%s</record>\n")


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class GeneratedStream(io.RawIOBase):
    """A document produced block by block as it is read: it is never whole in memory.

    Resident memory is sampled at each read, so `peak` is the high-water mark while parsing.
    """

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._pending = b""
        self.size = 0
        self.peak = _rss()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._pending:
            block = next(self._blocks, None)
            if block is None:
                return 0
            self._pending = block
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.size += n
        self.peak = max(self.peak, _rss())
        return n


def generated_report(records: int, extension: bytes = b"") -> Iterator[bytes]:
    yield STREAM_HEAD
    block = b"".join(STREAM_RECORD % (i >> 8 & 255, i & 255, extension) for i in range(1000))
    for _ in range(records // 1000):
        yield block
    yield b"</feedback>\n"


def test_memory_stays_flat_however_many_records() -> None:
    """A report far larger than the memory it may use is read completely (150k records, ~50 MB)."""
    records = 150_000
    stream = GeneratedStream(generated_report(records))
    before = _rss()
    source = open_aggregate(io.BufferedReader(stream, 256 * 1024), ReadMode.SERIAL)
    assert source.header().metadata["org_name"] == "big"
    seen = messages = 0
    for batch in source.batches():
        seen += len(batch)
        messages += batch.messages
        assert not batch.notes
    assert seen == records
    assert messages == 3 * records
    assert stream.size > 45_000_000
    growth = stream.peak - before
    assert growth < 24 * 1024 * 1024, f"resident memory grew by {growth / 2**20:.0f} MiB"


def test_memory_is_not_retained_for_element_names_a_report_invents() -> None:
    """RFC 9990 lets records carry extension elements of any name; a long-running collector must
    not keep something for every name it ever saw, or a sender can grow it without bound (a
    bounded cache is fine: 16,000 distinct names may leave well under a megabyte behind)."""
    head = (b"<feedback xmlns:x='urn:example:ext'><report_metadata><org_name>o</org_name>"
            b"</report_metadata><policy_published><domain>example.com</domain><p>none</p>"
            b"</policy_published>\n")

    def read(first: int, records: int) -> int:
        data = head + b"".join(b"<record><row><count>1</count></row><x:e%d/></record>\n" % n
                               for n in range(first, first + records)) + b"</feedback>"
        source = open_aggregate(io.BytesIO(data), ReadMode.SERIAL)
        source.header()
        total = 0
        for batch in source.batches():
            total += len(batch)
        return total

    read(10**9, 200)  # warm every cache with names that will not come again
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert read(0, 16_000) == 16_000
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert retained < 1_250_000, f"{retained} bytes kept after the report was read"


def test_batches_are_bounded() -> None:
    """Rows are handed over in bounded batches, not as one list per report."""
    source = open_aggregate(io.BufferedReader(GeneratedStream(generated_report(12_000))), ReadMode.SERIAL)
    source.header()
    sizes = [len(batch) for batch in source.batches()]
    assert sum(sizes) == 12_000
    assert len(sizes) > 1
    assert max(sizes) <= 5000


# -- the shared corpus -------------------------------------------------------------------------

def corpus_rows(corpus: Path) -> list[dict[str, str]]:
    with open(corpus / "MANIFEST.tsv", newline="") as manifest:
        return [row for row in csv.DictReader(manifest, delimiter="\t") if row["kind"] == "aggregate"]


def test_corpus_aggregate_reports_yield_their_records(corpus: Path) -> None:
    """Every real aggregate file gives exactly the records MANIFEST.tsv counts, and its reporter."""
    failures = []
    for row in corpus_rows(corpus):
        path = corpus / row["relpath"]
        found = 0
        orgs = []
        for item in unpack(lambda path=path: open(path, "rb"), row["relpath"],
                           DecompressionBudget(UnpackLimits())):
            if isinstance(item, Payload) and item.kind is ReportKind.AGGREGATE:
                with item.open() as stream:
                    data = stream.read()
                parsed = parse(data)
                found += len(parsed.records)
                orgs.append((parsed.header.org_name or "").strip("\"'"))
        if str(found) != row["record_count"]:
            failures.append(f"{row['relpath']}: {found} records, manifest says {row['record_count']}")
        if row["reporting_org"] and orgs != [row["reporting_org"].strip("\"'")]:
            failures.append(f"{row['relpath']}: org {orgs}, manifest says {row['reporting_org']!r}")
    assert not failures, "\n".join(failures)


def test_corpus_quirky_files(corpus: Path) -> None:
    """Spot checks on the corpus files that carry a named quirk (§7)."""
    base = corpus / "domainaware__parsedmarc/samples/aggregate"
    ikea = parse((base / "ikea.com!example.de!1538690400!1538776800.xml").read_bytes())
    assert ikea.header.org_name == "ikea.com" and len(ikea.records) == 1 and ikea.problems
    sample = parse((base / "rfc9990-sample.xml").read_bytes())
    assert sample.header.xml_namespace == DMARC2_NS
    assert sample.records[0]["disposition"] == "pass"
    assert sample.header.generator is not None
    empty_reason = parse((base / "empty_reason.xml").read_bytes())
    assert empty_reason.reasons and empty_reason.reasons[0]["type"] is None
    upper = parse((base.parent / "aggregate_invalid/report_with_upper_cased_pass.xml").read_bytes())
    assert {upper.records[0]["dkim"], upper.records[0]["spf"]} <= {"pass", "fail"}
    viewer = corpus / "cry-inc__dmarc-report-viewer/testdata/dmarc-reports"
    hardfail = parse((viewer / "hardfail.xml").read_bytes())
    assert "hardfail" in [row["result_raw"] for row in hardfail.spf + hardfail.dkim] + [
        json.loads(row["raw_values"] or "{}").get("spf") for row in hardfail.records]  # type: ignore[arg-type]
