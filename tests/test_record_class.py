"""Each classification rule on its own, then the order `classify` applies them in."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ingest.record_class import (
    ClassEvidence,
    RecordClass,
    classify,
    is_aligned,
    is_broken_signature_failure,
    is_forwarded,
    is_known_forwarder_failure,
    is_misconfigured,
    is_reported_forwarding_failure,
)

# a spoofed message: nothing passes, nothing is the domain's own
SPOOF = ClassEvidence(dmarc_pass=False, spf_aligned=False, dkim_aligned=False, spf_result="fail",
                      own_spf_pass=False, own_dkim_pass=False, aligned_dkim_failed=False)
# the domain's own server: SPF and DKIM pass, aligned
OWN = ClassEvidence(dmarc_pass=True, spf_aligned=True, dkim_aligned=True, spf_result="pass",
                    own_spf_pass=True, own_dkim_pass=True, aligned_dkim_failed=False)
# forwarded without SRS: the envelope is still the domain's, the forwarder is not in its SPF
FORWARDED = replace(OWN, spf_aligned=False, spf_result="fail", own_spf_pass=False)


def test_forwarded_needs_an_aligned_dkim_pass_without_aligned_spf():
    assert is_forwarded(FORWARDED)
    assert not is_forwarded(OWN)  # SPF aligned: plain aligned mail
    assert not is_forwarded(replace(FORWARDED, dkim_aligned=False, dmarc_pass=False))


@pytest.mark.parametrize("spf_result", ["fail", "softfail", "neutral", "none", "permerror"])
def test_forwarded_when_spf_did_not_pass_for_the_source(spf_result):
    assert is_forwarded(replace(FORWARDED, spf_result=spf_result))


def test_an_esp_with_its_own_bounce_domain_is_not_forwarding():
    """SPF passes for the ESP's unaligned envelope domain, DKIM aligned: ordinary ESP mail."""
    esp = replace(FORWARDED, spf_result="pass")
    assert not is_forwarded(esp)
    assert classify(esp) is RecordClass.ALIGNED


def test_forwarded_when_the_reporter_says_so_even_if_spf_passed_for_the_forwarder():
    srs = replace(FORWARDED, spf_result="pass", override_reasons=frozenset({"forwarded"}))
    assert is_forwarded(srs)


def test_aligned_is_any_dmarc_pass():
    assert is_aligned(OWN)
    assert not is_aligned(SPOOF)


@pytest.mark.parametrize("reason", ["forwarded", "mailing_list", "trusted_forwarder"])
def test_reported_forwarding_failure(reason):
    failed = replace(SPOOF, override_reasons=frozenset({reason}))
    assert is_reported_forwarding_failure(failed)
    assert classify(failed) is RecordClass.FORWARDING_FAILURE


def test_other_override_reasons_are_not_forwarding():
    assert not is_reported_forwarding_failure(replace(SPOOF, override_reasons=frozenset({"local_policy"})))


def test_misconfigured_when_the_domains_own_spf_authorises_the_source():
    failed = replace(SPOOF, own_spf_pass=True)
    assert is_misconfigured(failed)
    assert classify(failed) is RecordClass.MISCONFIGURED


def test_misconfigured_when_its_own_signature_passes_unaligned():
    """Strict adkim with a subdomain signature: the domain's key, the wrong d=."""
    failed = replace(SPOOF, own_dkim_pass=True)
    assert is_misconfigured(failed)
    assert classify(failed) is RecordClass.MISCONFIGURED


def test_broken_signature_from_an_unauthorised_source_is_forwarding_failure():
    failed = replace(SPOOF, aligned_dkim_failed=True)
    assert is_broken_signature_failure(failed)
    assert classify(failed) is RecordClass.FORWARDING_FAILURE


def test_broken_signature_from_an_authorised_source_is_misconfiguration():
    failed = replace(SPOOF, aligned_dkim_failed=True, own_spf_pass=True)
    assert not is_broken_signature_failure(failed)
    assert classify(failed) is RecordClass.MISCONFIGURED


def test_failure_from_a_known_forwarder_or_mailbox_provider_is_forwarding_failure():
    """Sender identification named the source a forwarder, list or mailbox provider."""
    relayed = replace(SPOOF, known_forwarder=True)
    assert is_known_forwarder_failure(relayed)
    assert classify(relayed) is RecordClass.FORWARDING_FAILURE


def test_a_known_mailbox_provider_the_domain_authorises_is_misconfiguration():
    """The domain's own Google Workspace failing alignment is the domain's to fix, not forwarding."""
    own_provider = replace(SPOOF, known_forwarder=True, own_spf_pass=True)
    assert not is_known_forwarder_failure(own_provider)
    assert classify(own_provider) is RecordClass.MISCONFIGURED


def test_a_known_forwarder_passing_dmarc_is_not_a_failure():
    assert classify(replace(OWN, known_forwarder=True)) is RecordClass.ALIGNED


def test_unauthorised_is_what_no_rule_claims():
    assert classify(SPOOF) is RecordClass.UNAUTHORISED
    assert classify(replace(SPOOF, spf_result="pass")) is RecordClass.UNAUTHORISED


def test_every_record_gets_exactly_one_class():
    classes = {classify(evidence) for evidence in (OWN, FORWARDED, SPOOF, replace(SPOOF, own_spf_pass=True),
                                                   replace(SPOOF, aligned_dkim_failed=True))}
    assert classes == set(RecordClass)
