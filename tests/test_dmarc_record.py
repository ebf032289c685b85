"""DMARC policy record parsing: one test per rule, then records as real domains publish them.

Problems are compared by (severity, code, tag); messages are for people and may be reworded,
so only a few tests check that a message carries the fact the user needs.
"""

from __future__ import annotations

import pytest

from ingest.dmarc_record import (
    DmarcRecord,
    ProblemSeverity,
    RecordProblem,
    is_dmarc_record,
    parse_dmarc_record,
)

ERROR, WARNING, NOTICE = ProblemSeverity.ERROR, ProblemSeverity.WARNING, ProblemSeverity.NOTICE
RUA = "rua=mailto:dmarc@example.com"


def parse(text: str) -> tuple[DmarcRecord, list[RecordProblem]]:
    record, problems = parse_dmarc_record(text)
    assert record is not None, problems
    return record, problems


def codes(text: str) -> set[tuple[ProblemSeverity, str, str | None]]:
    return {(problem.severity, problem.code, problem.tag) for problem in parse_dmarc_record(text)[1]}


def only(text: str, code: str) -> RecordProblem:
    found = [problem for problem in parse_dmarc_record(text)[1] if problem.code == code]
    assert len(found) == 1, parse_dmarc_record(text)[1]
    return found[0]


# --- detection -----------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "v=DMARC1", "v=DMARC1;", "v=DMARC1; p=none", "v = DMARC1 ; p=none", "V=dmarc1;p=none",
    "v=DMARC1\t;p=reject", "  v=DMARC1; p=none",
])
def test_is_dmarc_record(text: str) -> None:
    assert is_dmarc_record(text)


@pytest.mark.parametrize("text", [
    "", "v=spf1 -all", "v=DMARC1 p=none", "v=DMARC10; p=none", "p=none; v=DMARC1", "v=DMARC2; p=none",
    "google-site-verification=abc", "vv=DMARC1; p=none", "v=DMARC1p=none",
])
def test_is_not_dmarc_record(text: str) -> None:
    assert not is_dmarc_record(text)


@pytest.mark.parametrize(("text", "code"), [
    ("v=spf1 include:_spf.example.com -all", "invalid_v"),
    ("v=DMARC2; p=none", "invalid_v"),
    ("p=none; v=DMARC1; rua=mailto:a@example.com", "not_first_v"),
    ("v=DMARC1 p=none", "syntax"),
    ("p=reject; rua=mailto:a@example.com", "missing_v"),
    ("", "missing_v"),
])
def test_not_a_dmarc_record_says_why(text: str, code: str) -> None:
    record, problems = parse_dmarc_record(text)
    assert record is None
    assert [(problem.severity, problem.code, problem.tag) for problem in problems] == [(ERROR, code, "v")]


def test_version_must_be_upper_case() -> None:
    record, _ = parse("v=dmarc1; p=reject; " + RUA)
    assert record.p == "reject"
    assert "DMARC1" in only("v=dmarc1; p=reject; " + RUA, "invalid_v").message
    assert (ERROR, "invalid_v", "v") in codes("v=Dmarc1; p=reject; " + RUA)
    assert not any(problem.code == "invalid_v" for problem in parse("V=DMARC1; p=reject; " + RUA)[1])


# --- p, sp, np --------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["none", "quarantine", "reject", "REJECT", "Quarantine"])
def test_policy_values_are_case_insensitive(value: str) -> None:
    record, _ = parse(f"v=DMARC1; p={value}; sp={value}; np={value}; {RUA}")
    assert record.p == record.sp == record.np == value.lower()
    assert record.tags["p"] == value


def test_missing_p_without_rua_means_no_dmarc() -> None:
    record, _ = parse("v=DMARC1; adkim=s")
    assert record.p is None and record.effective_p is None
    assert (ERROR, "missing_p", "p") in codes("v=DMARC1; adkim=s")
    assert "ignore" in only("v=DMARC1; adkim=s", "missing_p").message


def test_missing_p_with_valid_rua_is_treated_as_none() -> None:
    record, _ = parse(f"v=DMARC1; {RUA}")
    assert record.p is None
    assert record.effective_p == "none"
    assert "p=none" in only(f"v=DMARC1; {RUA}", "missing_p").message


def test_missing_p_with_only_invalid_rua_is_not_rescued() -> None:
    record, _ = parse("v=DMARC1; rua=dmarc@example.com")
    assert record.rua == ()
    assert record.effective_p is None


def test_invalid_p() -> None:
    problem = only(f"v=DMARC1; p=rejct; {RUA}", "invalid_p")
    assert (problem.severity, problem.tag) == (ERROR, "p")
    assert "p=rejct is not a policy; use none, quarantine or reject" in problem.message
    record, _ = parse(f"v=DMARC1; p=rejct; {RUA}")
    assert record.p is None and record.effective_p == "none"


@pytest.mark.parametrize("tag", ["sp", "np"])
def test_invalid_subdomain_policies(tag: str) -> None:
    text = f"v=DMARC1; p=reject; {tag}=block; {RUA}"
    assert (ERROR, f"invalid_{tag}", tag) in codes(text)
    record, _ = parse(text)
    assert getattr(record, tag) is None
    # RFC 9989 §4.10.1: an invalid sp or np sends the whole record to p=none (with a valid rua).
    assert record.effective_p == "none"
    assert record.subdomain_policy(True) == record.subdomain_policy(False) == "none"
    record, _ = parse(f"v=DMARC1; p=reject; {tag}=block")
    assert record.effective_p is None


@pytest.mark.parametrize("tag", ["p", "sp", "np"])
def test_empty_policy_value(tag: str) -> None:
    text = f"v=DMARC1; p=reject; {tag}=; {RUA}".replace("p=reject; p=;", "p=;")
    assert (ERROR, "empty_value", tag) in codes(text)
    record, _ = parse(text)
    assert record.effective_p == "none"


def test_subdomain_policy_fallbacks() -> None:
    record, _ = parse(f"v=DMARC1; p=reject; {RUA}")
    assert record.subdomain_policy(True) == record.subdomain_policy(False) == "reject"
    record, _ = parse(f"v=DMARC1; p=reject; sp=quarantine; {RUA}")
    assert record.subdomain_policy(True) == "quarantine"
    assert record.subdomain_policy(False) == "quarantine"  # np absent: sp, then p
    assert record.subdomain_policy(None) == "quarantine"
    record, _ = parse(f"v=DMARC1; p=quarantine; sp=none; np=reject; {RUA}")
    assert record.subdomain_policy(True) == "none"
    assert record.subdomain_policy(False) == "reject"
    assert record.subdomain_policy(None) == "none"  # existence unknown: np does not apply
    assert record.effective_p == "quarantine"


def test_p_none_is_monitoring_only() -> None:
    assert (NOTICE, "monitoring_only", "p") in codes(f"v=DMARC1; p=none; {RUA}")
    assert not any(code == "monitoring_only" for _, code, _ in codes(f"v=DMARC1; p=reject; {RUA}"))


# --- syntax -----------------------------------------------------------------------------------

def test_tag_names_are_case_insensitive() -> None:
    record, problems = parse("v=DMARC1; P=reject; SP=none; ADKIM=s; RUA=mailto:d@example.com")
    assert (record.p, record.sp, record.adkim) == ("reject", "none", "s")
    assert record.rua == ("mailto:d@example.com",)
    assert {problem.code for problem in problems} <= {"monitoring_only"}
    assert list(record.tags) == ["v", "p", "sp", "adkim", "rua"]


def test_spaces_and_trailing_semicolon_are_tolerated() -> None:
    record, problems = parse("v = DMARC1 ;  p = reject ; rua = mailto:d@example.com ;  ")
    assert record.p == "reject" and record.rua == ("mailto:d@example.com",)
    assert problems == []


def test_duplicate_tag_first_wins() -> None:
    text = f"v=DMARC1; p=reject; p=none; {RUA}"
    problem = only(text, "duplicate_tag")
    assert (problem.severity, problem.tag) == (ERROR, "p")
    record, _ = parse(text)
    assert record.p == "reject" and record.tags["p"] == "reject"
    assert (ERROR, "duplicate_tag", "p") in codes("v=DMARC1; P=reject; p=reject; " + RUA)


def test_repeated_version_is_a_duplicate() -> None:
    assert (ERROR, "duplicate_tag", "v") in codes(f"v=DMARC1; p=reject; v=DMARC1; {RUA}")


def test_unknown_tag_is_a_warning_with_a_suggestion() -> None:
    problem = only(f"v=DMARC1; p=reject; {RUA}; adkm=s", "unknown_tag")
    assert (problem.severity, problem.tag) == (WARNING, "adkm")
    assert "adkim=" in problem.message
    record, _ = parse(f"v=DMARC1; p=reject; {RUA}; foo=bar")
    assert record.tags["foo"] == "bar"


def test_empty_value() -> None:
    assert (ERROR, "empty_value", "adkim") in codes(f"v=DMARC1; p=reject; adkim=; {RUA}")
    assert (ERROR, "empty_value", "rua") in codes("v=DMARC1; p=reject; rua=")


@pytest.mark.parametrize("text", [
    f"v=DMARC1; p=reject; garbage; {RUA}",
    f"v=DMARC1; p=reject; {RUA}; trailing garbage",
    f"v=DMARC1; p=reject; =none; {RUA}",
    f"v=DMARC1; p=reject; 1x=none; {RUA}",
])
def test_syntax_errors(text: str) -> None:
    record, _ = parse(text)
    assert (ERROR, "syntax", None) in codes(text)
    assert record.p == "reject"


def test_empty_term_between_semicolons() -> None:
    assert (WARNING, "syntax", None) in codes(f"v=DMARC1;; p=reject; {RUA}")


def test_tags_run_together_without_semicolon() -> None:
    text = "v=DMARC1; p=reject rua=mailto:d@example.com"
    found = codes(text)
    assert (ERROR, "syntax", "p") in found and (ERROR, "invalid_p", "p") in found
    assert "rua=" in only(text, "syntax").message


def test_non_ascii_value() -> None:
    assert (ERROR, "syntax", "p") in codes(f"v=DMARC1; p=réject; {RUA}")


def test_problems_are_sorted_errors_first() -> None:
    _, problems = parse("v=DMARC1; p=none; pct=50; adkim=x; foo=1")
    ranks = ["error", "warning", "notice"]
    assert [ranks.index(problem.severity) for problem in problems] == sorted(
        ranks.index(problem.severity) for problem in problems)
    assert problems[0].severity is ERROR and problems[-1].severity is NOTICE


# --- the other tags ---------------------------------------------------------------------------

@pytest.mark.parametrize("tag", ["adkim", "aspf"])
def test_alignment_modes(tag: str) -> None:
    record, _ = parse(f"v=DMARC1; p=reject; {tag}=S; {RUA}")
    assert getattr(record, tag) == "s"
    record, _ = parse(f"v=DMARC1; p=reject; {RUA}")
    assert getattr(record, tag) == "r"
    text = f"v=DMARC1; p=reject; {tag}=strict; {RUA}"
    assert (ERROR, "invalid_alignment_mode", tag) in codes(text)
    assert getattr(parse(text)[0], tag) == "r"


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("100", 100), ("050", 50), ("25", 25)])
def test_pct_values(value: str, expected: int) -> None:
    record, _ = parse(f"v=DMARC1; p=reject; pct={value}; {RUA}")
    assert record.pct == expected


@pytest.mark.parametrize("value", ["101", "-1", "50%", "12.5", "abc", "1000"])
def test_invalid_pct(value: str) -> None:
    text = f"v=DMARC1; p=reject; pct={value}; {RUA}"
    assert (WARNING, "invalid_pct", "pct") in codes(text)
    assert parse(text)[0].pct is None


@pytest.mark.parametrize(("tag", "value"), [("pct", "100"), ("rf", "afrf"), ("ri", "86400")])
def test_removed_tags_are_noticed(tag: str, value: str) -> None:
    problem = only(f"v=DMARC1; p=reject; {tag}={value}; {RUA}", "deprecated_tag")
    assert (problem.severity, problem.tag) == (NOTICE, tag)
    assert "RFC 9989" in problem.message


def test_pct_with_p_none_is_pointless() -> None:
    assert (NOTICE, "pointless_pct", "pct") in codes(f"v=DMARC1; p=none; pct=10; {RUA}")
    assert not any(code == "pointless_pct" for _, code, _ in codes(f"v=DMARC1; p=none; pct=100; {RUA}"))
    assert not any(code == "pointless_pct" for _, code, _ in codes(f"v=DMARC1; p=reject; pct=10; {RUA}"))


def test_rf_and_ri() -> None:
    record, _ = parse(f"v=DMARC1; p=reject; rf=AFRF; ri=3600; {RUA}")
    assert (record.rf, record.ri) == ("afrf", 3600)
    assert (WARNING, "invalid_rf", "rf") in codes(f"v=DMARC1; p=reject; rf=iodef; {RUA}")
    assert (WARNING, "invalid_ri", "ri") in codes(f"v=DMARC1; p=reject; ri=1d; {RUA}")
    assert (WARNING, "invalid_ri", "ri") in codes(f"v=DMARC1; p=reject; ri=99999999999; {RUA}")


@pytest.mark.parametrize(("value", "expected"), [
    ("0", "0"), ("1", "1"), ("d", "d"), ("s", "s"), ("1:d:s", "1:d:s"), ("D : S", "d:s"), ("0:s", "0:s"),
])
def test_fo_values(value: str, expected: str) -> None:
    record, problems = parse(f"v=DMARC1; p=reject; fo={value}; {RUA}; ruf=mailto:f@example.com")
    assert record.fo == expected
    assert not any(problem.code == "invalid_fo" for problem in problems)


@pytest.mark.parametrize("value", ["2", "1,d", "0:1", "d:d", "x", "1:"])
def test_invalid_fo(value: str) -> None:
    text = f"v=DMARC1; p=reject; fo={value}; {RUA}; ruf=mailto:f@example.com"
    assert (ERROR, "invalid_fo", "fo") in codes(text)
    assert parse(text)[0].fo is None


def test_fo_with_semicolon_is_two_terms() -> None:
    text = f"v=DMARC1; p=reject; fo=1;d; {RUA}; ruf=mailto:f@example.com"
    assert parse(text)[0].fo == "1"
    assert (ERROR, "syntax", None) in codes(text)


def test_fo_without_ruf() -> None:
    assert (NOTICE, "fo_without_ruf", "fo") in codes(f"v=DMARC1; p=reject; fo=1; {RUA}")


@pytest.mark.parametrize(("value", "expected"), [("y", "y"), ("N", "n"), ("u", "u")])
def test_psd(value: str, expected: str) -> None:
    assert parse(f"v=DMARC1; p=reject; psd={value}; {RUA}")[0].psd == expected


def test_invalid_psd_uses_default() -> None:
    text = f"v=DMARC1; p=reject; psd=yes; {RUA}"
    assert (ERROR, "invalid_psd", "psd") in codes(text)
    assert parse(text)[0].psd == "u"
    assert parse(f"v=DMARC1; p=reject; {RUA}")[0].psd == "u"


def test_t_test_mode() -> None:
    record, _ = parse(f"v=DMARC1; p=reject; sp=quarantine; t=y; {RUA}")
    assert record.testing
    assert (NOTICE, "test_mode", "t") in codes(f"v=DMARC1; p=reject; t=y; {RUA}")
    assert record.applied_policy(record.effective_p) == "quarantine"
    assert record.applied_policy(record.subdomain_policy(True)) == "none"
    assert record.applied_policy("none") == "none"
    record, _ = parse(f"v=DMARC1; p=reject; t=n; {RUA}")
    assert not record.testing and record.applied_policy("reject") == "reject"


def test_invalid_t() -> None:
    text = f"v=DMARC1; p=reject; t=true; {RUA}"
    assert (ERROR, "invalid_t", "t") in codes(text)
    assert parse(text)[0].t == "n"


# --- rua and ruf ------------------------------------------------------------------------------

def test_no_rua() -> None:
    problem = only("v=DMARC1; p=reject", "no_rua")
    assert (problem.severity, problem.tag) == (WARNING, "rua")
    assert "no aggregate reports" in problem.message


def test_rua_with_no_usable_address_counts_as_none() -> None:
    assert (WARNING, "no_rua", "rua") in codes("v=DMARC1; p=reject; rua=http://example.com/r")


def test_several_uris_with_spaces() -> None:
    record, problems = parse("v=DMARC1; p=reject; rua=mailto:a@example.com , mailto:b@example.net,"
                             "mailto:c@x.io")
    assert record.rua == ("mailto:a@example.com", "mailto:b@example.net", "mailto:c@x.io")
    assert problems == []


@pytest.mark.parametrize("uri", [
    "dmarc@example.com", "mailto:", "mailto:dmarc", "mailto:dmarc@", "mailto:@example.com",
    "mailto:dmarc@example", "mailto:dmarc@exa mple.com", "mailto:dm arc@example.com",
    "mailto:dmarc@-bad-.com", "mailto:dmarc@example..com", "http://example.com/report", "ftp://example.com/",
    "https://", "example.com", "mailto:a@b.com!x", "mailto:dmarc@1.2.3.4",
])
def test_invalid_uris(uri: str) -> None:
    text = f"v=DMARC1; p=reject; rua={uri}; ruf={uri}"
    found = codes(text)
    assert (ERROR, "invalid_uri", "rua") in found and (ERROR, "invalid_uri", "ruf") in found
    record, _ = parse(text)
    assert record.rua == record.ruf == ()


def test_missing_mailto_is_explained() -> None:
    problem = only("v=DMARC1; p=reject; rua=dmarc@example.com", "invalid_uri")
    assert "mailto:dmarc@example.com" in problem.message


@pytest.mark.parametrize("uri", [
    "mailto:dmarc@example.com", "MAILTO:dmarc@example.com", "mailto:dmarc+reports@sub.example.co.uk",
    "mailto:re%2Bports@example.com", "mailto:dmarc@example.com?subject=report",
    "mailto:first.last@example.com",
    "mailto:abc123@rua.agari.com", "mailto:dmarc@example.com.",
])
def test_valid_mailto_uris(uri: str) -> None:
    record, problems = parse(f"v=DMARC1; p=reject; rua={uri}")
    assert record.rua == (uri,)
    assert problems == []


def test_https_uri_is_accepted_with_a_notice() -> None:
    record, _ = parse("v=DMARC1; p=reject; rua=https://reports.example.com/dmarc")
    assert record.rua == ("https://reports.example.com/dmarc",)
    assert (NOTICE, "https_uri", "rua") in codes("v=DMARC1; p=reject; rua=https://reports.example.com/dmarc")


def test_size_suffix_is_stripped_and_noticed() -> None:
    text = ("v=DMARC1; p=reject; rua=mailto:a@example.com!10m,mailto:b@example.com!500; "
            "ruf=mailto:f@example.com!1K")
    record, _ = parse(text)
    assert record.rua == ("mailto:a@example.com", "mailto:b@example.com")
    assert record.ruf == ("mailto:f@example.com",)
    sizes = [problem for problem in parse_dmarc_record(text)[1] if problem.code == "size_suffix"]
    assert [(problem.severity, problem.tag) for problem in sizes] == [
        (NOTICE, "rua"), (NOTICE, "rua"), (NOTICE, "ruf")]
    assert "RFC 9989" in sizes[0].message


def test_stray_comma_in_uri_list() -> None:
    record, _ = parse("v=DMARC1; p=reject; rua=mailto:a@example.com,")
    assert record.rua == ("mailto:a@example.com",)
    assert (WARNING, "invalid_uri", "rua") in codes("v=DMARC1; p=reject; rua=mailto:a@example.com,")


def test_one_bad_uri_keeps_the_good_ones() -> None:
    record, _ = parse("v=DMARC1; rua=mailto:bad, mailto:good@example.com")
    assert record.rua == ("mailto:good@example.com",)
    assert record.effective_p == "none"


# --- the record as a value --------------------------------------------------------------------

def test_record_is_immutable_and_hashable() -> None:
    record, _ = parse(f"v=DMARC1; p=reject; {RUA}")
    assert record == parse(f"v=DMARC1; p=reject; {RUA}")[0]
    assert hash(record) == hash(parse(f"v=DMARC1; p=reject; {RUA}")[0])
    with pytest.raises(AttributeError):
        record.p = "none"  # type: ignore[misc]
    with pytest.raises(TypeError):
        record.tags["p"] = "none"  # type: ignore[index]


def test_defaults() -> None:
    record, _ = parse("v=DMARC1; p=reject")
    assert (record.sp, record.np, record.adkim, record.aspf, record.pct, record.fo, record.rf, record.ri,
            record.psd, record.t, record.rua, record.ruf) == (None, None, "r", "r", None, None, None, None,
                                                              "u", "n", (), ())
    assert record.text == "v=DMARC1; p=reject"


# --- real-world records -----------------------------------------------------------------------

def test_google_style_record() -> None:
    record, problems = parse("v=DMARC1; p=none; rua=mailto:mailauth-reports@google.com")
    assert record.effective_p == "none"
    assert record.rua == ("mailto:mailauth-reports@google.com",)
    assert [(problem.severity, problem.code) for problem in problems] == [(NOTICE, "monitoring_only")]


def test_enforcing_record_without_problems() -> None:
    record, problems = parse("v=DMARC1; p=reject; sp=reject; adkim=s; aspf=s; "
                             "rua=mailto:dmarc-rua@example.com; ruf=mailto:dmarc-ruf@example.com; fo=1")
    assert problems == []
    assert (record.p, record.sp, record.adkim, record.aspf, record.fo) == ("reject", "reject", "s", "s", "1")


def test_legacy_record_with_rfc7489_tags() -> None:
    text = ("v=DMARC1; p=quarantine; pct=100; rua=mailto:postmaster@example.com!10m; "
            "ruf=mailto:postmaster@example.com; rf=afrf; ri=86400; fo=0;")
    record, problems = parse(text)
    assert record.effective_p == "quarantine" and record.pct == 100
    assert {problem.code for problem in problems} == {"deprecated_tag", "size_suffix"}
    assert all(problem.severity is NOTICE for problem in problems)


def test_upper_case_record_with_spaces() -> None:
    record, _ = parse("V=DMARC1 ; P=QUARANTINE ; SP=NONE ; RUA=MAILTO:DMARC@EXAMPLE.COM ;")
    assert (record.p, record.sp, record.rua) == ("quarantine", "none", ("MAILTO:DMARC@EXAMPLE.COM",))


def test_psd_record() -> None:
    record, problems = parse("v=DMARC1; p=reject; psd=y; np=reject; rua=mailto:psd-reports@registry.example")
    assert (record.psd, record.np) == ("y", "reject")
    assert problems == []


def test_every_problem_is_listed() -> None:
    text = "v=DMARC1; p=rejct; sp=x; adkim=q; aspf=; pct=500; fo=9; psd=maybe; t=1; rua=foo; bogus=1; p=none"
    found = {code for _, code, _ in codes(text)}
    assert {"invalid_p", "invalid_sp", "invalid_alignment_mode", "empty_value", "invalid_pct", "invalid_fo",
            "invalid_psd", "invalid_t", "invalid_uri", "unknown_tag", "duplicate_tag", "no_rua",
            "deprecated_tag"} <= found
