"""The SMTP TLS report parser (RFC 8460): every quirk with the project's own fixtures, every
malformed shape refused with a clear reason, and every real corpus file read with its values."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest.errors import MalformedReport
from ingest.limits import DecompressionBudget, UnpackLimits
from ingest.tls_report import RESULT_TYPES, TlsReport, parse_tls_report
from ingest.unpack import Payload, ReportKind, unpack
from tests.conftest import FIXTURES

TLS_FIXTURES = FIXTURES / "tls"


def fixture(name: str) -> TlsReport:
    return parse_tls_report((TLS_FIXTURES / name).read_bytes())


def minimal(**changes: Any) -> dict[str, Any]:
    """A valid report as a dict; `changes` replace top-level members (None removes one)."""
    document: dict[str, Any] = {
        "organization-name": "Sender Example",
        "date-range": {"start-datetime": "2026-10-01T00:00:00Z", "end-datetime": "2026-10-01T23:59:59Z"},
        "contact-info": "tls@sender.example",
        "report-id": "r-1",
        "policies": [{"policy": {"policy-type": "sts", "policy-domain": "example.com"},
                      "summary": {"total-successful-session-count": 1, "total-failure-session-count": 0}}],
    }
    for key, value in changes.items():
        key = key.replace("_", "-")
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return document


def parse(document: object) -> TlsReport:
    return parse_tls_report(json.dumps(document).encode())


def with_policy(policy: dict[str, Any] | None = None, summary: Any = None,
                failures: Any = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"policy": policy or {"policy-type": "sts", "policy-domain": "example.com"}}
    if summary is not None:
        entry["summary"] = summary
    if failures is not None:
        entry["failure-details"] = failures
    return minimal(policies=[entry])


def noted(report: TlsReport, fragment: str) -> bool:
    return any(fragment in note for note in report.notes)


# -- the project's fixtures, one per quirk ---------------------------------------------------------

def test_contact_info_null() -> None:
    report = fixture("contact-info-null.json")
    assert report.contact_info is None
    assert noted(report, "contact-info is null")
    assert report.organization_name == "Mailer Example"
    assert report.policies[0].mx_hosts == ("mx1.example.org",)
    assert report.policies[0].failure_details == ()


def test_contact_info_absent() -> None:
    report = parse(minimal(contact_info=None))
    assert report.contact_info is None and noted(report, "no contact-info")


def test_failure_details_without_sending_ip_or_mx_hostname() -> None:
    """Microsoft leaves out sending-mta-ip and receiving-mx-hostname (cry-inc#57)."""
    report = fixture("no-sender-ip-or-mx.json")
    fetch, expired = report.policies[0].failure_details
    assert (fetch.result_type, fetch.failed_session_count) == ("sts-policy-fetch-error", 4)
    assert fetch.sending_mta_ip is None and fetch.receiving_mx_hostname is None and fetch.receiving_ip is None
    assert (expired.receiving_ip, expired.sending_mta_ip) == ("192.0.2.25", None)
    assert report.policies[0].mx_hosts == () and report.policies[0].policy_strings == ()
    tlsa = report.policies[1]
    assert (tlsa.policy_type, tlsa.policy_strings, tlsa.failure_details) == (
        "tlsa", ("3 1 1 0123456789ABCDEF",), ())
    assert report.policy_domains == ("example.org",)
    assert (report.total_successful, report.total_failure) == (14, 5)
    assert report.notes == ()  # none of this is a repair: the fields are optional


def test_mx_host_as_a_single_string() -> None:
    """RFC 8460's own example writes mx-host as a string, not a list."""
    report = fixture("mx-host-string.json")
    assert report.policies[0].mx_hosts == ("*.mail.example.net",)
    assert noted(report, "mx-host given as a single value")
    detail = report.policies[0].failure_details[0]
    assert (detail.sending_mta_ip, detail.receiving_mx_hostname, detail.receiving_ip) == (
        "198.51.100.7", "mx2.mail.example.net", "203.0.113.9")


def test_unknown_policy_and_result_types_are_kept() -> None:
    report = fixture("unknown-types.json")
    no_policy, invalid = report.policies
    assert (no_policy.policy_type, no_policy.policy_domain) == ("no-policy-found", None)
    assert (no_policy.total_successful, no_policy.total_failure) == (3, 0)
    assert invalid.policy_type == "invalid-policy-type"
    assert invalid.failure_details[0].result_type == "quantum-decoherence"
    assert noted(report, "unknown policy-type 'invalid-policy-type' kept as given")
    assert noted(report, "unknown result-type 'quantum-decoherence' kept as given")
    assert noted(report, "policy 1: no policy-domain")
    assert noted(report, "policy 1: no total-failure-session-count; taken as 0")


def test_bom_and_numbers_as_strings() -> None:
    report = fixture("bom-numbers-as-strings.json")
    policy = policy_of(report)
    assert (policy.total_successful, policy.total_failure) == (1200, 8)
    assert policy.failure_details[0].failed_session_count == 8
    assert noted(report, "UTF-8 byte order mark removed")
    assert noted(report, "total-successful-session-count given as a string")
    assert noted(report, "failed-session-count given as a string")


def policy_of(report: TlsReport) -> Any:
    assert len(report.policies) == 1
    return report.policies[0]


def test_rfc3339_offsets_fractions_and_lower_case() -> None:
    report = fixture("dates-offsets-fractions.json")
    assert report.start == datetime(2026, 10, 10, 0, 0, 0, 123456, tzinfo=UTC)
    assert report.end == datetime(2026, 10, 10, 23, 59, 59, 500000, tzinfo=UTC)
    assert report.start.utcoffset() is not None
    assert report.notes == ()  # all of these are RFC 3339


def test_every_rfc_8460_result_type() -> None:
    report = fixture("every-result-type.json")
    details = policy_of(report).failure_details
    assert {d.result_type for d in details} == RESULT_TYPES and len(RESULT_TYPES) == 11
    assert [d.failed_session_count for d in details] == list(range(1, 12))
    last = details[-1]
    assert (last.receiving_mx_helo, last.receiving_ip, last.additional_information) == (
        "mx2.example.com", "2001:db8::80", "https://thorough.example/tls/11")
    assert details[4].failure_reason_code == "X509_V_ERR_CERT_UNTRUSTED"
    assert report.notes == ()


def test_report_is_immutable() -> None:
    report = fixture("mx-host-string.json")
    with pytest.raises(AttributeError):
        report.report_id = "other"  # type: ignore[misc]


# -- other tolerated deviations --------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected", "note"), [
    ("2026-10-01T00:00:00", datetime(2026, 10, 1, tzinfo=UTC), "no UTC offset; read as UTC"),
    ("2026-10-01", datetime(2026, 10, 1, tzinfo=UTC), "a date without a time"),
    ("2026-10-01T23:59:60Z", datetime(2026, 10, 1, 23, 59, 59, tzinfo=UTC), "leap second"),
    ("2026-10-01T05:30:00+0530", datetime(2026, 10, 1, tzinfo=UTC), "offset without a colon"),
    (1791331200, datetime(2026, 10, 7, tzinfo=UTC), "Unix time"),
    ("2026-10-01 00:00:00-01:00", datetime(2026, 10, 1, 1, tzinfo=UTC), None),
])
def test_date_forms(value: object, expected: datetime, note: str | None) -> None:
    report = parse(minimal(date_range={"start-datetime": value, "end-datetime": "2026-12-31T00:00:00Z"}))
    assert report.start == expected and report.start.tzinfo is UTC
    assert noted(report, note) if note else report.notes == ()


def test_counts_in_other_shapes() -> None:
    report = parse(with_policy(summary={"total-successful-session-count": 5.0,
                                        "total-failure-session-count": None}))
    assert (report.policies[0].total_successful, report.policies[0].total_failure) == (5, 0)
    assert noted(report, "given as a decimal number") and noted(report, "is null; taken as 0")
    missing = parse(with_policy())
    assert missing.policies[0].total_successful == 0 and noted(missing, "no summary")


def test_vocabulary_is_folded() -> None:
    report = parse(with_policy({"policy-type": "STS", "policy-domain": "Example.COM."},
                               failures=[{"result-type": "Certificate_Expired", "failed-session-count": 1,
                                          "sending-mta-ip": "not-an-ip"}],
                               summary={"total-successful-session-count": 0,
                                        "total-failure-session-count": 1}))
    policy = report.policies[0]
    assert (policy.policy_type, policy.policy_domain) == ("sts", "example.com")
    assert policy.failure_details[0].result_type == "certificate-expired"
    assert policy.failure_details[0].sending_mta_ip == "not-an-ip"
    for fragment in ("policy-type 'STS' read as 'sts'", "'Example.COM.' read as 'example.com'",
                     "'Certificate_Expired' read as 'certificate-expired'", "is not an IP address"):
        assert noted(report, fragment), fragment


def test_text_repairs() -> None:
    report = parse(minimal(organization_name=" Sender\u0000 Example ", report_id=12345,
                           contact_info=["not", "text"]))
    assert (report.organization_name, report.report_id, report.contact_info) == (
        "Sender Example", "12345", None)
    for fragment in ("NUL characters removed from organization-name", "report-id given as a number",
                     "contact-info is a list, not a string; left out",
                     "white space around organization-name"):
        assert noted(report, fragment), fragment
    lone = parse_tls_report(json.dumps(minimal(contact_info="a\ud800b")).encode())
    assert lone.contact_info == "a?b" and noted(lone, "lone surrogates")


def test_document_level_repairs() -> None:
    data = json.dumps(minimal()).encode()
    assert noted(parse_tls_report(data + b"\n\x00\x00garbage"), "characters after the JSON document ignored")
    assert noted(parse_tls_report(data.replace(b"Sender Example", b"Sender \xff Example")), "not UTF-8")
    twice = parse_tls_report(b'{"report-id": "first", ' + data[1:])
    assert twice.report_id == "r-1" and noted(twice, "key 'report-id' appears twice")


def test_many_identical_repairs_make_one_note() -> None:
    failures = [{"result-type": "validation-failure", "failed-session-count": "1"} for _ in range(500)]
    report = parse(with_policy(failures=failures, summary={"total-successful-session-count": 0,
                                                          "total-failure-session-count": 500}))
    assert report.notes == (
        "policy 1 failure 1: failed-session-count given as a string (and 499 more like it)",)


def test_failure_details_exceeding_the_summary_are_noted() -> None:
    report = parse(with_policy(
        failures=[{"result-type": "sts-policy-fetch-error", "failed-session-count": 2}],
        summary={"total-successful-session-count": 0, "total-failure-session-count": 1}))
    assert noted(report, "failure-details count 2 failed sessions, more than the summary's 1")


def test_empty_policy_list_and_reversed_range_are_noted() -> None:
    report = parse(minimal(policies=[], date_range={"start-datetime": "2026-10-02T00:00:00Z",
                                                    "end-datetime": "2026-10-01T00:00:00Z"}))
    assert report.policies == ()
    assert noted(report, "holds no policies") and noted(report, "end-datetime is before start-datetime")


# -- what cannot be read ---------------------------------------------------------------------------

MALFORMED: list[tuple[str, bytes, str]] = [
    ("not JSON", b"<feedback>not json</feedback>", "not JSON"),
    ("truncated", json.dumps(minimal()).encode()[:80], "not JSON"),
    ("array", b"[]", "is a list, not an object"),
    ("string", b'"report"', "is a string, not an object"),
    ("deep", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("no organization", json.dumps(minimal(organization_name=None)).encode(), "no organization-name"),
    ("null organization", json.dumps({**minimal(), "organization-name": None}).encode(),
     "organization-name is null"),
    ("empty organization", json.dumps(minimal(organization_name="  ")).encode(),
     "organization-name is empty"),
    ("long organization", json.dumps(minimal(organization_name="x" * 501)).encode(), "501 characters long"),
    ("no report-id", json.dumps(minimal(report_id=None)).encode(), "no report-id"),
    ("report-id object", json.dumps(minimal(report_id={"a": 1})).encode(), "report-id is an object"),
    ("no date-range", json.dumps(minimal(date_range=None)).encode(), "no date-range"),
    ("date-range list", json.dumps(minimal(date_range=[1, 2])).encode(), "date-range is a list"),
    ("no start", json.dumps(minimal(date_range={"end-datetime": "2026-10-01T00:00:00Z"})).encode(),
     "date-range: no start-datetime"),
    ("bad date", json.dumps(minimal(date_range={"start-datetime": "yesterday",
                                                "end-datetime": "2026-10-01T00:00:00Z"})).encode(),
     "'yesterday' is not an RFC 3339 date-time"),
    ("impossible date", json.dumps(minimal(date_range={"start-datetime": "2026-13-45T00:00:00Z",
                                                       "end-datetime": "2026-10-01T00:00:00Z"})).encode(),
     "not a valid date-time"),
    ("no policies", json.dumps(minimal(policies=None)).encode(), "no policies"),
    ("policies object", json.dumps(minimal(policies={"policy": {}})).encode(),
     "policies is an object, not a list"),
    ("policy entry string", json.dumps(minimal(policies=["sts"])).encode(), "policy 1: is a string"),
    ("no policy object", json.dumps(minimal(policies=[{"summary": {}}])).encode(),
     "policy 1: no policy object"),
    ("no policy-type", json.dumps(with_policy({"policy-domain": "example.com"})).encode(),
     "policy 1: no policy-type"),
    ("negative", json.dumps(with_policy(summary={"total-successful-session-count": -1})).encode(),
     "policy 1: total-successful-session-count is negative (-1)"),
    ("negative string", json.dumps(with_policy(summary={"total-failure-session-count": "-3"})).encode(),
     "is negative (-3)"),
    ("boolean count", json.dumps(with_policy(summary={"total-successful-session-count": True})).encode(),
     "is a boolean, not a number"),
    ("fractional count", json.dumps(with_policy(summary={"total-successful-session-count": 1.5})).encode(),
     "is not a whole number"),
    ("word count", json.dumps(with_policy(summary={"total-successful-session-count": "many"})).encode(),
     "'many' is not a whole number"),
    ("huge count", json.dumps(with_policy(summary={"total-successful-session-count": 2**63})).encode(),
     "larger than any real session count"),
    ("failure-details object", json.dumps(with_policy(failures={"result-type": "x"})).encode(),
     "policy 1: failure-details is an object, not a list"),
    ("no result-type", json.dumps(with_policy(failures=[{"failed-session-count": 1}])).encode(),
     "policy 1 failure 1: no result-type"),
    ("negative failures", json.dumps(with_policy(failures=[{"result-type": "dane-required",
                                                             "failed-session-count": -2}])).encode(),
     "policy 1 failure 1: failed-session-count is negative (-2)"),
]


@pytest.mark.parametrize(("data", "message"), [(d, m) for _, d, m in MALFORMED],
                         ids=[name for name, _, _ in MALFORMED])
def test_malformed_reports_are_refused_clearly(data: bytes, message: str) -> None:
    with pytest.raises(MalformedReport) as caught:
        parse_tls_report(data)
    assert message in str(caught.value)
    assert caught.value.reason == "malformed_report"


def test_sums_beyond_64_bits_are_refused() -> None:
    policy = {"policy": {"policy-type": "sts"}, "summary": {"total-successful-session-count": 2**62}}
    with pytest.raises(MalformedReport, match="add up to"):
        parse(minimal(policies=[policy] * 3))


# -- the real-world corpus -------------------------------------------------------------------------

def shape(report: TlsReport) -> list[tuple[Any, ...]]:
    """Each policy as (type, domain, mx hosts, successful, failed, [(result type, sessions)])."""
    return [(p.policy_type, p.policy_domain, p.mx_hosts, p.total_successful, p.total_failure,
             [(f.result_type, f.failed_session_count) for f in p.failure_details]) for p in report.policies]


RFC_FAILURES = [("certificate-expired", 100), ("starttls-not-supported", 200), ("validation-failure", 3)]
RFC_SHAPE = [("sts", "company-y.example", ("*.mail.company-y.example",), 5326, 303, RFC_FAILURES)]
RFC_ID = "5065427c-23d3-47ca-b6e0-946ea0e8c4be"

RPT02 = ("2020-01-01T00:00:00Z_example.com", "2020-01-01T00:00:00", "2020-01-07T23:59:59",
         "smtp-tls-reporting@google.com",
         [("sts", "example.com", (), 23, 1, [("certificate-host-mismatch", 1)])])

# per file: (report-id, start, end, contact-info, shape)
CORPUS: dict[str, tuple[str, str, str, str | None, list[tuple[Any, ...]]]] = {
    "cry-inc__dmarc-report-viewer/testdata/smtp-tls-reports/google.json": (
        "2025-05-22T00:00:00Z_foo-bar.io", "2025-05-22T00:00:00", "2025-05-22T23:59:59",
        "smtp-tls-reporting@google.com", [("sts", "foo-bar.io", ("*.foo-bar.io",), 1, 0, [])]),
    "cry-inc__dmarc-report-viewer/testdata/smtp-tls-reports/microsoft.json": (
        "133925885310113267+random.net", "2025-05-23T00:00:00", "2025-05-23T23:59:59",
        "tlsrpt-noreply@microsoft.com",
        [("sts", "random.net", (), 2, 0, []), ("tlsa", "random.net", (), 2, 0, [])]),
    "cry-inc__dmarc-report-viewer/testdata/smtp-tls-reports/no-contact.json": (
        "123_456", "2026-01-11T00:00:00", "2026-01-12T00:00:00", None,
        [("sts", "server.com", ("mx: mx.server.com",), 1, 0, [])]),
    "cry-inc__dmarc-report-viewer/testdata/smtp-tls-reports/no-policy.json": (
        "2025-03-27T00:00:00Z_foo-bar.io", "2025-03-27T00:00:00", "2025-03-27T23:59:59",
        "smtp-tls-reporting@google.com", [("no-policy-found", "foo-bar.io", (), 1, 0, [])]),
    "cry-inc__dmarc-report-viewer/testdata/smtp-tls-reports/no_ip_and_mx.json": (
        "1234567890+", "2025-06-14T00:00:00", "2025-06-14T23:59:59", "tlsrpt-noreply@microsoft.com",
        [("sts", "xxxxxxxx.xx", (), 0, 3, [("sts-policy-fetch-error", 3)])]),
    "cry-inc__dmarc-report-viewer/testdata/smtp-tls-reports/rfc-example.json": (
        RFC_ID, "2016-04-01T00:00:00", "2016-04-01T23:59:59", "sts-reporting@company-x.example", RFC_SHAPE),
    "domainaware__parsedmarc/samples/smtp_tls/google.com_smtp_tls_report.eml": (
        "2024-09-03T00:00:00Z_cardinalhealth.ca", "2024-09-03T00:00:00", "2024-09-03T23:59:59",
        "smtp-tls-reporting@google.com", [("no-policy-found", "cardinalhealth.ca", (), 48, 0, [])]),
    "domainaware__parsedmarc/samples/smtp_tls/mail.ru.json": (
        "b28254de-7b2e-be36-bb5c-4c3b92da8b25@mail.ru", "2024-02-22T00:00:00", "2024-02-23T00:00:00",
        "tls_support@corp.mail.ru",
        [("sts", "example.com", (), 0, 1, [("sts-policy-fetch-error", 1), ("sts-policy-fetch-error", 1)])]),
    "domainaware__parsedmarc/samples/smtp_tls/rfc8460.json": (
        RFC_ID, "2016-04-01T00:00:00", "2016-04-01T23:59:59", "sts-reporting@company-x.example", RFC_SHAPE),
    "domainaware__parsedmarc/samples/smtp_tls/smtp_tls.json": (
        "2024-01-09T00:00:00Z_example.com", "2024-01-09T00:00:00", "2024-01-09T23:59:59",
        "smtp-tls-reporting@example.com",
        [("sts", "example.com", (), 0, 3, [("validation-failure", 2), ("validation-failure", 1)])]),
    "stalwartlabs__mail-auth/resources/tlsrpt/rpt01.eml": (
        RFC_ID, "2016-04-01T00:00:00", "2016-04-01T23:59:59", "sts-reporting@company-x.example", RFC_SHAPE),
    "stalwartlabs__mail-auth/resources/tlsrpt/rpt01.json": (
        RFC_ID, "2016-04-01T00:00:00", "2016-04-01T23:59:59", "sts-reporting@company-x.example", RFC_SHAPE),
    "stalwartlabs__mail-auth/resources/tlsrpt/rpt02.eml": RPT02,
    "stalwartlabs__mail-auth/resources/tlsrpt/rpt02.json": RPT02,
    "stalwartlabs__mail-auth/resources/tlsrpt/rpt03.json": (
        "2019-04-14T00:00:00Z_example.org", "2019-04-14T00:00:00", "2019-04-14T23:59:59",
        "smtp-tls-reporting@google.com", [("no-policy-found", None, (), 1, 0, []),
                                          ("invalid-policy-type", None, (), 1, 0, [])]),
}


def tlsrpt_rows(corpus: Path) -> list[dict[str, str]]:
    with open(corpus / "MANIFEST.tsv", newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle, delimiter="\t") if row["kind"] == "tlsrpt"]


def corpus_report(corpus: Path, relpath: str) -> TlsReport:
    """Through the unpacker, as the pipeline reads it: e-mails hold their report in a part."""
    path = corpus / relpath
    items = list(unpack(lambda: open(path, "rb"), relpath, DecompressionBudget(UnpackLimits())))
    assert len(items) == 1 and isinstance(items[0], Payload) and items[0].kind is ReportKind.TLS, items
    with items[0].open() as stream:
        return parse_tls_report(stream.read())


def test_every_corpus_tls_file_is_expected(corpus: Path) -> None:
    assert {row["relpath"] for row in tlsrpt_rows(corpus)} == set(CORPUS)


@pytest.mark.parametrize("relpath", sorted(CORPUS))
def test_corpus_file(corpus: Path, relpath: str) -> None:
    row = next(row for row in tlsrpt_rows(corpus) if row["relpath"] == relpath)
    report = corpus_report(corpus, relpath)
    report_id, start, end, contact, expected = CORPUS[relpath]
    assert report.organization_name == row["reporting_org"]
    assert report.report_id == report_id and report.contact_info == contact
    assert report.start == datetime.fromisoformat(start).replace(tzinfo=UTC)
    assert report.end == datetime.fromisoformat(end).replace(tzinfo=UTC)
    assert shape(report) == expected
    # the manifest's own description of the file agrees
    quirk = row["quirk"]
    assert f"{len(report.policies)} policies" in quirk
    types = quirk.split("policy-type: ", 1)[1].split(";", 1)[0].split(",")
    assert sorted({p.policy_type for p in report.policies}) == sorted(types)
    has_details = any(p.failure_details for p in report.policies)
    assert has_details == ("failure-details present" in quirk)
    if "mx-host as string" in quirk:
        assert noted(report, "mx-host given as a single value")
    if "without sending-mta-ip/receiving-mx-hostname" in quirk:
        assert all(f.sending_mta_ip is None and f.receiving_mx_hostname is None
                   for p in report.policies for f in p.failure_details)
    if "invalid-policy-type" in quirk:
        assert noted(report, "unknown policy-type 'invalid-policy-type' kept as given")


def test_corpus_details_worth_a_closer_look(corpus: Path) -> None:
    rfc = corpus_report(corpus, "cry-inc__dmarc-report-viewer/testdata/smtp-tls-reports/rfc-example.json")
    third = rfc.policies[0].failure_details[2]
    assert (third.sending_mta_ip, third.receiving_ip, third.receiving_mx_hostname) == (
        "198.51.100.62", "203.0.113.58", "mx-backup.mail.company-y.example")
    assert third.failure_reason_code == "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"
    assert rfc.policies[0].policy_strings[1] == "mode: testing"
    mail_ru = corpus_report(corpus, "domainaware__parsedmarc/samples/smtp_tls/mail.ru.json")
    assert [f.failure_reason_code for f in mail_ru.policies[0].failure_details] == [
        "bad https response code: 404", "bad https response code: 500"]
    assert noted(mail_ru, "failure-details count 2 failed sessions, more than the summary's 1")
    microsoft = corpus_report(corpus, "cry-inc__dmarc-report-viewer/testdata/smtp-tls-reports/microsoft.json")
    assert microsoft.policies[1].policy_strings[0].startswith('["3 1 1 6007EEE5')
    stalwart = corpus_report(corpus, "stalwartlabs__mail-auth/resources/tlsrpt/rpt01.eml")
    assert stalwart.policies[0].failure_details[1].additional_information == (
        "https://reports.company-x.example/report_info ? id = 5065427 c - 23 d3# StarttlsNotSupported")
    assert noted(stalwart, "white space around additional-information removed")
    smtp_tls = corpus_report(corpus, "domainaware__parsedmarc/samples/smtp_tls/smtp_tls.json")
    assert {f.receiving_ip for f in smtp_tls.policies[0].failure_details} == {"173.212.201.41"}
