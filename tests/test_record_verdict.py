"""Records judged against an in-memory DNS history: each verdict, reason and class."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ingest.dns_history import DnsHistory, SnapshotInterval
from ingest.dns_source import DnsOutcome
from ingest.record_class import RecordClass
from ingest.record_verdict import DkimAuth, RecordFacts, RecordJudge, ReportPolicy, SpfAuth, Verdict

DAY = timedelta(days=1)
MARCH = datetime(2026, 3, 1, tzinfo=UTC)
APRIL = datetime(2026, 4, 1, tzinfo=UTC)
OWN_IP, ESP_IP, FORWARDER_IP = "192.0.2.25", "198.51.100.7", "203.0.113.9"


@cache
def dkim_record(bits: int = 2048) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def interval(name: str, start: datetime, *records: str, rdtype: str = "TXT",
             outcome: DnsOutcome = DnsOutcome.ANSWER) -> SnapshotInterval:
    return SnapshotInterval(name, rdtype, outcome, tuple(sorted(records)), 300, start, start)  # type: ignore[arg-type]


def zone_history(*extra: SnapshotInterval) -> DnsHistory:
    """example.com from March: its own server in SPF, an ESP included from April, a key s1."""
    return DnsHistory.of([
        interval("example.com", MARCH, f"v=spf1 ip4:{OWN_IP} -all"),
        interval("example.com", APRIL, f"v=spf1 ip4:{OWN_IP} include:spf.esp.test -all"),
        interval("spf.esp.test", MARCH, "v=spf1 ip4:198.51.100.0/24 ip6:2001:db8:e5::/48 -all"),
        interval("_dmarc.example.com", MARCH, "v=DMARC1; p=reject; rua=mailto:d@example.com"),
        interval("s1._domainkey.example.com", MARCH, dkim_record()),
        *extra])


def policy(begin: datetime, **changes: object) -> ReportPolicy:
    base = ReportPolicy(report_id=1, policy_domain="example.com", p="reject", adkim="r", aspf="r",
                        discovery_method=None, date_begin=begin, date_end=begin + DAY,
                        ingested_at=begin + 2 * DAY)
    return replace(base, **changes)  # type: ignore[arg-type]


def record(ip: str = OWN_IP, *, spf: str = "pass", dkim: str | None = "pass", envelope: str = "example.com",
           d: str = "example.com", selector: str = "s1", reasons: tuple[str, ...] = (),
           policy_spf: str | None = None, policy_dkim: str | None = None) -> RecordFacts:
    signatures = (DkimAuth(d, selector, dkim),) if dkim else ()
    return RecordFacts(
        source_ip=ip, header_from="example.com", envelope_from=envelope,
        policy_dkim=policy_dkim or ("pass" if dkim == "pass" and d.endswith("example.com") else "fail"),
        policy_spf=policy_spf or ("pass" if spf == "pass" and envelope.endswith("example.com") else "fail"),
        dkim=signatures, spf=(SpfAuth(envelope, "mfrom", spf),), override_reasons=reasons)


def judge(facts: RecordFacts, report: ReportPolicy | None = None,
          history: DnsHistory | None = None) -> Verdict:
    judged = RecordJudge(history or zone_history())
    [verdict] = judged.judge_report(report or policy(MARCH + 9 * DAY), [facts])
    return verdict


def test_own_server_is_aligned_with_nothing_to_say():
    verdict = judge(record())
    assert (verdict.record_class, verdict.dmarc, verdict.spf_aligned, verdict.dkim_aligned) == (
        RecordClass.ALIGNED, "pass", True, True)
    assert verdict.spf_result == "pass" and verdict.reasons == ()
    assert verdict.signatures[0].key_state == "present"
    assert verdict.org_domain == "example.com"


def test_spf_is_judged_against_the_record_of_the_reports_own_dates():
    """The ESP was added to SPF in April: a March report shows its mail failing SPF, and that
    the record has changed since; an April report shows it passing."""
    esp_mail = record(ESP_IP, spf="fail", dkim=None)
    march = judge(esp_mail, policy(MARCH + 9 * DAY))
    assert march.spf_result == "fail" and march.reasons == ()
    april = judge(esp_mail._replace(spf=(SpfAuth("example.com", "mfrom", "pass"),), policy_spf="pass"),
                  policy(APRIL + 9 * DAY))
    assert april.spf_result == "pass" and april.dmarc == "pass"
    late = judge(esp_mail._replace(spf=(SpfAuth("example.com", "mfrom", "pass"),)), policy(MARCH + 9 * DAY))
    assert "spf_result_differs" in late.reasons and "spf_record_changed_since" in late.reasons


def test_ipv6_source():
    verdict = judge(record("2001:db8:e5::25", spf="pass", dkim=None), policy(APRIL + 3 * DAY))
    assert verdict.spf_result == "pass"
    outside = judge(record("2001:db8:ff::1", spf="fail", dkim=None), policy(APRIL + 3 * DAY))
    assert outside.spf_result == "fail"


def test_dkim_key_rotated_away_explains_a_failure():
    history = zone_history(interval("s1._domainkey.example.com", APRIL, outcome=DnsOutcome.NXDOMAIN))
    verdict = judge(record(dkim="fail", spf="fail", ip=FORWARDER_IP), policy(APRIL + 5 * DAY), history)
    assert verdict.signatures[0].key_state == "missing"
    assert "dkim_key_missing" in verdict.reasons
    earlier = judge(record(dkim="fail", spf="fail", ip=FORWARDER_IP), policy(MARCH + 5 * DAY), history)
    assert earlier.signatures[0].key_state == "present"
    assert "dkim_key_changed_since" in earlier.reasons


def test_revoked_key():
    history = zone_history(interval("old._domainkey.example.com", MARCH, "v=DKIM1; p="))
    verdict = judge(record(selector="old", dkim="fail", spf="fail", ip=FORWARDER_IP), history=history)
    assert verdict.signatures[0].key_state == "revoked" and "dkim_key_revoked" in verdict.reasons


def test_policy_tightened_after_the_report():
    history = zone_history(interval("_dmarc.example.com", APRIL, "v=DMARC1; p=quarantine"))
    assert "policy_differs_from_dns" not in judge(record(), policy(MARCH + DAY, p="reject"), history).reasons
    assert "policy_differs_from_dns" in judge(record(), policy(APRIL + DAY, p="reject"), history).reasons


def test_strict_dkim_alignment_and_a_subdomain_signature():
    sub = record(d="mail.example.com", spf="fail", ip=FORWARDER_IP, envelope="bounce.esp.test")
    relaxed = judge(sub)
    assert relaxed.dkim_aligned and relaxed.dmarc == "pass"
    strict = judge(sub, policy(MARCH + 9 * DAY, adkim="s"))
    assert not strict.dkim_aligned and strict.dmarc == "fail"
    assert strict.record_class is RecordClass.MISCONFIGURED  # its own key, the wrong d=


def test_strict_spf_alignment():
    mail = record(envelope="bounce.example.com", dkim=None)
    assert judge(mail).spf_aligned
    assert not judge(mail, policy(MARCH + 9 * DAY, aspf="s")).spf_aligned


def test_forwarding_classes():
    kept_signature = record(FORWARDER_IP, spf="fail", dkim="pass")
    assert judge(kept_signature).record_class is RecordClass.FORWARDED
    broken_signature = record(FORWARDER_IP, spf="fail", dkim="fail")
    assert judge(broken_signature).record_class is RecordClass.FORWARDING_FAILURE
    listed = record(FORWARDER_IP, spf="fail", dkim=None, reasons=("mailing_list",))
    assert judge(listed).record_class is RecordClass.FORWARDING_FAILURE


def test_own_server_failing_alignment_is_misconfigured():
    """The domain's own server, but the envelope is a third party's and DKIM is missing."""
    verdict = judge(record(OWN_IP, envelope="bounce.other.test", dkim=None))
    assert verdict.dmarc == "fail" and verdict.own_spf_result == "pass"
    assert verdict.record_class is RecordClass.MISCONFIGURED


def test_spoofing_is_unauthorised():
    verdict = judge(record("203.0.113.66", spf="fail", dkim=None))
    assert verdict.record_class is RecordClass.UNAUTHORISED and verdict.dmarc == "fail"


def test_reporter_disagreements():
    claimed_fail = judge(record(policy_dkim="fail"))
    assert "reporter_dkim_fail_aligned_pass" in claimed_fail.reasons
    claimed_pass = judge(record("203.0.113.66", spf="fail", dkim=None, policy_spf="pass"))
    assert "reporter_spf_pass_unaligned" in claimed_pass.reasons


def test_timeout_of_the_time_is_a_temperror_not_a_failure():
    history = zone_history(interval("example.com", APRIL + 2 * DAY, outcome=DnsOutcome.TIMEOUT))
    mail = record("203.0.113.66", spf="temperror", dkim=None, policy_spf="fail")
    verdict = judge(mail, policy(APRIL + 2 * DAY), history)
    assert verdict.spf_result == "temperror"
    assert verdict.dmarc == "temperror" and "dns_temperror" in verdict.reasons


def test_report_older_than_every_snapshot_borrows_and_says_so():
    verdict = judge(record(), policy(MARCH - 40 * DAY))
    assert verdict.spf_result == "pass" and "no_snapshot" in verdict.reasons
    assert policy(MARCH - 40 * DAY).judged_at == MARCH - 40 * DAY + DAY / 2


def test_domain_never_snapshotted():
    verdict = judge(record()._replace(header_from="elsewhere.test"),
                    policy(MARCH + DAY, policy_domain="elsewhere.test"))
    assert "not_snapshotted" in verdict.reasons


def test_tree_walk_org_domain_from_the_snapshots():
    """A DMARCbis report: the org domain comes from the _dmarc records of the time."""
    history = zone_history(
        interval("_dmarc.mail.example.com", MARCH, outcome=DnsOutcome.NXDOMAIN),
        interval("_dmarc.com", MARCH, outcome=DnsOutcome.NXDOMAIN),
        interval("_dmarc.bounce.example.com", MARCH, outcome=DnsOutcome.NXDOMAIN),
        interval("s1._domainkey.mail.example.com", MARCH, dkim_record()))
    mail = record(FORWARDER_IP, envelope="bounce.esp.test", spf="pass", d="mail.example.com")
    verdict = judge(mail, policy(MARCH + DAY, discovery_method="treewalk"), history)
    assert verdict.discovery_method == "treewalk" and verdict.org_domain == "example.com"
    assert verdict.dkim_aligned and "not_snapshotted" not in verdict.reasons
