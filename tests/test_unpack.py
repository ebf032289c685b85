"""Every container layer is opened and every report inside is found, within per-input limits.

`unpack` is tested directly (what it yields for each real-world container shape) and through
the pipeline on SQLite and PostgreSQL (what gets stored, and what each report's result is).
"""

from __future__ import annotations

import gzip
import io
import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from app.settings import Settings
from ingest.errors import IngestError, LimitExceeded, UnrecognisedInput
from ingest.limits import DecompressionBudget, UnpackLimits
from ingest.pipeline import IngestPipeline, InputOutcome
from ingest.unpack import Payload, ReportKind, UnpackFailure, unpack
from tests import samples
from tests.conftest import count_rows

XML = samples.aggregate_xml()
TLS_REPORT = json.dumps({
    "organization-name": "Google Inc.",
    "date-range": {"start-datetime": "2024-01-01T00:00:00Z", "end-datetime": "2024-01-01T23:59:59Z"},
    "contact-info": "smtp-tls-reporting@google.com", "report-id": "2024-01-01T00:00:00Z_example.com",
    "policies": [{"policy": {"policy-type": "sts", "policy-domain": "example.com"},
                  "summary": {"total-successful-session-count": 10, "total-failure-session-count": 0}}],
}).encode()


def report(report_id: str, records: int = 1) -> bytes:
    """A small, distinct aggregate report (its own identity, so it is stored as new)."""
    return samples.aggregate_xml([samples.Rec(source_ip=f"192.0.2.{i % 250 + 1}") for i in range(records)],
                                 report_id=report_id)


@dataclass
class Found:
    """One item `unpack` yielded, read while the walk is at it (as the pipeline reads it)."""

    location: str
    kind: ReportKind | None
    """None for an `UnpackFailure`."""
    data: bytes | None = None
    error: IngestError | None = None
    """The unpack failure, or what reading the payload raised."""
    notes: list[str] = field(default_factory=list)


def body(payload: Payload) -> bytes:
    with payload.open() as stream:
        return stream.read()


def run(data: bytes, limits: UnpackLimits | None = None, location: str = "input") -> list[Found]:
    """Unpack in-memory bytes as the pipeline does for one input, reading each payload in turn.

    Input-wide limits raise out of here, as they end the walk.
    """
    budget = DecompressionBudget(limits or UnpackLimits())
    found: list[Found] = []
    for item in unpack(lambda: io.BytesIO(data), location, budget):
        if isinstance(item, UnpackFailure):
            found.append(Found(item.location, None, error=item.error))
            continue
        entry = Found(item.location, item.kind)
        try:
            entry.data = body(item)
            # a conflicting copy is parsed twice: opening again must give the same bytes
            assert body(item) == entry.data
        except IngestError as exc:
            entry.error = exc
        entry.notes = list(item.notes)
        found.append(entry)
    return found


def payloads(found: list[Found]) -> list[Found]:
    return [item for item in found if item.kind is not None]


def failures(found: list[Found]) -> list[Found]:
    return [item for item in found if item.kind is None]


def only_payload(data: bytes, kind: ReportKind = ReportKind.AGGREGATE,
                 limits: UnpackLimits | None = None) -> Found:
    found = run(data, limits)
    assert not failures(found), [(f.location, f.error) for f in failures(found)]
    [payload] = payloads(found)
    assert payload.kind is kind
    assert payload.error is None, payload.error
    return payload


def message(parts: list[MIMEBase], subject: str = samples.DEFAULT_SUBJECT,
            subtype: str = "mixed", **params: str) -> bytes:
    outer = MIMEMultipart(subtype, **params)
    outer["From"] = "noreply-dmarc@receiver.example"
    outer["To"] = "dmarc@example.com"
    outer["Subject"] = subject
    for part in parts:
        outer.attach(part)
    return outer.as_bytes()


def attachment(data: bytes, subtype: str, filename: str | None, encoding: str = "base64") -> MIMEBase:
    part = MIMEApplication(data, subtype)
    if encoding != "base64":
        del part["Content-Transfer-Encoding"]
        part.set_payload(data.decode("latin-1"))
        part["Content-Transfer-Encoding"] = encoding
    if filename:
        part.add_header("Content-Disposition", "attachment", filename=filename)
    return part


def arf_report() -> bytes:
    """An RFC 6591 failure report: multipart/report; report-type=feedback-report."""
    feedback = MIMEBase("message", "feedback-report")
    feedback.set_payload("Feedback-Type: auth-failure\nVersion: 1\nAuth-Failure: dmarc\n"
                         "Source-IP: 192.0.2.1\nReported-Domain: example.com\n")
    original = MIMEText("From: someone@example.com\nSubject: hi\n", "rfc822-headers")
    return message([MIMEText("This is an authentication failure report."), feedback, original],
                   subject="FW: Authentication failure report", subtype="report",
                   report_type="feedback-report")


def plain_notice(subject: str, html: bool = False) -> bytes:
    """A non-ARF failure notice (Exim, Baruwa): only text, the subject says what it is."""
    note = MIMEText("<p>A message failed DMARC</p>" if html else "A message from 192.0.2.1 failed DMARC.",
                    "html" if html else "plain")
    note["From"] = "mailer-daemon@receiver.example"
    note["Subject"] = subject
    return note.as_bytes()


def tls_email(compressed: bool = True) -> bytes:
    """RFC 8460 §5: multipart/report; report-type=tlsrpt with application/tlsrpt+gzip."""
    data = gzip.compress(TLS_REPORT) if compressed else TLS_REPORT
    part = attachment(data, "tlsrpt+gzip" if compressed else "tlsrpt+json",
                      "google.com!example.com!1704067200!1704153599.json" + (".gz" if compressed else ""))
    return message([MIMEText("This is an aggregate TLS report from google.com"), part],
                   subject="Report Domain: example.com Submitter: google.com", subtype="report",
                   report_type="tlsrpt")


# == what unpack finds ===========================================================================

@pytest.mark.parametrize("data", [
    pytest.param(XML, id="declaration"),
    pytest.param(samples.aggregate_xml(declaration=""), id="no-declaration"),
    pytest.param(b"\xef\xbb\xbf" + XML, id="utf8-bom"),
    pytest.param(b" \t\r\n\n" + XML, id="leading-whitespace"),
])
def test_xml_is_handed_over_byte_for_byte(data: bytes) -> None:
    """The parser gets the document exactly as sent (BOM and padding are its business)."""
    payload = only_payload(data)
    assert payload.location == "input"
    assert payload.data == data


@pytest.mark.parametrize("data", [
    pytest.param(samples.gz(XML), id="gzip"),
    pytest.param(samples.multi_member_gz(XML, parts=3), id="multi-member-gzip"),
    pytest.param(samples.multi_member_gz(XML, parts=20), id="twenty-member-gzip"),
    pytest.param(samples.raw_zlib(XML), id="raw-zlib"),
    pytest.param(samples.gz(samples.gz(XML)), id="gzip-in-gzip"),
    pytest.param(samples.gz(XML) + b"\x00" * 512, id="gzip-then-zero-padding"),
])
def test_compressed_streams_inflate_to_the_exact_document(data: bytes) -> None:
    """Every gzip member is read, in order: a multi-member stream is one document."""
    assert only_payload(data).data == XML


def test_gzip_with_trailing_bytes_is_read_and_noted() -> None:
    """Mimecast appends two bytes after the gzip stream; Python's gzip module rejects that."""
    payload = only_payload(samples.gz(XML, trailing=b"\r\n"))
    assert payload.data == XML
    assert any("2 bytes after the end" in note for note in payload.notes), payload.notes


def test_zip_every_member_is_read() -> None:
    """Not only the first member: each report in an archive is found, subfolders included."""
    archive = samples.zipped({
        "a.xml": report("a"),
        "sub/dir/b.xml": report("b"),
        "c.xml.gz": samples.gz(report("c")),
        "d.zip": samples.zipped({"nested/d.xml": report("d")}),
    })
    items = run(archive)
    assert not failures(items)
    found = {p.location: p.data for p in payloads(items)}
    assert found == {
        "input/a.xml": report("a"),
        "input/sub/dir/b.xml": report("b"),
        "input/c.xml.gz": report("c"),
        "input/d.zip/nested/d.xml": report("d"),
    }


def test_zip_directory_entries_are_skipped() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("reports/"), b"")
        archive.writestr("reports/a.xml", report("a"))
    [payload] = payloads(run(buffer.getvalue()))
    assert payload.location == "input/reports/a.xml"


def test_zip_inside_gzip_is_read() -> None:
    """A zip that arrives compressed again cannot be seeked: it must still be read whole."""
    data = samples.gz(samples.zipped({"a.xml": report("a"), "b.xml": report("b")}))
    assert [p.data for p in payloads(run(data))] == [report("a"), report("b")]


def test_one_damaged_member_does_not_hide_its_siblings() -> None:
    archive = samples.zipped({"a.xml.gz": samples.gz(report("a"))[:-12], "b.xml": report("b")})
    found = {item.location: item for item in run(archive)}
    assert found["input/b.xml"].data == report("b")
    assert found["input/a.xml.gz"].data is None
    assert "truncated" in str(found["input/a.xml.gz"].error)


# -- e-mail ----------------------------------------------------------------------------------

EMAILS = {
    "octet-stream-attachment": samples.email_with([(samples.gz(XML), "application/octet-stream",
                                                     "r.xml.gz")]),
    "text-xml-attachment": samples.email_with([(XML, "text/xml", "r.xml")]),
    "inline-text-xml": samples.email_with([(XML, "text/xml", None)]),
    "inline-application-xml": samples.email_with([(XML, "application/xml", None)]),
    "x-gzip": samples.email_with([(samples.gz(XML), "application/x-gzip", "r.xml.gz")]),
    "gzip": samples.email_with([(samples.gz(XML), "application/gzip", "r.xml.gz")]),
    "zip": samples.email_with([(samples.zipped({"r.xml": XML}), "application/zip", "r.zip")]),
    "zip-without-body-text": samples.email_with([(samples.zipped({"r.xml": XML}), "application/zip",
                                                   "r.zip")], body=None),
    "forwarded-rfc822": samples.forwarded(samples.email_with([(samples.gz(XML), "application/gzip",
                                                               "r.gz")])),
    "forwarded-twice": samples.forwarded(samples.forwarded(samples.single_part_email(samples.gz(XML)))),
    "single-part-gzip-base64": samples.single_part_email(samples.gz(XML)),
    "single-part-zip-base64": samples.single_part_email(samples.zipped({"r.xml": XML}), "application/zip"),
    "single-part-xml-quoted-printable": samples.single_part_email(XML, "text/xml", "quoted-printable"),
    "single-part-xml-base64": samples.single_part_email(XML, "text/xml", "base64"),
    "quoted-printable-attachment": message([MIMEText("see attached"),
                                            attachment(XML, "xml", "r.xml", "quoted-printable")]),
    "7bit-attachment": message([attachment(XML, "xml", "r.xml", "7bit")]),
    "nested-multipart": message([MIMEText("hello"), MIMEMessage(message_from_bytes(
        message([attachment(samples.gz(XML), "gzip", "r.xml.gz")], subtype="related")))],
        subtype="alternative"),
}


@pytest.mark.parametrize("case", list(EMAILS))
def test_report_is_found_in_every_mime_shape(case: str) -> None:
    """Attachments, inline parts, any declared type, any transfer encoding, any nesting."""
    items = run(EMAILS[case])
    assert not failures(items), failures(items)
    [payload] = payloads(items)
    assert payload.kind is ReportKind.AGGREGATE
    assert payload.location.startswith("input/")
    assert payload.data == XML


def test_crlf_email_is_read() -> None:
    data = samples.email_with([(samples.gz(XML), "application/gzip", "r.xml.gz")]).replace(b"\n", b"\r\n")
    assert only_payload(data).data == XML


def test_email_with_several_reports_yields_each() -> None:
    data = message([
        MIMEText("three reports"),
        attachment(samples.gz(report("a")), "gzip", "a.xml.gz"),
        attachment(samples.zipped({"b.xml": report("b"), "c.xml": report("c")}), "zip", "bc.zip"),
        MIMEText(report("d").decode(), "xml"),
    ])
    found = sorted(p.data or b"" for p in payloads(run(data)))
    assert found == sorted([report("a"), report("b"), report("c"), report("d")])


@pytest.mark.parametrize("data", [
    pytest.param(samples.email_with([], body="Hello, no report here."), id="text-only"),
    pytest.param(samples.email_with([(b"<html><body>Your report</body></html>", "text/html", None)]),
                 id="text-and-html"),
    pytest.param(message([MIMEText("<html><p>x</p></html>", "html")]), id="html-only"),
    pytest.param(samples.single_part_email(b"unused"), id="yahoo-body-unused"),
    pytest.param(samples.single_part_email(samples.gz(b"unused")), id="yahoo-gzip-of-unused"),
    pytest.param(samples.email_with([(b"\x89PNG\r\n\x1a\n" + bytes(200), "image/png", "logo.png")]),
                 id="image-only"),
])
def test_email_without_report_fails_clearly(data: bytes) -> None:
    """Not silently empty: the user is told the message holds no report, and what it held."""
    items = run(data)
    assert not payloads(items)
    [failure] = failures(items)
    assert isinstance(failure.error, UnrecognisedInput)
    message_text = str(failure.error)
    assert "no report" in message_text or "not a report" in message_text, message_text


def test_email_without_report_names_its_parts() -> None:
    data = samples.email_with([(b"<html><body>x</body></html>", "text/html", None)])
    [failure] = failures(run(data))
    assert "text/plain" in str(failure.error) and "text/html" in str(failure.error)


# -- mbox ------------------------------------------------------------------------------------

def test_mbox_every_message_is_read() -> None:
    messages = [samples.email_with([(samples.gz(report(f"m{i}")), "application/gzip", f"m{i}.xml.gz")])
                for i in range(5)]
    found = payloads(run(samples.mbox(messages)))
    assert [p.data for p in found] == [report(f"m{i}") for i in range(5)]
    assert len({p.location for p in found}) == 5


def test_single_message_starting_with_from_line() -> None:
    """A saved message often begins with the mbox `From ` envelope line."""
    data = b"From noreply@google.com Mon Jan  1 00:00:00 2024\n" + samples.single_part_email(
        samples.zipped({"r.xml": XML}), "application/zip")
    assert only_payload(data).data == XML


def test_mbox_of_mixed_messages() -> None:
    """One message without a report does not hide the others."""
    data = samples.mbox([samples.single_part_email(samples.gz(report("a"))),
                         samples.email_with([], body="just chatting"),
                         samples.single_part_email(samples.gz(report("b")))])
    items = run(data)
    assert [p.data for p in payloads(items)] == [report("a"), report("b")]
    assert len(failures(items)) == 1


def test_mbox_in_gzip() -> None:
    messages = [samples.single_part_email(samples.gz(report(f"m{i}"))) for i in range(3)]
    data = samples.gz(samples.mbox(messages))
    assert len(payloads(run(data))) == 3


# -- failure and TLS reports: recognised, not parsed yet -----------------------------------------

@pytest.mark.parametrize(("data", "kind"), [
    pytest.param(arf_report(), ReportKind.FAILURE, id="arf"),
    pytest.param(plain_notice("DMARC Failure Report for example.com"), ReportKind.FAILURE, id="non-arf"),
    pytest.param(plain_notice("[Netease DMARC Failure Report] Rent Reminder"), ReportKind.FAILURE,
                 id="netease-subject"),
    pytest.param(plain_notice("Forensic report for dmarc policy of example.com", html=True),
                 ReportKind.FAILURE, id="non-arf-html"),
    pytest.param(TLS_REPORT, ReportKind.TLS, id="tls-json"),
    pytest.param(samples.gz(TLS_REPORT), ReportKind.TLS, id="tls-json-gzip"),
    pytest.param(tls_email(compressed=True), ReportKind.TLS, id="tls-email-gzip"),
    pytest.param(tls_email(compressed=False), ReportKind.TLS, id="tls-email-json"),
])
def test_failure_and_tls_reports_are_recognised(data: bytes, kind: ReportKind) -> None:
    items = run(data)
    assert not failures(items), failures(items)
    assert [p.kind for p in payloads(items)] == [kind]


def test_ordinary_mail_is_not_a_failure_report() -> None:
    """Only the subject makes a plain-text message a failure notice."""
    items = run(plain_notice("Lunch on Friday?"))
    assert not payloads(items) and len(failures(items)) == 1


# == limits ======================================================================================

def limit_error(info: pytest.ExceptionInfo[LimitExceeded], name: str) -> str:
    return check_limit_error(info.value, name)


def check_limit_error(error: LimitExceeded, name: str) -> str:
    """The error names the limit, by the very name users configure it with."""
    assert error.limit == name
    assert name in str(error)
    assert name in UnpackLimits.__dataclass_fields__
    assert name in Settings.model_fields, f"{name} cannot be configured (no RUA_{name.upper()})"
    return str(error)


def test_defaults_are_finite_and_safe() -> None:
    """Every limit is on by default, generous enough for real reports, tight enough for bombs."""
    limits = UnpackLimits()
    assert 64 * 2**20 <= limits.max_input_bytes <= 4 * 2**30
    assert limits.max_input_bytes <= limits.max_decompressed_bytes <= 16 * 2**30
    assert 20 <= limits.max_compression_ratio <= 2000
    assert 3 <= limits.max_nesting_depth <= 16
    assert 100 <= limits.max_members <= 100_000
    assert 1000 <= limits.max_mbox_messages <= 10_000_000


def test_limits_are_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Users must be able to raise (or lower) every limit without code changes."""
    for name, value in {"RUA_MAX_INPUT_BYTES": "1000", "RUA_MAX_DECOMPRESSED_BYTES": "2000",
                        "RUA_MAX_COMPRESSION_RATIO": "30", "RUA_MAX_NESTING_DEPTH": "2",
                        "RUA_MAX_MEMBERS": "7", "RUA_MAX_MBOX_MESSAGES": "9"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RUA_CONFIG", raising=False)
    limits = Settings().unpack_limits
    assert (limits.max_input_bytes, limits.max_decompressed_bytes, limits.max_compression_ratio,
            limits.max_nesting_depth, limits.max_members, limits.max_mbox_messages) == (
        1000, 2000, 30, 2, 7, 9)


def refusals(data: bytes, budget: DecompressionBudget) -> list[LimitExceeded]:
    """Every limit error the input meets, wherever it surfaces: the walk, a part, or a read."""
    found: list[LimitExceeded] = []
    try:
        for item in unpack(lambda: io.BytesIO(data), "input", budget):
            if isinstance(item, UnpackFailure):
                if isinstance(item.error, LimitExceeded):
                    found.append(item.error)
                continue
            try:
                with item.open() as stream:
                    while stream.read(65536):
                        pass
            except LimitExceeded as exc:
                found.append(exc)
    except LimitExceeded as exc:
        found.append(exc)
    return found


def test_max_decompressed_bytes_stops_inflating_early() -> None:
    """The walk stops right after the limit: bounded work however large the stream is."""
    limits = UnpackLimits(max_decompressed_bytes=2 * 2**20, max_compression_ratio=10**9)
    budget = DecompressionBudget(limits)
    data = samples.gz(XML.replace(b"</feedback>", b" " * (64 * 2**20) + b"</feedback>"))
    started = time.perf_counter()
    [error] = refusals(data, budget)
    assert time.perf_counter() - started < 5
    check_limit_error(error, "max_decompressed_bytes")
    assert budget.decompressed_bytes <= limits.max_decompressed_bytes + 2**20


def test_max_decompressed_bytes_counts_the_whole_input() -> None:
    """Many members each under the limit still add up: the budget is per input."""
    members = {f"r{i}.xml": report(f"r{i}", records=20) for i in range(10)}
    size = len(members["r0.xml"])
    limits = UnpackLimits(max_decompressed_bytes=int(size * 3.5))
    budget = DecompressionBudget(limits)
    read: list[str] = []
    refused: list[LimitExceeded] = []
    try:
        for item in unpack(lambda: io.BytesIO(samples.zipped(members)), "input", budget):
            if isinstance(item, UnpackFailure):
                assert isinstance(item.error, LimitExceeded), item.error
                refused.append(item.error)
                continue
            assert body(item) == members[item.location.rsplit("/", 1)[1]]
            read.append(item.location)
    except LimitExceeded as exc:
        refused.append(exc)
    assert read == ["input/r0.xml", "input/r1.xml", "input/r2.xml"]
    assert refused
    check_limit_error(refused[0], "max_decompressed_bytes")


def test_max_decompressed_bytes_is_per_input_not_per_process() -> None:
    """A fresh input starts with a fresh budget, and an input under the limit passes."""
    data = samples.gz(report("a", records=20))
    limits = UnpackLimits(max_decompressed_bytes=len(report("a", records=20)) + 10)
    for _ in range(3):
        assert only_payload(data, limits=limits).data == report("a", records=20)


@pytest.mark.parametrize("wrap", [samples.gz, samples.raw_zlib, lambda d: samples.zipped({"r.xml": d})],
                         ids=["gzip", "zlib", "zip"])
def test_max_compression_ratio(wrap: Callable[[bytes], bytes]) -> None:
    limits = UnpackLimits(max_compression_ratio=50, ratio_grace_bytes=64 * 1024)
    data = wrap(XML.replace(b"</feedback>", b" " * (8 * 2**20) + b"</feedback>"))
    errors = refusals(data, DecompressionBudget(limits))
    assert errors, "an 8 MiB document inflated from a few KiB must exceed a ratio of 50"
    check_limit_error(errors[0], "max_compression_ratio")


def test_ordinary_reports_pass_the_default_ratio() -> None:
    """Real XML compresses 10-30x: the default must never refuse an honest report."""
    big = report("big", records=3000)
    for data in (samples.gz(big), samples.zipped({"r.xml": big})):
        assert only_payload(data).data == big


@pytest.mark.parametrize("layers", [1, 3])
def test_max_depth_boundary(layers: int) -> None:
    """`max_nesting_depth` nested containers are allowed, one more is refused, naming the limit."""
    data = XML
    for _ in range(layers):
        data = samples.gz(data)
    limits = UnpackLimits(max_nesting_depth=layers)
    assert only_payload(data, limits=limits).data == XML
    with pytest.raises(LimitExceeded) as info:
        run(samples.gz(data), limits)
    limit_error(info, "max_nesting_depth")


def test_max_depth_counts_every_kind_of_container() -> None:
    """zip in gzip in e-mail in zip ...: every layer counts, whatever its kind."""
    data = samples.zipped({"r.xml": XML})
    data = samples.single_part_email(samples.gz(data))
    data = samples.zipped({"mail.eml": data})
    with pytest.raises(LimitExceeded) as info:
        run(data, UnpackLimits(max_nesting_depth=2))
    limit_error(info, "max_nesting_depth")


def test_max_members_zip_boundary() -> None:
    members = {f"r{i}.xml": report(f"r{i}") for i in range(5)}
    assert len(payloads(run(samples.zipped(members), UnpackLimits(max_members=5)))) == 5
    with pytest.raises(LimitExceeded) as info:
        run(samples.zipped(members), UnpackLimits(max_members=4))
    assert "zip members" in limit_error(info, "max_members")


def test_max_members_counts_mime_parts() -> None:
    data = message([attachment(samples.gz(report(f"r{i}")), "gzip", f"r{i}.xml.gz") for i in range(6)])
    assert len(payloads(run(data, UnpackLimits(max_members=6)))) == 6
    with pytest.raises(LimitExceeded) as info:
        run(data, UnpackLimits(max_members=5))
    assert "MIME parts" in limit_error(info, "max_members")


def test_max_messages_boundary() -> None:
    data = samples.mbox([samples.single_part_email(samples.gz(report(f"m{i}"))) for i in range(4)])
    assert len(payloads(run(data, UnpackLimits(max_mbox_messages=4)))) == 4
    with pytest.raises(LimitExceeded) as info:
        run(data, UnpackLimits(max_mbox_messages=3))
    limit_error(info, "max_mbox_messages")


def test_oversized_email_inside_a_container_is_refused() -> None:
    """An e-mail is parsed whole, so one inflated from a small gzip must be size-checked."""
    big_mail = samples.email_with([(bytes(3 * 2**20), "application/octet-stream", "blob.bin"),
                                   (samples.gz(XML), "application/gzip", "r.xml.gz")])
    limits = UnpackLimits(max_input_bytes=2**20, max_message_bytes=2**20)
    with pytest.raises(LimitExceeded) as info:
        run(samples.gz(big_mail), limits)
    check_limit_error(info.value, info.value.limit)


def test_oversized_mbox_message_is_refused() -> None:
    big = samples.email_with([(bytes(3 * 2**20), "application/octet-stream", "blob.bin")])
    data = samples.mbox([samples.single_part_email(samples.gz(XML)), big])
    with pytest.raises(LimitExceeded) as info:
        run(data, UnpackLimits(max_input_bytes=2**20, max_message_bytes=2**20))
    check_limit_error(info.value, info.value.limit)


# == through the pipeline (SQLite and PostgreSQL) ===============================================

def ingest(pipeline: IngestPipeline, tmp_path: Path, name: str, data: bytes) -> InputOutcome:
    path = tmp_path / name
    path.write_bytes(data)
    return pipeline.ingest_path(path)


def original_row(engine: Engine, sha256: str) -> dict[str, object]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM original WHERE sha256 = :s"), {"s": sha256}).mappings().one()
    return dict(row)


CONTAINERS = {
    "xml": XML,
    "xml-bom-whitespace": b"\xef\xbb\xbf\n  " + XML,
    "gzip": samples.gz(XML),
    "gzip-mimecast": samples.gz(XML, trailing=b"\r\n"),
    "multi-member-gzip": samples.multi_member_gz(XML),
    "zlib": samples.raw_zlib(XML),
    "zip": samples.zipped({"r.xml": XML}),
    "zip-in-zip-subfolder": samples.zipped({"a/b.zip": samples.zipped({"c/d/r.xml": XML})}),
    "email-octet-stream": EMAILS["octet-stream-attachment"],
    "email-x-gzip": EMAILS["x-gzip"],
    "email-inline-xml": EMAILS["inline-text-xml"],
    "email-forwarded": EMAILS["forwarded-rfc822"],
    "email-single-part-zip": EMAILS["single-part-zip-base64"],
    "email-quoted-printable": EMAILS["single-part-xml-quoted-printable"],
    "mbox-one-message": samples.mbox([EMAILS["gzip"]]),
}


@pytest.mark.parametrize("case", list(CONTAINERS))
def test_pipeline_stores_the_report_from_every_container(case: str, pipeline: IngestPipeline,
                                                         engine: Engine, tmp_path: Path) -> None:
    outcome = ingest(pipeline, tmp_path, "input", CONTAINERS[case])
    assert outcome.status == "ok", outcome
    assert [(r.kind, r.status, r.records) for r in outcome.reports] == [("aggregate", "new", 1)]
    assert count_rows(engine, "aggregate_report") == 1
    assert count_rows(engine, "aggregate_record") == 1
    assert original_row(engine, outcome.sha256 or "")["status"] == "ok"


def test_each_report_of_one_input_has_its_own_result(pipeline: IngestPipeline, engine: Engine,
                                                     tmp_path: Path) -> None:
    """One archive: a new report, its duplicate, a broken one and another new one."""
    archive = samples.zipped({
        "a.xml": report("a", records=2),
        "again/a.xml": report("a", records=2),
        "broken.xml": b"<?xml version='1.0'?>\n<html><body>not a report</body></html>",
        "d.xml.gz": samples.gz(report("d", records=3)),
        "notes.txt": b"just some text",
    })
    outcome = ingest(pipeline, tmp_path, "bundle.zip", archive)
    by_location = {r.location.rsplit("bundle.zip/", 1)[1]: r for r in outcome.reports}
    assert set(by_location) == {"a.xml", "again/a.xml", "broken.xml", "d.xml.gz", "notes.txt"}
    assert (by_location["a.xml"].status, by_location["a.xml"].records) == ("new", 2)
    assert by_location["again/a.xml"].status == "duplicate"
    assert by_location["again/a.xml"].report_id == by_location["a.xml"].report_id
    assert (by_location["d.xml.gz"].status, by_location["d.xml.gz"].records) == ("new", 3)
    assert by_location["broken.xml"].status == "failed" and by_location["broken.xml"].error
    assert by_location["notes.txt"].status == "failed" and by_location["notes.txt"].error
    assert outcome.status == "partial"
    row = original_row(engine, outcome.sha256 or "")
    assert (row["status"], row["reports_new"], row["reports_duplicate"], row["reports_failed"]) == (
        "partial", 2, 1, 2)
    assert "broken.xml" in str(row["error"]) and "notes.txt" in str(row["error"])
    assert count_rows(engine, "aggregate_report") == 2
    assert count_rows(engine, "aggregate_record") == 5


def test_mbox_reports_each_have_their_own_result(pipeline: IngestPipeline, engine: Engine,
                                                 tmp_path: Path) -> None:
    data = samples.mbox([samples.single_part_email(samples.gz(report(f"m{i}", records=i + 1)))
                         for i in range(4)])
    outcome = ingest(pipeline, tmp_path, "reports.mbox", data)
    assert [(r.status, r.records) for r in outcome.reports] == [("new", n) for n in (1, 2, 3, 4)]
    assert len({r.report_id for r in outcome.reports}) == 4
    assert count_rows(engine, "aggregate_record") == 10


def test_notes_of_one_report_do_not_leak_into_its_siblings(pipeline: IngestPipeline, engine: Engine,
                                                           tmp_path: Path) -> None:
    """Only the member with trailing bytes gets that note; each report has its own result."""
    archive = samples.zipped({"a.xml.gz": samples.gz(report("a"), trailing=b"\r\n"),
                              "b.xml.gz": samples.gz(report("b"))})
    outcome = ingest(pipeline, tmp_path, "two.zip", archive)
    notes = {r.location.rsplit("/", 1)[1]: r.notes for r in outcome.reports}
    assert any("bytes after the end" in note for note in notes["a.xml.gz"]), notes
    assert not any("a.xml.gz" in note or "bytes after the end" in note for note in notes["b.xml.gz"]), notes
    with engine.connect() as conn:
        stored = conn.execute(text(
            "SELECT repair_notes FROM aggregate_report WHERE report_id = 'b'")).scalar_one()
    stored_notes = json.loads(stored) if isinstance(stored, str) else stored
    assert not any("a.xml.gz" in note for note in stored_notes), stored_notes


@pytest.mark.parametrize(("case", "data", "kind"), [
    ("arf.eml", arf_report(), "failure"),
    ("notice.eml", plain_notice("DMARC Failure Report for example.com"), "failure"),
    ("tls.json", TLS_REPORT, "tls"),
    ("tls.json.gz", samples.gz(TLS_REPORT), "tls"),
    ("tls.eml", tls_email(), "tls"),
])
def test_failure_and_tls_inputs_reach_their_own_stores(case: str, data: bytes, kind: str,
                                                        pipeline: IngestPipeline, engine: Engine,
                                                        tmp_path: Path) -> None:
    """Every container the aggregate path unpacks carries the other kinds to their parsers."""
    outcome = ingest(pipeline, tmp_path, case, data)
    assert outcome.status == "ok"
    assert [(r.kind, r.status) for r in outcome.reports] == [(kind, "new")]
    row = original_row(engine, outcome.sha256 or "")
    assert (row["status"], row["reports_new"], row["reports_failed"]) == ("ok", 1, 0)
    assert count_rows(engine, "aggregate_report") == 0
    assert count_rows(engine, "failure_report" if kind == "failure" else "tls_report") == 1


def test_aggregate_next_to_tls_report_in_one_input(pipeline: IngestPipeline, engine: Engine,
                                                   tmp_path: Path) -> None:
    archive = samples.zipped({"r.xml": XML, "tls.json": TLS_REPORT})
    outcome = ingest(pipeline, tmp_path, "both.zip", archive)
    assert sorted((r.kind, r.status) for r in outcome.reports) == [("aggregate", "new"), ("tls", "new")]
    assert outcome.status == "ok"


@pytest.mark.parametrize("data", [
    pytest.param(samples.email_with([], body="hello"), id="text-only"),
    pytest.param(samples.email_with([(b"<html><body>report</body></html>", "text/html", None)]), id="html"),
    pytest.param(samples.single_part_email(b"unused"), id="yahoo-unused"),
])
def test_email_without_report_fails_in_the_pipeline(data: bytes, pipeline: IngestPipeline, engine: Engine,
                                                    tmp_path: Path) -> None:
    outcome = ingest(pipeline, tmp_path, "mail.eml", data)
    assert outcome.status == "failed"
    row = original_row(engine, outcome.sha256 or "")
    assert row["status"] == "failed"
    assert "report" in str(row["error"])


@pytest.mark.parametrize(("limits", "data", "name"), [
    pytest.param(UnpackLimits(max_decompressed_bytes=20_000), samples.gz(report("a", records=200)),
                 "max_decompressed_bytes", id="decompressed"),
    pytest.param(UnpackLimits(max_compression_ratio=20, ratio_grace_bytes=10_000),
                 samples.gz(XML.replace(b"</feedback>", b" " * 200_000 + b"</feedback>")),
                 "max_compression_ratio", id="ratio"),
    pytest.param(UnpackLimits(max_nesting_depth=2), samples.gz(samples.gz(samples.gz(XML))),
                 "max_nesting_depth", id="depth"),
    pytest.param(UnpackLimits(max_members=2), samples.zipped({f"{i}.xml": report(str(i)) for i in range(3)}),
                 "max_members", id="members"),
    pytest.param(UnpackLimits(max_mbox_messages=2),
                 samples.mbox([samples.single_part_email(samples.gz(report(str(i)))) for i in range(3)]),
                 "max_mbox_messages", id="messages"),
])
def test_pipeline_names_the_limit_in_the_quarantine(limits: UnpackLimits, data: bytes, name: str,
                                                    engine: Engine, data_dir: Path, tmp_path: Path) -> None:
    """The original is kept, and its recorded error says which limit to raise."""
    pipeline = IngestPipeline(engine, data_dir, limits)
    outcome = ingest(pipeline, tmp_path, "input", data)
    assert outcome.status in ("failed", "partial")
    errors = outcome.describe_errors() or ""
    assert name in errors
    row = original_row(engine, outcome.sha256 or "")
    assert row["status"] == outcome.status
    assert name in str(row["error"])


def test_input_under_the_decompressed_limit_is_accepted(engine: Engine, data_dir: Path,
                                                       tmp_path: Path) -> None:
    """The limit is on what the input inflates to, not on how often Rua re-reads it."""
    document = report("a", records=50)
    pipeline = IngestPipeline(engine, data_dir, UnpackLimits(max_decompressed_bytes=len(document) + 1000))
    outcome = ingest(pipeline, tmp_path, "a.xml.gz", samples.gz(document))
    assert outcome.status == "ok", outcome.describe_errors()
    assert [(r.status, r.records) for r in outcome.reports] == [("new", 50)]


def test_input_size_limit(engine: Engine, data_dir: Path, tmp_path: Path) -> None:
    """Too large to even keep: refused up front with the limit named, nothing half-written."""
    pipeline = IngestPipeline(engine, data_dir, UnpackLimits(max_input_bytes=10_000))
    data = report("big", records=200)
    assert len(data) > 10_000
    for outcome in (ingest(pipeline, tmp_path, "big.xml", data),
                    pipeline.ingest_stream(io.BytesIO(data), "upload")):
        assert outcome.status == "failed"
        assert "max_input_bytes" in (outcome.error or "")
    assert count_rows(engine, "aggregate_report") == 0
    assert not [p for p in data_dir.rglob("*.part")]
    small = ingest(pipeline, tmp_path, "small.xml", report("small"))
    assert small.status == "ok"
