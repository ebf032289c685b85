"""Organisational Domains by PSL and by DNS Tree Walk, and DMARC policy discovery over both."""

from __future__ import annotations

import dataclasses

import pytest

from ingest.dns_source import DnsAnswer, DnsOutcome, RecordType, domain_name
from ingest.org_domain import (
    PSL_VERSION,
    DiscoveryMethod,
    FoundRecord,
    PsdFlag,
    TreeWalk,
    discover_policy,
    org_domain,
    psl_org_domain,
    tree_walk,
    tree_walk_names,
)


class MemoryDns:
    """A zone as a dict of (name, type) -> answer; anything missing is NXDOMAIN."""

    def __init__(self, *answers: DnsAnswer) -> None:
        self.answers = {(answer.name, answer.rdtype): answer for answer in answers}
        self.asked: list[tuple[str, RecordType]] = []

    def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
        self.asked.append((name, rdtype))
        key = (domain_name(name), rdtype)
        return self.answers.get(key, DnsAnswer(key[0], rdtype, DnsOutcome.NXDOMAIN))


def dmarc(domain: str, *texts: str) -> DnsAnswer:
    return DnsAnswer(f"_dmarc.{domain}", "TXT", DnsOutcome.ANSWER, texts)


def failing(name: str, rdtype: RecordType = "TXT", outcome: DnsOutcome = DnsOutcome.SERVFAIL) -> DnsAnswer:
    return DnsAnswer(name, rdtype, outcome)


def address(name: str) -> DnsAnswer:
    return DnsAnswer(name, "A", DnsOutcome.ANSWER, ("192.0.2.1",))


# --- PSL ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("example.com", "example.com"),
    ("mail.example.com", "example.com"),
    ("a.b.c.example.com", "example.com"),
    ("example.co.uk", "example.co.uk"),
    ("a.b.example.co.uk", "example.co.uk"),
    ("Mail.Example.COM.", "example.com"),
])
def test_psl_icann_suffixes(name: str, expected: str) -> None:
    assert psl_org_domain(name) == expected


@pytest.mark.parametrize(("name", "expected"), [
    ("x.foo.blogspot.com", "foo.blogspot.com"),
    ("alice.github.io", "alice.github.io"),
    ("www.alice.github.io", "alice.github.io"),
    # a five-label private suffix
    ("a.b.s3.dualstack.us-east-1.amazonaws.com", "b.s3.dualstack.us-east-1.amazonaws.com"),
    # a wildcard private rule: *.compute.amazonaws.com
    ("x.y.us-east-1.compute.amazonaws.com", "y.us-east-1.compute.amazonaws.com"),
])
def test_psl_private_suffixes(name: str, expected: str) -> None:
    assert psl_org_domain(name) == expected


@pytest.mark.parametrize("name", [
    "com", "uk", "co.uk", "github.io", "blogspot.com", "s3.dualstack.us-east-1.amazonaws.com",
    "unknowntld", "", "a..example.com",
])
def test_psl_name_without_registrable_part_is_its_own_org_domain(name: str) -> None:
    assert psl_org_domain(name) == name


def test_psl_unknown_tld_counts_as_a_public_suffix() -> None:
    assert psl_org_domain("mail.example.unknowntld") == "example.unknowntld"


def test_psl_wildcard_and_exception_rules() -> None:
    assert psl_org_domain("a.b.c.ck") == "b.c.ck"  # *.ck
    assert psl_org_domain("a.www.ck") == "www.ck"  # !www.ck


@pytest.mark.parametrize(("name", "expected"), [
    ("www.例子.公司.香港", "例子.公司.香港"),
    ("www.xn--fsqu00a.xn--55qx5d.xn--j6w193g", "xn--fsqu00a.xn--55qx5d.xn--j6w193g"),
    # mixed spellings still match the two-label suffix 公司.香港, and keep their own spelling
    ("www.例子.公司.xn--j6w193g", "例子.公司.xn--j6w193g"),
    ("www.xn--fsqu00a.xn--55qx5d.香港", "xn--fsqu00a.xn--55qx5d.香港"),
    ("WWW.BÜCHER.DE", "bücher.de"),
    ("www.xn--bcher-kva.de", "xn--bcher-kva.de"),
    ("www。bücher。de", "bücher.de"),  # an ideographic full stop separates labels too
    ("公司.香港", "公司.香港"),
])
def test_psl_idn(name: str, expected: str) -> None:
    assert psl_org_domain(name) == expected


def test_psl_results_are_memoised() -> None:
    from ingest import org_domain as module

    psl_org_domain("memo.example.org")
    before = module._psl_org_domain.cache_info().hits
    assert psl_org_domain("Memo.Example.ORG.") == "example.org"
    assert module._psl_org_domain.cache_info().hits == before + 1


def test_psl_version_names_the_shipped_list() -> None:
    assert PSL_VERSION.count(".") >= 3


# --- tree walk names ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected"), [
    ("com", ["com"]),
    ("example.com", ["example.com", "com"]),
    ("Mail.Example.COM.", ["mail.example.com", "example.com", "com"]),
    ("", []),
    (".", []),
    ("a..example.com", []),
])
def test_tree_walk_names_short(name: str, expected: list[str]) -> None:
    assert tree_walk_names(name) == expected


def test_tree_walk_names_seven_labels_drop_one_at_a_time() -> None:
    assert tree_walk_names("a.b.c.d.e.f.g") == [
        "a.b.c.d.e.f.g", "b.c.d.e.f.g", "c.d.e.f.g", "d.e.f.g", "e.f.g", "f.g", "g",
    ]


def test_tree_walk_names_eight_labels_jump_to_seven() -> None:
    assert tree_walk_names("a.b.c.d.e.f.g.h") == [
        "a.b.c.d.e.f.g.h", "b.c.d.e.f.g.h", "c.d.e.f.g.h", "d.e.f.g.h", "e.f.g.h", "f.g.h", "g.h", "h",
    ]


def test_tree_walk_names_rfc_example() -> None:
    # RFC 9989 §4.10's illustration: twelve labels, eight queries
    assert tree_walk_names("a.b.c.d.e.f.g.h.i.j.mail.example.com") == [
        "a.b.c.d.e.f.g.h.i.j.mail.example.com",
        "g.h.i.j.mail.example.com",
        "h.i.j.mail.example.com",
        "i.j.mail.example.com",
        "j.mail.example.com",
        "mail.example.com",
        "example.com",
        "com",
    ]


@pytest.mark.parametrize("count", range(1, 30))
def test_tree_walk_names_never_exceed_eight(count: int) -> None:
    labels = [f"l{index}" for index in range(count)]
    names = tree_walk_names(".".join(labels))
    assert names[0] == ".".join(labels)
    assert names[-1] == labels[-1]
    assert len(names) == min(count, 8)
    assert [name.count(".") + 1 for name in names[1:]] == list(range(min(count - 1, 7), 0, -1))


# --- tree walk ------------------------------------------------------------------------------------


def test_walk_without_records_makes_the_start_the_org_domain() -> None:
    dns = MemoryDns()
    walk = tree_walk("a.mail.example.com", dns)
    assert walk == TreeWalk(
        start="a.mail.example.com",
        records=(),
        queried=("_dmarc.a.mail.example.com", "_dmarc.mail.example.com", "_dmarc.example.com", "_dmarc.com"),
        failed=(),
        org_domain="a.mail.example.com",
    )
    assert not walk.uncertain
    assert dns.asked == [(name, "TXT") for name in walk.queried]


def test_walk_several_records_fewest_labels_wins() -> None:
    # RFC 9989 §4.10.2's first example
    dns = MemoryDns(dmarc("mail.example.com", "v=DMARC1; p=reject"), dmarc("example.com", "v=DMARC1; p=none"))
    walk = tree_walk("a.mail.example.com", dns)
    assert walk.records == (
        FoundRecord("mail.example.com", "v=DMARC1; p=reject", "u"),
        FoundRecord("example.com", "v=DMARC1; p=none", "u"),
    )
    assert walk.org_domain == "example.com"
    assert walk.queried[-1] == "_dmarc.com"


def test_walk_stops_at_psd_n() -> None:
    dns = MemoryDns(
        dmarc("host.dept.example.com", "v=DMARC1; p=none"),
        dmarc("dept.example.com", "v=DMARC1; p=reject; psd=n"),
        dmarc("example.com", "v=DMARC1; p=none"),
    )
    walk = tree_walk("a.host.dept.example.com", dns)
    assert [record.domain for record in walk.records] == ["host.dept.example.com", "dept.example.com"]
    assert walk.records[-1].psd == "n"
    assert walk.org_domain == "dept.example.com"
    assert "_dmarc.example.com" not in walk.queried


def test_walk_psd_y_at_a_parent_makes_the_name_below_it_the_org_domain() -> None:
    # RFC 9989 §4.10.2's second example
    dns = MemoryDns(dmarc("com", "v=DMARC1; p=reject; psd=y"))
    walk = tree_walk("a.mail.example.com", dns)
    assert walk.records == (FoundRecord("com", "v=DMARC1; p=reject; psd=y", "y"),)
    assert walk.org_domain == "example.com"


def test_walk_psd_y_one_level_up() -> None:
    dns = MemoryDns(dmarc("example.com", "v=DMARC1; p=none; psd=y"), dmarc("com", "v=DMARC1; p=none"))
    walk = tree_walk("mail.example.com", dns)
    assert walk.org_domain == "mail.example.com"
    assert walk.queried == ("_dmarc.mail.example.com", "_dmarc.example.com")


def test_walk_psd_y_after_the_jump_takes_the_skipped_name_below_it() -> None:
    # the 8-label name below the 7-label PSD was never asked about, yet it is the org domain
    dns = MemoryDns(dmarc("d.e.f.g.h.i.j", "v=DMARC1; p=reject; psd=y"))
    walk = tree_walk("a.b.c.d.e.f.g.h.i.j", dns)
    assert walk.queried == ("_dmarc.a.b.c.d.e.f.g.h.i.j", "_dmarc.d.e.f.g.h.i.j")
    assert walk.org_domain == "c.d.e.f.g.h.i.j"


def test_walk_psd_y_at_the_start_stops_and_keeps_the_start() -> None:
    dns = MemoryDns(dmarc("bank", "v=DMARC1; p=reject; psd=y"))
    walk = tree_walk("bank", dns)
    assert walk.org_domain == "bank"
    dns = MemoryDns(dmarc("example.bank", "v=DMARC1; p=reject; psd=y"), dmarc("bank", "v=DMARC1; p=none"))
    walk = tree_walk("example.bank", dns)
    assert walk.queried == ("_dmarc.example.bank",)
    assert walk.org_domain == "example.bank"


def test_walk_ignores_a_name_with_two_dmarc_records() -> None:
    dns = MemoryDns(
        dmarc("mail.example.com", "v=DMARC1; p=none"),
        dmarc("example.com", "v=DMARC1; p=reject; psd=n", "v=DMARC1; p=none"),
    )
    walk = tree_walk("a.mail.example.com", dns)
    assert [record.domain for record in walk.records] == ["mail.example.com"]
    assert walk.org_domain == "mail.example.com"
    assert walk.queried[-1] == "_dmarc.com"  # the cancelled psd=n record did not stop the walk


def test_walk_ignores_other_txt_records() -> None:
    dns = MemoryDns(
        dmarc("mail.example.com", "v=spf1 -all", "v=DMARC10; p=none", "v=DMARC1p=none", "p=none; v=DMARC1"),
        dmarc("example.com", "google-site-verification=abc", "v=DMARC1; p=quarantine"),
    )
    walk = tree_walk("mail.example.com", dns)
    assert walk.records == (FoundRecord("example.com", "v=DMARC1; p=quarantine", "u"),)
    assert walk.org_domain == "example.com"


@pytest.mark.parametrize(("text", "psd"), [
    ("v=DMARC1", "u"),
    ("v=DMARC1;", "u"),
    (" V = dmarc1 ; p=none; PSD = N ", "n"),
    ("v=DMARC1;psd=y", "y"),
    ("v=DMARC1; p=none; psd=u", "u"),
    ("v=DMARC1; p=none; psd=maybe", "u"),
    ("v=DMARC1; p=none; psd=x; psd=y", "u"),  # the first psd tag is the one read
    ("v=DMARC1; p=none; xpsd=y", "u"),
])
def test_walk_reads_the_psd_tag(text: str, psd: PsdFlag) -> None:
    walk = tree_walk("example.com", MemoryDns(dmarc("example.com", text)))
    assert walk.records == (FoundRecord("example.com", text, psd),)


@pytest.mark.parametrize("outcome", [DnsOutcome.SERVFAIL, DnsOutcome.TIMEOUT])
def test_walk_failure_makes_it_uncertain_but_it_goes_on(outcome: DnsOutcome) -> None:
    dns = MemoryDns(failing("_dmarc.mail.example.com", outcome=outcome),
                    dmarc("example.com", "v=DMARC1; p=none"))
    walk = tree_walk("a.mail.example.com", dns)
    assert walk.uncertain
    assert walk.failed == ("_dmarc.mail.example.com",)
    assert walk.org_domain == "example.com"
    assert walk.queried == (
        "_dmarc.a.mail.example.com", "_dmarc.mail.example.com", "_dmarc.example.com", "_dmarc.com",
    )


def test_walk_nodata_is_not_a_failure() -> None:
    dns = MemoryDns(DnsAnswer("_dmarc.example.com", "TXT", DnsOutcome.NODATA))
    assert not tree_walk("example.com", dns).uncertain


def test_walk_skips_names_dns_cannot_carry() -> None:
    long_label = "x" * 64
    dns = MemoryDns(dmarc("example.com", "v=DMARC1; p=none"))
    walk = tree_walk(f"{long_label}.example.com", dns)
    assert walk.queried == ("_dmarc.example.com", "_dmarc.com")
    assert walk.org_domain == "example.com"


def test_walk_results_are_frozen() -> None:
    walk = tree_walk("example.com", MemoryDns())
    with pytest.raises(dataclasses.FrozenInstanceError):
        walk.org_domain = "other.example"  # type: ignore[misc]


# --- policy discovery -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", list(DiscoveryMethod))
def test_policy_at_the_author_domain(method: DiscoveryMethod) -> None:
    dns = MemoryDns(dmarc("mail.example.com", "v=DMARC1; p=reject"), dmarc("example.com", "v=DMARC1; p=none"))
    found = discover_policy("Mail.Example.com", dns, method)
    assert found.author_domain == "mail.example.com"
    assert found.policy_domain == "mail.example.com"
    assert found.record_text == "v=DMARC1; p=reject"
    assert found.applies_as == "domain"
    assert found.author_exists is True
    assert found.org_domain == "example.com"
    assert found.method is method
    assert not found.uncertain
    assert not any(rdtype != "TXT" for _, rdtype in dns.asked)


@pytest.mark.parametrize("method", list(DiscoveryMethod))
def test_policy_at_the_org_domain_applies_as_subdomain(method: DiscoveryMethod) -> None:
    dns = MemoryDns(dmarc("example.com", "v=DMARC1; p=reject; sp=none"), address("mail.example.com"))
    found = discover_policy("mail.example.com", dns, method)
    assert (found.policy_domain, found.applies_as) == ("example.com", "subdomain")
    assert found.record_text == "v=DMARC1; p=reject; sp=none"
    assert found.author_exists is True
    assert found.org_domain == "example.com"
    assert not found.uncertain


def test_psl_discovery_asks_the_author_then_the_org_domain_only() -> None:
    dns = MemoryDns(dmarc("example.co.uk", "v=DMARC1; p=none"), address("a.b.example.co.uk"))
    found = discover_policy("a.b.example.co.uk", dns, DiscoveryMethod.PSL)
    assert found.policy_domain == "example.co.uk"
    assert dns.asked == [("_dmarc.a.b.example.co.uk", "TXT"), ("_dmarc.example.co.uk", "TXT"),
                         ("a.b.example.co.uk", "A")]


def test_psl_discovery_never_uses_a_psd_record() -> None:
    dns = MemoryDns(dmarc("bank", "v=DMARC1; p=reject; psd=y"))
    found = discover_policy("mail.example.bank", dns, DiscoveryMethod.PSL)
    assert found.applies_as == "none"
    assert found.org_domain == "example.bank"


def test_policy_at_the_psd() -> None:
    dns = MemoryDns(dmarc("bank", "v=DMARC1; p=reject; psd=y"), address("mail.example.bank"))
    found = discover_policy("mail.example.bank", dns)
    assert (found.policy_domain, found.applies_as) == ("bank", "subdomain")
    assert found.record_text == "v=DMARC1; p=reject; psd=y"
    assert found.org_domain == "example.bank"
    assert found.author_exists is True


def test_org_domain_record_is_preferred_to_the_psd_record() -> None:
    dns = MemoryDns(
        dmarc("example.bank", "v=DMARC1; p=none"),
        dmarc("bank", "v=DMARC1; p=reject; psd=y"),
        address("mail.example.bank"),
    )
    found = discover_policy("mail.example.bank", dns)
    assert found.policy_domain == "example.bank"
    assert found.org_domain == "example.bank"


def test_record_between_author_and_org_domain_is_passed_over() -> None:
    dns = MemoryDns(
        dmarc("dept.example.com", "v=DMARC1; p=quarantine"),
        dmarc("example.com", "v=DMARC1; p=reject"),
        address("host.dept.example.com"),
    )
    found = discover_policy("host.dept.example.com", dns)
    assert found.org_domain == "example.com"
    assert found.policy_domain == "example.com"


def test_psd_y_record_at_the_author_domain_applies_as_domain() -> None:
    dns = MemoryDns(dmarc("bank", "v=DMARC1; p=reject; psd=y"))
    found = discover_policy("bank", dns)
    assert (found.policy_domain, found.applies_as, found.org_domain) == ("bank", "domain", "bank")


@pytest.mark.parametrize("method", list(DiscoveryMethod))
def test_nxdomain_author_does_not_exist(method: DiscoveryMethod) -> None:
    dns = MemoryDns(dmarc("example.com", "v=DMARC1; p=reject; np=reject; sp=none"))
    found = discover_policy("nosuch.example.com", dns, method)
    assert found.applies_as == "subdomain"
    assert found.author_exists is False
    assert not found.uncertain
    assert dns.asked[-1] == ("nosuch.example.com", "A")  # one NXDOMAIN settles it (RFC 8020)


def test_nodata_author_exists() -> None:
    dns = MemoryDns(dmarc("example.com", "v=DMARC1; p=reject"),
                    DnsAnswer("mail.example.com", "A", DnsOutcome.NODATA))
    assert discover_policy("mail.example.com", dns).author_exists is True


def test_failed_existence_query_falls_through_to_the_next_type() -> None:
    dns = MemoryDns(
        dmarc("example.com", "v=DMARC1; p=reject"),
        failing("mail.example.com", "A", DnsOutcome.TIMEOUT),
        DnsAnswer("mail.example.com", "AAAA", DnsOutcome.NODATA),
    )
    found = discover_policy("mail.example.com", dns)
    assert found.author_exists is True
    assert not found.uncertain


def test_existence_unknown_makes_discovery_uncertain() -> None:
    dns = MemoryDns(
        dmarc("example.com", "v=DMARC1; p=reject"),
        *(failing("mail.example.com", rdtype) for rdtype in ("A", "AAAA", "MX")),
    )
    found = discover_policy("mail.example.com", dns)
    assert found.author_exists is None
    assert found.uncertain


@pytest.mark.parametrize("method", list(DiscoveryMethod))
def test_no_policy(method: DiscoveryMethod) -> None:
    found = discover_policy("mail.example.com", MemoryDns(), method)
    assert (found.policy_domain, found.record_text, found.applies_as) == (None, None, "none")
    assert found.author_exists is None
    assert not found.uncertain


@pytest.mark.parametrize("method", list(DiscoveryMethod))
def test_failed_dmarc_query_makes_discovery_uncertain(method: DiscoveryMethod) -> None:
    dns = MemoryDns(failing("_dmarc.mail.example.com"), dmarc("example.com", "v=DMARC1; p=reject"),
                    address("mail.example.com"))
    found = discover_policy("mail.example.com", dns, method)
    assert found.policy_domain == "example.com"
    assert found.uncertain


def test_psl_and_tree_walk_disagree_under_a_private_suffix_publishing_psd_n() -> None:
    # github.io is a private public suffix; if its owner publishes psd=n, the tree walk makes it the
    # org domain of every site under it, while the PSL keeps each site separate
    dns = MemoryDns(dmarc("github.io", "v=DMARC1; p=reject; psd=n"), address("alice.github.io"))
    by_psl = discover_policy("alice.github.io", dns, DiscoveryMethod.PSL)
    by_walk = discover_policy("alice.github.io", dns, DiscoveryMethod.TREEWALK)
    assert (by_psl.org_domain, by_psl.applies_as) == ("alice.github.io", "none")
    assert (by_walk.org_domain, by_walk.policy_domain) == ("github.io", "github.io")
    assert by_walk.applies_as == "subdomain"
    assert org_domain("alice.github.io", DiscoveryMethod.PSL) == "alice.github.io"
    assert org_domain("alice.github.io", DiscoveryMethod.TREEWALK, dns) == "github.io"


# --- org_domain -----------------------------------------------------------------------------------


def test_org_domain_dispatches_on_method() -> None:
    dns = MemoryDns(dmarc("mail.example.co.uk", "v=DMARC1; p=none"))
    assert org_domain("a.mail.example.co.uk", DiscoveryMethod.PSL) == "example.co.uk"
    assert org_domain("a.mail.example.co.uk", DiscoveryMethod.TREEWALK, dns) == "mail.example.co.uk"


def test_org_domain_tree_walk_needs_dns() -> None:
    with pytest.raises(ValueError, match="DnsSource"):
        org_domain("example.com", DiscoveryMethod.TREEWALK)
