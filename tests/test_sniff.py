"""Containers are told apart by their first bytes, never by file name or declared MIME type.

Real senders mislabel reports all the time (gzip as application/octet-stream, zip as text/xml,
XML named .zip), so `sniff` must classify the bytes alone, and the pipeline must store a report
whatever its name or label says.
"""

from __future__ import annotations

import gzip
import os
import random
import zlib
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from ingest.pipeline import IngestPipeline
from ingest.sniff import SNIFF_BYTES, ContainerKind, describe, looks_like_aggregate_xml, sniff
from tests import samples

XML = samples.aggregate_xml()
TLS_JSON = (b'{"organization-name":"Google Inc.","date-range":{"start-datetime":"2024-01-01T00:00:00Z",'
            b'"end-datetime":"2024-01-01T23:59:59Z"},"report-id":"r1","policies":[]}')


def head(data: bytes) -> bytes:
    """What the unpacker hands to `sniff`: at most the first SNIFF_BYTES bytes."""
    return data[:SNIFF_BYTES]


# -- XML -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    pytest.param(XML, id="with-declaration"),
    pytest.param(samples.aggregate_xml(declaration=""), id="no-declaration"),
    pytest.param(samples.aggregate_xml(declaration="<?xml version='1.0' encoding='utf-8'?>"),
                 id="single-quoted-declaration"),
    pytest.param(b"\xef\xbb\xbf" + XML, id="utf8-bom"),
    pytest.param(b"\xef\xbb\xbf\r\n  " + XML, id="bom-then-whitespace"),
    pytest.param(b"\n\n   \t" + XML, id="leading-whitespace"),
    pytest.param(b"\r\n" + samples.aggregate_xml(declaration=""), id="leading-crlf-no-declaration"),
    pytest.param(samples.aggregate_xml(namespace=samples.DMARC2_NS, prefix="d"), id="prefixed-dmarc2"),
    pytest.param(b"\xff\xfe" + XML.decode().encode("utf-16-le"), id="utf16le-bom"),
    pytest.param(b"\xfe\xff" + XML.decode().encode("utf-16-be"), id="utf16be-bom"),
    pytest.param(XML.decode().encode("utf-16-le"), id="utf16le-no-bom"),
    pytest.param(XML.decode().encode("utf-16-be"), id="utf16be-no-bom"),
])
def test_xml_in_every_real_shape_is_xml(data: bytes) -> None:
    """Declarations, BOMs and padding vary by sender; all of them are XML documents."""
    assert sniff(head(data)) is ContainerKind.XML


# -- compressed containers -------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    pytest.param(samples.gz(XML), id="gzip"),
    pytest.param(samples.gz(XML, trailing=b"\r\n"), id="gzip-mimecast-trailing-bytes"),
    pytest.param(samples.multi_member_gz(XML), id="multi-member-gzip"),
    pytest.param(gzip.compress(b""), id="gzip-of-nothing"),
    pytest.param(samples.gz(samples.zipped({"a.xml": XML})), id="gzip-of-zip"),
])
def test_gzip_is_recognised_by_its_magic(data: bytes) -> None:
    assert sniff(head(data)) is ContainerKind.GZIP


@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_raw_zlib_is_recognised_at_every_level(level: int) -> None:
    """The zlib header's second byte depends on the level (78 01, 78 5e, 78 9c, 78 da)."""
    data = zlib.compress(XML, level)
    assert sniff(head(data)) is ContainerKind.ZLIB


@pytest.mark.parametrize("data", [
    pytest.param(samples.zipped({"report.xml": XML}), id="one-member"),
    pytest.param(samples.zipped({"a.xml": XML, "b/c.xml": XML}), id="subfolder"),
    pytest.param(samples.zipped({"inner.zip": samples.zipped({"a.xml": XML})}), id="zip-in-zip"),
    pytest.param(samples.zipped({}), id="empty-archive"),
])
def test_zip_is_recognised_by_its_magic(data: bytes) -> None:
    assert sniff(head(data)) is ContainerKind.ZIP


# -- JSON (SMTP TLS reports) ------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    TLS_JSON, b"\n  " + TLS_JSON, b"\xef\xbb\xbf" + TLS_JSON, b"[" + TLS_JSON + b"]",
], ids=["object", "leading-whitespace", "bom", "array"])
def test_json_is_json(data: bytes) -> None:
    assert sniff(head(data)) is ContainerKind.JSON


# -- e-mail and mbox --------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    pytest.param(samples.email_with([(samples.gz(XML), "application/gzip", "r.xml.gz")]), id="multipart"),
    pytest.param(samples.single_part_email(samples.gz(XML)), id="single-part"),
    pytest.param(b"Return-Path: <>\r\nReceived: from mx.example (mx.example [192.0.2.1])\r\n"
                 b"\tby mx.example.com; Mon, 1 Jan 2024 00:00:00 +0000\r\nSubject: x\r\n\r\nbody\r\n",
                 id="received-headers-crlf"),
    pytest.param(b"Delivered-To: dmarc@example.com\nX-Spam-Score: 0.1\nFrom: a@b\n\nbody\n",
                 id="delivered-to-lf"),
    pytest.param(b"From: noreply@receiver.example\nSubject: Report\n\nbody\n", id="from-colon-header"),
])
def test_rfc5322_messages_are_email(data: bytes) -> None:
    """A message is recognised by its header lines, whichever header comes first."""
    assert sniff(head(data)) is ContainerKind.EMAIL


@pytest.mark.parametrize("data", [
    pytest.param(samples.mbox([samples.email_with([(samples.gz(XML), "application/gzip", "a.gz")])] * 3),
                 id="several-messages"),
    pytest.param(samples.mbox([samples.single_part_email(samples.gz(XML))]), id="one-message"),
])
def test_mbox_starts_with_a_from_line(data: bytes) -> None:
    """`From ` (with a space) is an mbox separator; `From:` is a header (tested above)."""
    assert sniff(head(data)) is ContainerKind.MBOX


# -- nothing, or nothing known ----------------------------------------------------------------------

@pytest.mark.parametrize("data", [b"", b" ", b"\n\r\n\t  \n", b"\x0b\x0c"],
                         ids=["no-bytes", "space", "newlines", "vertical-whitespace"])
def test_empty_or_blank_is_empty(data: bytes) -> None:
    assert sniff(data) is ContainerKind.EMPTY


@pytest.mark.parametrize("data", [
    pytest.param(b"unused", id="yahoo-unused"),
    pytest.param(b"\x00" * 64, id="zeros"),
    pytest.param(bytes(range(256)), id="all-bytes"),
    pytest.param(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", id="pdf"),
    pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", id="png"),
    pytest.param(b"hello world, this is not a report\n", id="prose"),
    pytest.param(b"\xef\xbb\xbf", id="bom-only"),
    pytest.param(b"BZh91AY&SY", id="bzip2"),
    pytest.param(b"\xfd7zXZ\x00", id="xz"),
    pytest.param(b"x", id="lone-x"),
])
def test_unknown_bytes_are_unknown(data: bytes) -> None:
    """Junk must not be mistaken for a container the unpacker would then misread."""
    assert sniff(data) is ContainerKind.UNKNOWN


def test_random_bytes_are_never_mistaken_for_text_containers() -> None:
    """Random binary data is unknown, or at most zlib (its 2-byte header can collide)."""
    rng = random.Random(1234)
    for _ in range(500):
        blob = rng.randbytes(64)
        if blob[:1] in (b"<", b"{", b"[", b" ", b"\t", b"\r", b"\n") or blob[:2] in (b"\x00<", b"\xef\xbb"):
            continue  # these really are how XML or JSON may start
        assert sniff(blob) in (ContainerKind.UNKNOWN, ContainerKind.ZLIB), blob


# -- only the bytes count ---------------------------------------------------------------------------

@given(prefix=st.text(alphabet=" \t\r\n", max_size=40), bom=st.booleans())
@settings(max_examples=60, deadline=None)
def test_any_bom_and_padding_before_xml_is_xml(prefix: str, bom: bool) -> None:
    data = (b"\xef\xbb\xbf" if bom else b"") + prefix.encode() + XML
    assert sniff(head(data)) is ContainerKind.XML


@given(payload=st.binary(max_size=2000))
@settings(max_examples=60, deadline=None)
def test_gzip_and_zip_of_anything_are_still_gzip_and_zip(payload: bytes) -> None:
    """Whatever is inside, the outer container is decided by its own magic bytes."""
    assert sniff(head(samples.gz(payload))) is ContainerKind.GZIP
    assert sniff(head(samples.zipped({"x.bin": payload}))) is ContainerKind.ZIP


def test_sniff_reads_only_the_head() -> None:
    """A blob is judged by its start: a gzip header followed by megabytes of XML is gzip."""
    data = samples.gz(XML)[:10] + XML * 1000
    assert sniff(head(data)) is ContainerKind.GZIP


# -- aggregate XML inside e-mail --------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    pytest.param(XML, id="plain"),
    pytest.param(samples.aggregate_xml(namespace=samples.DMARC2_NS), id="dmarc2-default-ns"),
    pytest.param(samples.aggregate_xml(namespace=samples.DMARC2_NS, prefix="dmarc"), id="prefixed"),
    pytest.param(b"<?xml version='1.0'?>\n<feedback\n xmlns:xsi='x'>", id="attribute-on-new-line"),
    pytest.param(b"<xs:schema><feedback/></xs:schema>", id="ikea-schema-wrapper"),
])
def test_aggregate_xml_is_told_from_other_xml(data: bytes) -> None:
    assert looks_like_aggregate_xml(data)


@pytest.mark.parametrize("data", [
    b"<html><body><p>Your DMARC report</p></body></html>",
    b"<?xml version='1.0'?><feedbackform><x/></feedbackform>",
    b"<!DOCTYPE html><html lang='en'><head><title>feedback</title></head></html>",
])
def test_html_and_lookalikes_are_not_aggregate_reports(data: bytes) -> None:
    """An HTML body is XML-ish; it must not be taken for a report (the element name decides)."""
    assert not looks_like_aggregate_xml(data)


def test_describe_shows_at_most_sixteen_bytes() -> None:
    assert describe(b"\x00\x01") == "00 01"
    shown = describe(bytes(range(40)))
    assert shown.startswith("00 01 02") and shown.endswith("…")
    assert "10" not in shown.split()  # byte 16 (0x10) is cut off


# -- the pipeline trusts bytes, not names or MIME labels --------------------------------------------

def _relabelled_email(payload: bytes, declared: str, filename: str) -> bytes:
    """An e-mail whose attachment's Content-Type (and file name) lie about its bytes."""
    message = MIMEMultipart("mixed")
    message["From"] = "noreply@receiver.example"
    message["To"] = "dmarc@example.com"
    message["Subject"] = samples.DEFAULT_SUBJECT
    message.attach(MIMEText("report attached", "plain"))
    part = MIMEApplication(payload, "octet-stream")
    part.replace_header("Content-Type", declared)
    part.add_header("Content-Disposition", "attachment", filename=filename)
    message.attach(part)
    return message.as_bytes()


MISLABELLED: dict[str, tuple[str, bytes]] = {
    "gzip-named-xml": ("report.xml", samples.gz(samples.aggregate_xml(report_id="m1"))),
    "xml-named-zip": ("report.zip", samples.aggregate_xml(report_id="m2")),
    "zip-named-gz": ("report.xml.gz", samples.zipped({"r.xml": samples.aggregate_xml(report_id="m3")})),
    "zlib-named-txt": ("notes.txt", samples.raw_zlib(samples.aggregate_xml(report_id="m4"))),
    "email-named-xml": ("report.xml", samples.single_part_email(
        samples.gz(samples.aggregate_xml(report_id="m5")))),
    "no-name-at-all": ("blob", samples.gz(samples.aggregate_xml(report_id="m6"))),
    "zip-declared-text-xml": ("mail.eml", _relabelled_email(
        samples.zipped({"r.xml": samples.aggregate_xml(report_id="m7")}), "text/xml", "report.xml")),
    "gzip-declared-text-plain": ("mail.eml", _relabelled_email(
        samples.gz(samples.aggregate_xml(report_id="m8")), "text/plain", "readme.txt")),
    "xml-declared-image": ("mail.eml", _relabelled_email(
        samples.aggregate_xml(report_id="m9"), "image/png", "logo.png")),
    "gzip-declared-zip": ("mail.eml", _relabelled_email(
        samples.gz(samples.aggregate_xml(report_id="m10")), "application/zip", "report.zip")),
}


@pytest.mark.parametrize("case", list(MISLABELLED))
def test_pipeline_stores_mislabelled_reports(case: str, pipeline: IngestPipeline, engine: Engine,
                                             tmp_path: Path) -> None:
    """File names and MIME types lie; the report must be found and stored from its bytes."""
    name, data = MISLABELLED[case]
    path = tmp_path / name
    path.write_bytes(data)
    outcome = pipeline.ingest_path(path)
    assert outcome.status == "ok", outcome
    assert [(r.kind, r.status, r.records) for r in outcome.reports] == [("aggregate", "new", 1)]
    with engine.connect() as conn:
        report_ids = conn.execute(text("SELECT report_id FROM aggregate_report")).scalars().all()
    assert report_ids == [f"m{list(MISLABELLED).index(case) + 1}"]


def test_original_container_is_recorded_from_bytes(pipeline: IngestPipeline, engine: Engine,
                                                   tmp_path: Path) -> None:
    """The quarantine listing shows what the input really was, not what its name claimed."""
    path = tmp_path / "report.xml"
    path.write_bytes(samples.zipped({"r.xml": XML}))
    pipeline.ingest_path(path)
    with engine.connect() as conn:
        container = conn.execute(text("SELECT container FROM original")).scalar_one()
    assert container == "zip"


def test_unknown_input_error_shows_its_first_bytes(pipeline: IngestPipeline, tmp_path: Path) -> None:
    """A user looking at a rejected file needs to see what it started with."""
    path = tmp_path / "report.xml.gz"
    path.write_bytes(b"%PDF-1.7\n" + os.urandom(100))
    outcome = pipeline.ingest_path(path)
    assert outcome.status == "failed"
    errors = " ".join(r.error or "" for r in outcome.reports) + (outcome.error or "")
    assert "25 50 44 46" in errors  # "%PDF" in hex
