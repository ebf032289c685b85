"""The normaliser: raw report texts to canonical values, leniently and on the record.

Each case is a quirk real generators produce (../shared/STANDARDS.md §7) or a schema rule
(§1 RFC 7489, §2 RFC 9990). A value is folded where its meaning is clear (raw text kept),
nulled with a repair note where it is not; nothing here may raise on bad input.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from app.models import Record, RecordDkimResult, RecordSpfResult, Report
from ingest.aggregate_normaliser import (
    ALIGNMENTS,
    DISCOVERY_METHODS,
    DISPOSITIONS,
    DKIM_RESULTS,
    OVERRIDE_TYPES,
    POLICIES,
    POLICY_RESULTS,
    SPF_RESULTS,
    SPF_SCOPES,
    TESTING,
    dkim_row,
    normalise_header,
    reason_row,
    record_row,
    spf_row,
)
from ingest.aggregate_report import RawReportHeader, RepairNotes, ReportHeader
from ingest.record_batch import DKIM_COLUMNS, REASON_COLUMNS, RECORD_COLUMNS, SPF_COLUMNS

V4_MAPPED = b"\x00" * 10 + b"\xff\xff"
BIGINT_MAX = 2**63 - 1


def rec(**texts: str | None) -> tuple[dict[str, object], RepairNotes]:
    """A record row built from canonical texts with `texts` overriding, as a column dict."""
    values: dict[str, str | None] = {
        "ip": "192.0.2.1", "count_text": "1", "disposition_text": "none", "dkim_text": "pass",
        "spf_text": "pass", "header_from_text": "example.com", "envelope_from_text": "example.com",
        "envelope_to_text": None}
    values.update(texts)
    notes = RepairNotes()
    row = record_row(7, notes=notes, **values)  # type: ignore[arg-type]
    assert len(row) == len(RECORD_COLUMNS)
    return dict(zip(RECORD_COLUMNS, row, strict=True)), notes


def raw_of(row: dict[str, object]) -> dict[str, str]:
    return json.loads(row["raw_values"]) if row["raw_values"] else {}  # type: ignore[arg-type]


def noted(notes: RepairNotes, *words: str) -> bool:
    """Some note line mentions every word (case-insensitive)."""
    return any(all(word.lower() in line.lower() for word in words) for line in notes.lines())


# -- record rows -------------------------------------------------------------------------------

def test_canonical_record_is_stored_as_is_without_notes() -> None:
    """The fast path must not invent notes or raw values for a well-formed record."""
    row, notes = rec(envelope_to_text="example.net")
    assert row == {
        "record_no": 7, "source_ip": "192.0.2.1", "source_ip_packed": V4_MAPPED + bytes([192, 0, 2, 1]),
        "count": 1, "disposition": "none", "dkim": "pass", "spf": "pass", "header_from": "example.com",
        "envelope_from": "example.com", "envelope_to": "example.net", "raw_values": None}
    assert not notes


@pytest.mark.parametrize(("field", "text", "column", "value"), [
    ("disposition_text", "Quarantine", "disposition", "quarantine"),
    ("disposition_text", "REJECT", "disposition", "reject"),
    ("dkim_text", "Pass", "dkim", "pass"),
    ("spf_text", "FAIL", "spf", "fail"),
])
def test_case_is_folded_and_raw_text_kept(field: str, text: str, column: str, value: str) -> None:
    """`Pass` casing (cry-inc#79, parsedmarc#132) is read, and the original is not thrown away."""
    row, notes = rec(**{field: text})
    assert row[column] == value
    assert raw_of(row) == {column: text}
    assert not notes


def test_rfc9990_disposition_pass_is_accepted() -> None:
    """RFC 9990 adds disposition `pass`; it must not be treated as unknown."""
    row, notes = rec(disposition_text="pass")
    assert row["disposition"] == "pass"
    assert not notes


@pytest.mark.parametrize("text", ["hardfail", "softfail", "neutral", "temperror", "permerror", "none"])
def test_policy_evaluated_non_dmarc_results_fold_to_fail(text: str) -> None:
    """policy_evaluated dkim/spf is a DMARCResult (pass|fail); SPF words there mean fail."""
    row, _ = rec(spf_text=text)
    assert row["spf"] == "fail"
    assert raw_of(row)["spf"] == text


@pytest.mark.parametrize("text", ["5", " 5", "5 ", "\t5\n", " \t 5 \t "])
def test_padded_counts_are_read(text: str) -> None:
    """Tab/space padding inside numbers is seen in real reports; it is not an error."""
    row, notes = rec(count_text=text)
    assert row["count"] == 5
    assert not notes


def test_zero_count_is_kept() -> None:
    """`count=0` rows exist (tierpod test_empty.xml); zero is a valid count, not a missing one."""
    row, notes = rec(count_text="0")
    assert row["count"] == 0
    assert not notes


@pytest.mark.parametrize("text", ["-1", "1.5", "ten", "1e3", "0x10"])
def test_count_that_is_not_a_non_negative_integer_is_nulled_with_note(text: str) -> None:
    """A count is a non-negative integer; anything else is null, noted, raw text kept."""
    row, notes = rec(count_text=text)
    assert row["count"] is None
    assert raw_of(row)["count"] == text
    assert noted(notes, "record 7", "count")


def test_count_beyond_the_stores_bigint_is_nulled_with_note() -> None:
    """count is stored as BIGINT: a larger number must be refused here, not by the database.

    Otherwise one absurd count fails the whole report with an internal error at insert.
    """
    text = str(BIGINT_MAX + 1)
    row, notes = rec(count_text=text)
    assert row["count"] is None
    assert raw_of(row)["count"] == text
    assert noted(notes, "record 7", "count")


def test_largest_bigint_count_is_kept() -> None:
    row, notes = rec(count_text=str(BIGINT_MAX))
    assert row["count"] == BIGINT_MAX
    assert not notes


@pytest.mark.parametrize(("field", "column", "word"), [
    ("ip", "source_ip", "source_ip"),
    ("count_text", "count", "count"),
    ("disposition_text", "disposition", "disposition"),
    ("dkim_text", "dkim", "dkim"),
    ("spf_text", "spf", "spf"),
    ("header_from_text", "header_from", "header_from"),
])
@pytest.mark.parametrize("text", [None, "", "  \t"])
def test_missing_or_empty_required_field_is_null_with_note(
        field: str, column: str, word: str, text: str | None) -> None:
    """A required record field that is absent or empty is stored as null and said so."""
    row, notes = rec(**{field: text})
    assert row[column] is None
    assert noted(notes, "record 7", word)


@pytest.mark.parametrize(("text", "canonical", "packed"), [
    ("192.0.2.1", "192.0.2.1", V4_MAPPED + bytes([192, 0, 2, 1])),
    (" 192.0.2.1\t", "192.0.2.1", V4_MAPPED + bytes([192, 0, 2, 1])),
    ("2001:DB8::1", "2001:db8::1", bytes.fromhex("20010db8000000000000000000000001")),
    ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1",
     bytes.fromhex("20010db8000000000000000000000001")),
    ("::1", "::1", bytes(15) + b"\x01"),
])
def test_ip_addresses_are_canonicalised(text: str, canonical: str, packed: bytes) -> None:
    """One address, one text: IPv6 spelled differently must compare and index as equal."""
    row, notes = rec(ip=text)
    assert (row["source_ip"], row["source_ip_packed"]) == (canonical, packed)
    assert not notes
    if text.strip() != canonical:
        assert raw_of(row)["source_ip"] == text.strip()


@pytest.mark.parametrize("text", ["999.1.1.1", "192.0.2", "192.0.2.01", "2001:db8::g", "example.com",
                                  "192.0.2.1/24", "1.2.3.4.5"])
def test_invalid_ip_is_null_with_note_and_raw_kept(text: str) -> None:
    row, notes = rec(ip=text)
    assert row["source_ip"] is None
    assert row["source_ip_packed"] is None
    assert raw_of(row)["source_ip"] == text
    assert noted(notes, "record 7", "source_ip")


@pytest.mark.parametrize(("text", "value", "raw"), [
    ("example.com", "example.com", None),
    ("Example.COM.", "example.com", None),
    ("", "", None),
    ("<>", "", "<>"),
    (" <> ", "", "<>"),
    ("bounce@Example.COM", "example.com", "bounce@Example.COM"),
    ("<bounce@example.com>", "example.com", "<bounce@example.com>"),
    (None, None, None),
])
def test_envelope_from(text: str | None, value: str | None, raw: str | None) -> None:
    """`<>` and empty both mean the null reverse-path, stored as ""; absent stays null (§7)."""
    row, notes = rec(envelope_from_text=text)
    assert row["envelope_from"] == value
    assert raw_of(row).get("envelope_from") == raw
    assert not notes


def test_domains_are_lower_cased_without_root_dot() -> None:
    row, _ = rec(header_from_text=" Example.COM. ", envelope_to_text="Mail.Example.NET")
    assert row["header_from"] == "example.com"
    assert row["envelope_to"] == "mail.example.net"


def test_unknown_disposition_is_null_with_note_and_raw_kept() -> None:
    row, notes = rec(disposition_text="delivered")
    assert row["disposition"] is None
    assert raw_of(row)["disposition"] == "delivered"
    assert noted(notes, "record 7", "disposition", "delivered")


# -- auth results ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value", "raw"), [
    ("pass", "pass", None),
    ("Pass", "pass", "Pass"),
    (" pass ", "pass", None),
    ("hardfail", "fail", "hardfail"),
    ("unknown", "temperror", "unknown"),
    ("error", "permerror", "error"),
    ("policy", "policy", None),
    ("neutral", "neutral", None),
])
def test_dkim_results_fold_synonyms_and_keep_raw(text: str, value: str, raw: str | None) -> None:
    """hardfail (cry-inc#21), unknown (OpenDMARC) and error are mapped, never lost (§1, §7)."""
    notes = RepairNotes()
    row = dict(zip(DKIM_COLUMNS, dkim_row(3, 1, "Example.COM.", " sel ", text, "body hash ok", notes),
                   strict=True))
    assert row == {"record_no": 3, "seq": 1, "domain": "example.com", "selector": "sel", "result": value,
                   "human_result": "body hash ok", "result_raw": raw}
    assert not notes


@pytest.mark.parametrize(("text", "value", "raw"), [
    ("softfail", "softfail", None),
    ("SoftFail", "softfail", "SoftFail"),
    ("hardfail", "fail", "hardfail"),
    ("unknown", "temperror", "unknown"),
    ("error", "permerror", "error"),
    ("policy", "policy", None),
])
def test_spf_results_fold_synonyms_and_keep_raw(text: str, value: str, raw: str | None) -> None:
    notes = RepairNotes()
    row = dict(zip(SPF_COLUMNS, spf_row(3, 0, "example.com", "mfrom", text, None, notes), strict=True))
    assert (row["result"], row["result_raw"]) == (value, raw)
    assert not notes


@pytest.mark.parametrize(("text", "value"), [("mfrom", "mfrom"), ("helo", "helo"), ("MFROM", "mfrom"),
                                             (None, None)])
def test_spf_scope(text: str | None, value: str | None) -> None:
    """scope is required in RFC 7489 but optional in RFC 9990: absence is not an error."""
    notes = RepairNotes()
    row = dict(zip(SPF_COLUMNS, spf_row(1, 0, "example.com", text, "pass", None, notes), strict=True))
    assert row["scope"] == value
    assert not notes


def test_unknown_auth_result_is_null_with_note_and_raw_kept() -> None:
    notes = RepairNotes()
    row = dict(zip(DKIM_COLUMNS, dkim_row(4, 0, "example.com", "s", "bogus", None, notes), strict=True))
    assert (row["result"], row["result_raw"]) == (None, "bogus")
    assert noted(notes, "record 4", "bogus")


def test_dkim_without_selector_is_accepted() -> None:
    """RFC 7489 makes selector optional (AOL, solarmora omit it)."""
    notes = RepairNotes()
    row = dict(zip(DKIM_COLUMNS, dkim_row(1, 0, "example.com", None, "pass", None, notes), strict=True))
    assert row["selector"] is None
    assert not notes


@pytest.mark.parametrize("text", [None, "", "  "])
def test_missing_dkim_result_is_null_with_note(text: str | None) -> None:
    """`result` is required in every dkim element: a missing one must be noted, not silently null."""
    notes = RepairNotes()
    row = dict(zip(DKIM_COLUMNS, dkim_row(5, 0, "example.com", "s", text, None, notes), strict=True))
    assert row["result"] is None
    assert noted(notes, "record 5", "dkim", "result")


@pytest.mark.parametrize("text", [None, "", "  "])
def test_missing_spf_result_is_null_with_note(text: str | None) -> None:
    """`result` is required in every spf element: a missing one must be noted, not silently null."""
    notes = RepairNotes()
    row = dict(zip(SPF_COLUMNS, spf_row(5, 0, "example.com", "mfrom", text, None, notes), strict=True))
    assert row["result"] is None
    assert noted(notes, "record 5", "spf", "result")


# -- reasons -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["forwarded", "sampled_out", "trusted_forwarder", "mailing_list",
                                  "local_policy", "other", "policy_test_mode"])
def test_override_types_of_both_schemas(kind: str) -> None:
    """7489's forwarded/sampled_out and 9990's policy_test_mode are all read (§1, §2)."""
    notes = RepairNotes()
    row = dict(zip(REASON_COLUMNS, reason_row(2, 0, kind, " why ", notes), strict=True))
    assert row == {"record_no": 2, "seq": 0, "type": kind, "comment": "why", "type_raw": None}
    assert not notes


def test_reason_type_case_folded_with_raw_kept() -> None:
    notes = RepairNotes()
    row = dict(zip(REASON_COLUMNS, reason_row(2, 1, "Mailing_List", None, notes), strict=True))
    assert (row["type"], row["type_raw"], row["comment"]) == ("mailing_list", "Mailing_List", None)


@pytest.mark.parametrize("text", [None, "", " "])
def test_empty_reason_type_is_null_with_note(text: str | None) -> None:
    """`<reason><type/>` is real (parsedmarc empty_reason.xml): keep the row, note it."""
    notes = RepairNotes()
    row = dict(zip(REASON_COLUMNS, reason_row(9, 0, text, "c", notes), strict=True))
    assert (row["type"], row["comment"]) == (None, "c")
    assert noted(notes, "record 9", "reason")


def test_unknown_reason_type_is_null_with_note_and_raw_kept() -> None:
    notes = RepairNotes()
    row = dict(zip(REASON_COLUMNS, reason_row(9, 0, "$text", None, notes), strict=True))
    assert (row["type"], row["type_raw"]) == (None, "$text")
    assert noted(notes, "record 9", "$text")


# -- header ------------------------------------------------------------------------------------

def raw_header(**policy: str | None) -> RawReportHeader:
    raw = RawReportHeader(
        namespace="", version="1.0",
        metadata={"org_name": "receiver.example", "email": "dmarc@receiver.example",
                  "report_id": "r-1", "begin": "1700000000", "end": "1700086399"},
        policy={"domain": "example.com", "adkim": "r", "aspf": "r", "p": "reject", "sp": "none",
                "pct": "100", "fo": "1"},
        seen={"report_metadata", "policy_published"})
    raw.policy.update(policy)
    return raw


def header_of(raw: RawReportHeader) -> tuple[ReportHeader, RepairNotes]:
    notes = RepairNotes()
    return normalise_header(raw, notes), notes


def test_rfc7489_header() -> None:
    header, notes = header_of(raw_header())
    assert header.org_name == "receiver.example"
    assert header.email == "dmarc@receiver.example"
    assert header.report_id == "r-1"
    assert header.begin == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert header.end == datetime(2023, 11, 15, 22, 13, 19, tzinfo=UTC)
    assert header.version == "1.0"
    assert header.xml_namespace is None
    policy = header.policy
    assert (policy.domain, policy.adkim, policy.aspf, policy.p, policy.sp, policy.pct, policy.fo) == (
        "example.com", "r", "r", "reject", "none", 100, "1")
    assert (policy.np, policy.testing, policy.discovery_method) == (None, None, None)
    assert not notes


def test_rfc9990_header_every_field() -> None:
    """RFC 9990 adds np, testing, discovery_method, generator and drops pct (§2)."""
    raw = raw_header(np="quarantine", testing="y", discovery_method="treewalk", pct=None)
    raw.metadata.update(generator=" Example Reporter 2.1 ", extra_contact_info="https://example.net/dmarc")
    raw.errors.extend(["first error", "second error"])
    raw.namespace = "urn:ietf:params:xml:ns:dmarc-2.0"
    header, notes = header_of(raw)
    assert header.generator == "Example Reporter 2.1"
    assert header.extra_contact_info == "https://example.net/dmarc"
    assert header.errors == ("first error", "second error")
    assert header.xml_namespace == "urn:ietf:params:xml:ns:dmarc-2.0"
    assert (header.policy.np, header.policy.testing, header.policy.discovery_method) == (
        "quarantine", "y", "treewalk")
    assert header.policy.pct is None
    assert not notes, "a missing pct is normal in RFC 9990"


@pytest.mark.parametrize(("key", "text", "attribute", "value"), [
    ("adkim", "S", "adkim", "s"),
    ("aspf", "relaxed", "aspf", "r"),
    ("p", " Reject ", "p", "reject"),
    ("np", "NONE", "np", "none"),
    ("testing", "Y", "testing", "y"),
    ("discovery_method", "PSL", "discovery_method", "psl"),
    ("pct", "\t50 ", "pct", 50),
])
def test_policy_values_are_folded(key: str, text: str, attribute: str, value: object) -> None:
    header, notes = header_of(raw_header(**{key: text}))
    assert getattr(header.policy, attribute) == value
    assert not notes


@pytest.mark.parametrize("text", ["101", "-1", "half", "50%"])
def test_bad_pct_is_null_with_note(text: str) -> None:
    header, notes = header_of(raw_header(pct=text))
    assert header.policy.pct is None
    assert noted(notes, "pct")


@pytest.mark.parametrize(("key", "text"), [("p", "block"), ("adkim", "x"), ("testing", "maybe"),
                                           ("discovery_method", "dns")])
def test_unknown_policy_value_is_null_with_note(key: str, text: str) -> None:
    header, notes = header_of(raw_header(**{key: text}))
    assert getattr(header.policy, key) is None
    assert noted(notes, text)


def test_missing_p_is_noted() -> None:
    header, notes = header_of(raw_header(p=None))
    assert header.policy.p is None
    assert noted(notes, "p", "missing")


def test_padded_timestamps_are_read() -> None:
    raw = raw_header()
    raw.metadata.update(begin=" \t1700000000\n", end="1700086399 ")
    header, notes = header_of(raw)
    assert header.begin == datetime.fromtimestamp(1700000000, UTC)
    assert header.end == datetime.fromtimestamp(1700086399, UTC)
    assert not notes


def test_begin_after_end_is_noted() -> None:
    raw = raw_header()
    raw.metadata.update(begin="1700086399", end="1700000000")
    header, notes = header_of(raw)
    assert header.begin is not None and header.end is not None
    assert noted(notes, "begin", "after")


def test_begin_equal_to_end_is_not_noted() -> None:
    """begin == end is seen in real reports (§7) and is not a contradiction."""
    raw = raw_header()
    raw.metadata.update(begin="1700000000", end="1700000000")
    _, notes = header_of(raw)
    assert not notes


def test_millisecond_timestamps_are_scaled_with_note() -> None:
    raw = raw_header()
    raw.metadata.update(begin="1700000000000", end="1700086399000")
    header, notes = header_of(raw)
    assert header.begin == datetime.fromtimestamp(1700000000, UTC)
    assert noted(notes, "milliseconds")


@pytest.mark.parametrize("text", ["", "soon", "-5", "nan", "99999999999999999999999", "inf", "-inf",
                                  "1e400", "Infinity"])
def test_unusable_timestamp_is_null_with_note(text: str) -> None:
    """Whatever a begin says, the header is built: a bad timestamp is null and noted, never raised."""
    raw = raw_header()
    raw.metadata["begin"] = text
    header, notes = header_of(raw)
    assert header.begin is None
    assert noted(notes, "begin")


def test_missing_required_metadata_is_noted() -> None:
    raw = RawReportHeader(seen={"report_metadata", "policy_published"}, policy={"p": "none"})
    header, notes = header_of(raw)
    assert (header.org_name, header.report_id, header.begin, header.end, header.policy.domain) == (
        None, None, None, None, None)
    for word in ("org_name", "report_id", "begin", "end", "domain"):
        assert noted(notes, word), word


def test_absent_sections_are_noted() -> None:
    _, notes = header_of(RawReportHeader())
    assert noted(notes, "no <report_metadata>")
    assert noted(notes, "no <policy_published>")


def test_policy_domain_is_lower_cased() -> None:
    header, _ = header_of(raw_header(domain=" Example.COM. "))
    assert header.policy.domain == "example.com"


# -- vocabularies ------------------------------------------------------------------------------

def test_vocabularies_cover_both_schemas() -> None:
    """Every enumerated value of RFC 7489 Appendix C and RFC 9990 maps to itself (§1, §2)."""
    for table, values in [
        (DISPOSITIONS, "none quarantine reject pass"),
        (POLICY_RESULTS, "pass fail"),
        (DKIM_RESULTS, "none pass fail policy neutral temperror permerror"),
        (SPF_RESULTS, "none neutral pass fail softfail temperror permerror policy"),
        (SPF_SCOPES, "helo mfrom"),
        (ALIGNMENTS, "r s"),
        (POLICIES, "none quarantine reject"),
        (TESTING, "n y"),
        (DISCOVERY_METHODS, "psl treewalk"),
        (OVERRIDE_TYPES, "forwarded sampled_out trusted_forwarder mailing_list local_policy other "
                         "policy_test_mode"),
    ]:
        for value in values.split():
            assert table[value] == value
    assert set(POLICY_RESULTS.values()) == {"pass", "fail"}
    dkim_values = {"none", "pass", "fail", "policy", "neutral", "temperror", "permerror"}
    assert set(DKIM_RESULTS.values()) <= dkim_values


# -- values fit the store ----------------------------------------------------------------------

def width(model: type, column: str) -> int | None:
    """The column's length limit, or None for unbounded text."""
    length = model.__table__.c[column].type.length  # type: ignore[attr-defined]
    assert length is None or isinstance(length, int)
    return length


def fits(value: object, model: type, column: str) -> bool:
    limit = width(model, column)
    return value is None or limit is None or len(str(value)) <= limit


def test_header_values_fit_their_columns() -> None:
    """PostgreSQL refuses a VARCHAR(n) overflow, and the pipeline takes any database error for an
    unavailable store: an over-long <version> or <fo> would have the input retried forever."""
    raw = raw_header(fo="0:1:d:s:" * 10, domain="d" * 250 + ".example")
    raw.version = "1.0-" + "x" * 40
    header, _ = header_of(raw)
    too_long = [column for column, value in (("version", header.version), ("fo", header.policy.fo),
                                             ("policy_domain", header.policy.domain))
                if not fits(value, Report, column)]
    assert too_long == []


def test_record_values_fit_their_columns() -> None:
    long_domain = "sub." * 70 + "example.com"
    row, _ = rec(header_from_text=long_domain, envelope_from_text="bounce@" + long_domain,
                 envelope_to_text=long_domain, ip="fe80::1%" + "z" * 100)
    notes = RepairNotes()
    dkim = dict(zip(DKIM_COLUMNS, dkim_row(1, 0, long_domain, "s" * 300, "pass", None, notes), strict=True))
    spf = dict(zip(SPF_COLUMNS, spf_row(1, 0, long_domain, "mfrom", "pass", None, notes), strict=True))
    checks: list[tuple[type, dict[str, object], str]] = [
        (Record, row, column) for column in ("source_ip", "header_from", "envelope_from", "envelope_to")]
    checks += [(RecordDkimResult, dkim, "domain"), (RecordDkimResult, dkim, "selector"),
               (RecordSpfResult, spf, "domain")]
    too_long = [f"{model.__name__}.{column}" for model, values, column in checks
                if not fits(values[column], model, column)]
    assert too_long == []
