"""The failure report parser: one fixture per real-world quirk, redaction, and the real corpus.

The fixtures in tests/fixtures/failure are the project's own, each written to show one quirk
of STANDARDS.md §4/§7; the corpus files (read from ../shared/corpus, never copied) prove the
parser on what receivers really send.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from ingest.arf_fields import normalise_ip, split_address
from ingest.errors import MalformedReport
from ingest.failure_report import FailureReport, parse_failure_report, redact
from ingest.mail_message import read_message
from ingest.sniff import ReportKind
from tests.conftest import FIXTURES

FAILURE_FIXTURES = FIXTURES / "failure"
CORPUS_FAILURES = "domainaware__parsedmarc/samples/failure"


def fixture(name: str) -> FailureReport:
    return parse_failure_report((FAILURE_FIXTURES / name).read_bytes())


def header_values(report: FailureReport, name: str) -> list[str]:
    return [value for header, value in report.original_headers if header.lower() == name.lower()]


def every_text(report: FailureReport) -> str:
    """Everything the report keeps, as one text, to search for what must not be there."""
    return repr(dataclasses.asdict(report))


# -- ARF reports ---------------------------------------------------------------------------------

def test_minimal_rfc6591_report() -> None:
    report = fixture("rfc6591_minimal.eml")
    assert report.format == "arf"
    assert (report.feedback_type, report.version, report.user_agent) == (
        "auth-failure", "1", "ReceiverMTA/2.1")
    assert report.auth_failure == ("dmarc",)
    assert report.identity_alignment == "none"
    assert (report.source_ip, report.reported_domain, report.delivery_result) == (
        "192.0.2.10", "example.com", "reject")
    assert report.source_ip_packed == bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 10])
    assert report.original_mail_from == "bounce@mailer.example.net"
    assert report.original_rcpt_to == ("alice@receiver.example",)
    assert report.arrival_date == datetime(2026, 11, 1, 9, 12, 44, tzinfo=UTC)
    assert report.arrival_date_source == "Arrival-Date"
    assert report.arrival_day == date(2026, 11, 1)
    assert report.authentication_results == ("mx.receiver.example; dmarc=fail header.from=example.com",)
    # the report e-mail itself
    assert report.report_from == "dmarc-reports@receiver.example"
    assert report.report_subject == "Authentication failure report for example.com"
    assert report.report_message_id == "<ruf-0001@receiver.example>"
    assert report.report_date == datetime(2026, 11, 1, 10, 15, tzinfo=timezone(timedelta(hours=1)))
    # the original message: headers only, in order, folded lines joined
    assert report.original_headers_source == "message/rfc822"
    assert [name for name, _ in report.original_headers] == [
        "Received", "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"]
    assert header_values(report, "Received")[0].startswith("from mailer.example.net (mailer.example.net "
                                                           "[192.0.2.10]) by mx.receiver.example")
    assert (report.original_from, report.original_to) == (
        "Billing <billing@example.com>", "Alice <alice@receiver.example>")
    assert (report.original_subject, report.original_message_id) == ("Your invoice", "<m1@example.com>")
    assert report.original_date == datetime(2026, 11, 1, 9, 12, 40, tzinfo=UTC)
    assert report.header_from == "example.com"
    assert report.text is not None and report.text.startswith("This is an authentication failure report")
    assert report.notes == ()
    assert "SECRET BODY" not in every_text(report)


def test_rfc9991_report_with_every_field_and_rfc822_headers_original() -> None:
    report = fixture("rfc9991_identity_alignment.eml")
    assert report.auth_failure == ("signature", "dmarc")
    assert report.identity_alignment == ("dkim",)
    assert report.source_ip == "2001:db8::25" and report.source_port == 49152
    assert report.reported_domain == "example.com"  # "Example.COM." lower-cased, root dot gone
    assert report.reported_uri == ("mailto:news@example.com",)
    assert report.original_rcpt_to == ("bob@receiver.example", "carol@receiver.example")
    assert report.original_envelope_id == "01HFZ3-QUEUE-77"
    assert (report.reporting_mta, report.incidents, report.delivery_result) == (
        "dns; mx.receiver.example", 3, "delivered")
    assert (report.dkim_domain, report.dkim_selector, report.dkim_identity) == (
        "example.com", "s2026", "@example.com")
    # only whether the canonicalised copies were there: their content is message content
    assert report.dkim_canonicalized_header and report.dkim_canonicalized_body
    assert "U0VDUkVUIEJPRFk=" not in every_text(report)
    assert report.spf_dns == ('txt : example.com : "v=spf1 ip6:2001:db8::/32 -all"',)
    assert report.authentication_results[0].startswith("mx.receiver.example; dkim=fail header.d=example.com "
                                                       "header.s=s2026; spf=pass")
    assert report.other_fields == (("X-Receiver-Trace", "q77"),)
    assert report.report_subject == "DMARC failure report — example.com"  # RFC 2047 decoded
    assert report.original_headers_source == "text/rfc822-headers"
    assert report.original_subject == "November news"
    assert header_values(report, "Cc") == ["dave@receiver.example"]
    assert header_values(report, "DKIM-Signature") == [
        "v=1; a=rsa-sha256; d=example.com; s=s2026; h=from:to:subject; bh=abc=; b=def="]
    assert report.notes == ("Source-IP '[2001:DB8:0:0::25]' normalised to 2001:db8::25",)


def test_netease_like_report_missing_fields_is_completed_from_elsewhere() -> None:
    """No Auth-Failure, Reported-Domain, Source-IP or Arrival-Date; base64 ARF part in
    multipart/mixed: each gap filled from another part of the report, and each noted."""
    report = fixture("missing_fields.eml")
    assert report.format == "arf"
    assert report.auth_failure == () and report.identity_alignment is None
    assert report.reported_domain == "example.com"  # from the original From (Example.COM)
    assert report.header_from == "example.com"
    assert report.source_ip == "198.51.100.23"  # from the human-readable part
    assert report.arrival_date == datetime(2026, 11, 3, 11, 58, tzinfo=UTC)
    assert report.arrival_date_source == "Received-Date"
    assert report.original_mail_from == "sender@example.com"
    assert list(report.notes) == [
        "sent as multipart/mixed, not multipart/report; report-type=feedback-report",
        "the feedback-report part is base64-encoded; decoded",
        "the feedback-report part lacks Auth-Failure, Identity-Alignment, Source-IP, Reported-Domain",
        "no Reported-Domain: the domain of the original From header is used",
        "no Source-IP: taken from the report text",
        "no Arrival-Date: the arrival date is the Received-Date",
    ]
    assert "must never be kept" not in every_text(report)


def test_odd_values_are_tolerated_and_noted() -> None:
    report = fixture("quirks.eml")
    assert report.feedback_type == "auth-failure"  # field names and values in any case
    assert report.auth_failure == ("dmarc", "spf", "bogus")  # repeated and comma-separated
    assert report.source_ip == "192.0.2.44"  # IPv4-mapped IPv6; the second Source-IP ignored
    assert report.arrival_date == datetime(2026, 11, 6, 9, 59, tzinfo=UTC)
    assert report.original_mail_from == "<>"
    assert report.reported_domain == "example.de"  # "not a domain" refused, From used instead
    assert report.delivery_result == "smg-policy-action" and report.incidents is None
    assert report.other_fields == (("X-Subject", "Äpfel"),)
    assert (report.original_from, report.original_subject) == ("Jürgen <juergen@example.de>", "Grüße")
    assert set(report.notes) >= {
        "1 line(s) of the feedback-report part are not fields; skipped",
        "Auth-Failure 'bogus' is not a registered failure type; kept",
        "Source-IP '::ffff:192.0.2.44' normalised to 192.0.2.44",
        "Source-IP appears more than once; the first is used",
        "Arrival-Date has no UTC offset; read as UTC",
        "Original-Mail-From is empty: the null reverse-path, stored as <>",
        "Reported-Domain 'not a domain' is not a domain name; ignored",
        "Delivery-Result 'smg-policy-action' is not one of delivered, other, policy, reject, spam; "
        "kept as given",
        "Incidents 'many' is not a number; ignored",
        "no Reported-Domain: the domain of the original From header is used",
    }


def test_mbox_from_line_and_crlf_read_as_the_same_report() -> None:
    plain = fixture("rfc6591_minimal.eml")
    mbox = fixture("rfc6591_minimal.mbox-crlf.eml")
    assert mbox.notes == ("mbox 'From ' line before the headers; skipped",)
    assert dataclasses.replace(mbox, notes=()) == plain


def test_forwarded_report_is_read_from_the_attachment() -> None:
    """A report forwarded as message/rfc822 inside multipart/mixed, under a subject that names no
    DMARC: recognised by its feedback-report part, and read as the report it forwards."""
    data = (FAILURE_FIXTURES / "forwarded.eml").read_bytes()
    assert read_message(data).kind is ReportKind.FAILURE
    report = parse_failure_report(data)
    assert report.notes == ("the report came forwarded inside a message/rfc822 part; read from there",)
    assert dataclasses.replace(report, notes=()) == fixture("rfc6591_minimal.eml")


# -- plain-text notices ----------------------------------------------------------------------------

def test_exim_style_notice_is_read_best_effort() -> None:
    report = fixture("exim_notice.eml")
    assert report.format == "non_arf"
    assert (report.reported_domain, report.source_ip) == ("example.net", "203.0.113.77")
    assert report.arrival_date == datetime(2026, 11, 4, 22, 29, 58, tzinfo=UTC)
    assert report.arrival_date_source == "Received-Date"
    assert report.identity_alignment == ("spf",)
    assert report.auth_failure == ("dmarc",)
    assert report.original_mail_from == "frank@example.net"
    assert report.original_rcpt_to == ("grace@receiver.example",)
    assert report.other_fields == (("DMARC Results", "Reject"),)
    assert report.original_headers_source == "text"
    assert [name for name, _ in report.original_headers] == [
        "Received", "From", "To", "Subject", "Date", "Message-Id", "Received-SPF"]
    assert (report.original_subject, report.header_from) == ("Lunch?", "example.net")
    # the summary is the text; the copied headers are headers; what follows them is dropped
    assert report.text is not None and report.text.endswith("received before the error was detected.")
    assert "must never be kept" not in every_text(report)
    assert ("not an ARF report (no message/feedback-report part): read best-effort from the text"
            in report.notes)


def test_notice_with_only_a_sentence_uses_subject_and_text() -> None:
    report = fixture("plain_notice.eml")
    assert report.format == "non_arf"
    assert (report.reported_domain, report.source_ip) == ("example.com", "192.0.2.99")
    assert report.arrival_date_source == "report Date"
    assert report.arrival_date == datetime(2026, 11, 5, 6, 0, tzinfo=UTC)
    assert report.original_headers == ()
    assert "no Arrival-Date or Received-Date: the arrival date is the report e-mail's Date" in report.notes
    assert "no Reported-Domain: the domain named in the subject is used" in report.notes


@pytest.mark.parametrize(("data", "message"), [
    pytest.param((FAILURE_FIXTURES / "nothing_readable.eml").read_bytes(), "no failure details found",
                 id="notice-without-facts"),
    pytest.param(b"", "empty", id="empty"),
    pytest.param(b"From x Mon Jan  1 00:00:00 2026\n", "empty", id="mbox-line-only"),
    pytest.param(b"Subject: DMARC failure report\nContent-Type: multipart/report; "
                 b"report-type=feedback-report; boundary=b\n\n"
                 b"--b\nContent-Type: message/feedback-report\n\njunk\n--b--\n",
                 "no ARF fields", id="empty-arf-part"),
])
def test_nothing_readable_is_a_malformed_report(data: bytes, message: str) -> None:
    with pytest.raises(MalformedReport, match=message):
        parse_failure_report(data)


def test_text_is_made_safe_for_every_database() -> None:
    data = (b"Subject: DMARC failure report for example.com\nContent-Type: text/plain\n\n"
            b"Source IP: 192.0.2.1\nDomain: exa\x00mple.com\nNote: caf\xe9 \x00\n")
    report = parse_failure_report(data)
    assert "\x00" not in every_text(report)
    assert report.source_ip == "192.0.2.1"


@pytest.mark.parametrize(("text", "expected"), [
    ("192.0.2.1", ("192.0.2.1", None)), ("[192.0.2.1]:25", ("192.0.2.1", 25)),
    ("192.0.2.1:2525", ("192.0.2.1", 2525)),
    ("IPv6:2001:db8::1", ("2001:db8::1", None)), ("fe80::1%eth0", ("fe80::1", None)),
    ("[2001:db8::1]:587", ("2001:db8::1", 587)),
])
def test_address_forms(text: str, expected: tuple[str, int | None]) -> None:
    assert split_address(text) == expected
    assert normalise_ip(text) is not None


# -- redaction ------------------------------------------------------------------------------------

def test_redaction_keeps_domains_and_drops_local_parts_everywhere() -> None:
    report = redact(fixture("rfc9991_identity_alignment.eml"))
    assert report.redacted
    assert report.original_mail_from == "redacted@example.com"
    assert report.original_rcpt_to == ("redacted@receiver.example", "redacted@receiver.example")
    assert report.dkim_identity == "@example.com"
    assert report.reported_uri == ("mailto:redacted@example.com",)
    assert report.original_from == "redacted@example.com"  # display names name people too
    assert report.original_to == "redacted@receiver.example"
    assert header_values(report, "Cc") == ["redacted@receiver.example"]
    assert header_values(report, "Reply-To") == ["redacted@example.com"]  # VERP: the whole local part
    assert "smtp.mailfrom=redacted@example.com" in report.authentication_results[0]
    assert report.original_message_id == "<n2@example.com>"  # an identifier, not an address
    kept = every_text(report)
    for person in ("bob", "carol", "dave", "news@", "Example News", "replies+"):
        assert person not in kept, person


def test_redaction_of_a_notice_covers_the_copied_headers_and_the_subject() -> None:
    report = redact(parse_failure_report(
        (FAILURE_FIXTURES / "exim_notice.eml").read_bytes()
        .replace(b"Subject: DMARC Forensic Report for example.net",
                 b"Subject: DMARC Forensic Report for example.net (mail-from=frank@example.net)")))
    assert report.report_subject is not None and "mail-from=redacted@example.net" in report.report_subject
    assert header_values(report, "Received")[0].count("redacted@") == 2
    assert "envelope-from=redacted@example.net" in header_values(report, "Received-SPF")[0]
    assert "frank" not in every_text(report).lower() and "grace" not in every_text(report).lower()
    assert redact(report) == report  # idempotent


# -- the real corpus ------------------------------------------------------------------------------

def corpus_report(corpus: Path, name: str) -> FailureReport:
    return parse_failure_report((corpus / CORPUS_FAILURES / name).read_bytes())


def test_every_corpus_failure_file_parses(corpus: Path) -> None:
    files = sorted((corpus / CORPUS_FAILURES).iterdir())
    assert len(files) == 5
    for path in files:
        report = parse_failure_report(path.read_bytes())
        assert report.reported_domain and report.source_ip and report.arrival_date, path.name
        assert report.original_headers, path.name
        redacted = redact(report)
        assert redacted.reported_domain == report.reported_domain


def test_corpus_domain_de(corpus: Path) -> None:
    report = corpus_report(corpus, "DMARC Failure Report for domain.de (mail-from=sharepoint@domain.de, "
                                   "ip=10.10.10.10).eml")
    assert (report.format, report.auth_failure, report.reported_domain, report.source_ip) == (
        "arf", ("dmarc",), "domain.de", "10.10.10.10")
    assert report.original_mail_from == "sharepoint@domain.de"
    assert report.original_rcpt_to == ("peter.pan@domain.de",)
    assert report.delivery_result == "smg-policy-action"
    assert report.arrival_date == datetime(2018, 10, 1, 9, 20, 27, tzinfo=UTC)
    assert report.header_from == "domain.de"
    assert report.original_subject == "Subject"
    assert report.other_fields == (("Message-ID", "<38.E7.30937.BD6E1BB5@ mailrelay.de>"),)
    assert "the feedback-report part lacks Identity-Alignment" in report.notes
    assert "wettbewerb" not in every_text(report)  # the HTML body


def test_corpus_netease(corpus: Path) -> None:
    """Its ARF part is base64 inside multipart/mixed: decoded, it has Source-IP and
    Reported-Domain after all; only Auth-Failure is really missing."""
    report = corpus_report(corpus, "[Netease DMARC Failure Report] Rent Reminder.eml")
    assert report.format == "arf" and report.auth_failure == ()
    assert (report.source_ip, report.reported_domain) == ("167.89.69.24", "cardinal.com")
    assert report.user_agent == "NtesDmarcReporter/1.0"
    assert report.identity_alignment == ("dkim", "spf")
    assert report.dkim_domain == "entrata.com"
    assert report.original_envelope_id == "N8CowEApcUPo6q1bnXlMAA--.44392S3"
    assert report.arrival_date == datetime(2018, 9, 28, 8, 48, 42, tzinfo=UTC)
    assert report.original_from == "700 on Washington <info@cardinal.com>"
    assert report.header_from == "cardinal.com"
    assert report.original_message_id == "<oguVx1AxQayV5Sv2nYK-rA@ismtpd0007p1las1.sendgrid.net>"
    assert report.notes == ("sent as multipart/mixed, not multipart/report; report-type=feedback-report",
                            "the feedback-report part is base64-encoded; decoded",
                            "the feedback-report part lacks Auth-Failure")


@pytest.mark.parametrize("name", ["dmarc_ruf_report_linkedin.eml", "dmarc_ruf_report_linkedin.crlf.eml"])
def test_corpus_linkedin(corpus: Path, name: str) -> None:
    report = corpus_report(corpus, name)
    assert (report.reported_domain, report.source_ip, report.delivery_result) == (
        "example.com", "10.10.10.10", "delivered")
    assert report.original_mail_from == "<>" and report.original_rcpt_to == ("recipient@linkedin.com",)
    assert report.arrival_date == datetime(2019, 4, 30, 2, 9, tzinfo=UTC)
    assert report.report_from == "dmarc-noreply@linkedin.com"
    assert report.original_from == "Sender <sender@example.com>"
    assert header_values(report, "Return-Path") == ["<>"]
    assert "mbox 'From ' line before the headers; skipped" in report.notes
    assert "HTML Text" not in every_text(report)


def test_corpus_linkedin_crlf_variant_is_the_same_report(corpus: Path) -> None:
    assert (corpus_report(corpus, "dmarc_ruf_report_linkedin.eml")
            == corpus_report(corpus, "dmarc_ruf_report_linkedin.crlf.eml"))


def test_corpus_exim_notice(corpus: Path) -> None:
    report = corpus_report(corpus, "exim_plain_text_only_no_arf_part.eml")
    assert report.format == "non_arf"
    assert (report.reported_domain, report.source_ip) == ("example.com", "203.0.113.68")
    assert report.arrival_date == datetime(2025, 4, 7, 21, 16, 9, tzinfo=UTC)
    assert report.identity_alignment == "none"
    assert report.original_mail_from == "user@example.com"
    assert report.original_rcpt_to == ("user@example.com",)
    assert report.original_subject == "Payment from your account."
    assert len(header_values(report, "Authentication-Results")) == 2
    assert report.authentication_results == tuple(header_values(report, "Authentication-Results"))
