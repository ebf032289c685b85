"""Who a source is: the order the evidence is trusted in, one rule kind at a time."""

from __future__ import annotations

from dataclasses import astuple, fields, replace
from pathlib import Path

import pytest

from ingest.ip_network_db import NetworkInfo
from ingest.reverse_dns import ReverseDns
from ingest.sender_catalogue import SenderCatalogue
from ingest.source_enrichment import IDENTITY_COLUMNS
from ingest.source_identity import (
    MemoisedCatalogue,
    SourceEvidence,
    SourceIdentity,
    identify,
    identity_row,
)

FIXTURE = Path(__file__).parent / "fixtures" / "identity" / "catalogue.toml"
NOTHING = NetworkInfo(None, None, None, None)


@pytest.fixture(scope="module")
def catalogue() -> SenderCatalogue:
    return SenderCatalogue.load(FIXTURE)


def evidence(**changes) -> SourceEvidence:
    return replace(SourceEvidence("198.18.0.1", None, NOTHING), **changes)


def confirmed(name: str, base: str) -> ReverseDns:
    return ReverseDns("198.18.0.1", name, True, base, "confirmed")


def test_a_confirmed_reverse_name_names_the_service(catalogue):
    found = identify(evidence(reverse=confirmed("mx3.relay.example", "relay.example")), catalogue)
    assert (found.sender, found.service_type, found.matched_by) == ("Test Relay", "forwarder", "ptr")
    assert (found.ptr, found.reverse_dns, found.base_domain) == ("mx3.relay.example", "confirmed",
                                                                 "relay.example")


def test_an_spf_include_that_authorises_the_address(catalogue):
    esp = catalogue.by_name("Test ESP")
    found = identify(evidence(spf_include_service=esp), catalogue)
    assert (found.sender, found.matched_by) == ("Test ESP", "spf_include")


def test_the_as_number_then_the_as_name(catalogue):
    by_number = identify(evidence(network=NetworkInfo(64496, "EXAMPLE-TEST-AS", "NL", "198.18.0.0/15")),
                         catalogue)
    assert (by_number.sender, by_number.matched_by, by_number.country) == ("Test Network", "asn", "NL")
    by_name = identify(evidence(network=NetworkInfo(None, "example-test-as", "NL", None)), catalogue)
    assert (by_name.sender, by_name.matched_by) == ("Test AS Name", "as_name")


def test_dkim_then_envelope_domains_seen_with_the_address(catalogue):
    signed = identify(evidence(dkim_domains=("customer.example", "s1.sign.esp.example")), catalogue)
    assert (signed.sender, signed.matched_by) == ("Test ESP", "dkim_domain")
    bounced = identify(evidence(envelope_domains=("bounce.esp.example",)), catalogue)
    assert (bounced.sender, bounced.matched_by) == ("Test ESP", "envelope_domain")


def test_an_unconfirmed_reverse_name_is_the_last_resort(catalogue):
    claim = ReverseDns("198.18.0.1", "mx.relay.example", False, "relay.example", "unconfirmed")
    assert identify(evidence(reverse=claim), catalogue).matched_by == "ptr_unconfirmed"
    # any stronger evidence wins over the claim
    both = identify(evidence(reverse=claim, network=NetworkInfo(64496, None, None, None)), catalogue)
    assert both.matched_by == "asn"


def test_stronger_evidence_wins(catalogue):
    everything = evidence(reverse=confirmed("mx.relay.example", "relay.example"),
                          spf_include_service=catalogue.by_name("Test ESP"),
                          network=NetworkInfo(64496, "EXAMPLE-TEST-AS", None, None),
                          dkim_domains=("sign.esp.example",))
    assert identify(everything, catalogue).matched_by == "ptr"
    assert identify(replace(everything, reverse=None), catalogue).matched_by == "spf_include"


def test_without_a_catalogue_match_the_base_domain_then_the_as_name_then_unknown(catalogue):
    hosted = identify(evidence(reverse=confirmed("static-1.isp.example.net", "example.net"),
                               network=NetworkInfo(64511, "SOME-ISP", "DE", None)), catalogue)
    assert (hosted.sender, hosted.service, hosted.matched_by) == ("example.net", None, None)
    by_as = identify(evidence(network=NetworkInfo(64511, "SOME-ISP", "DE", None)), catalogue)
    assert by_as.sender == "SOME-ISP"
    unknown = identify(evidence(), catalogue)
    assert (unknown.sender, unknown.service, unknown.service_type) == ("unknown", None, None)


def test_a_reverse_lookup_that_failed_is_kept_as_such(catalogue):
    failed = ReverseDns("198.18.0.1", None, False, None, "temperror")
    found = identify(evidence(reverse=failed), catalogue)
    assert (found.reverse_dns, found.sender) == ("temperror", "unknown")


def test_a_memoised_catalogue_answers_as_the_catalogue_does(catalogue):
    """Asked twice each, so the second answer is the kept one; misses are kept too."""
    memoised = MemoisedCatalogue(catalogue)
    questions = [("by_ptr", "mx.relay.example"), ("by_ptr", "relay.example.org"),
                 ("by_asn", 64496), ("by_asn", 64511), ("by_as_name", "example-test-as"),
                 ("by_as_name", "SOME-ISP"), ("by_dkim_domain", "s1.sign.esp.example"),
                 ("by_dkim_domain", "customer.example"), ("by_envelope_domain", "bounce.esp.example"),
                 ("by_envelope_domain", "esp.example")]
    for method, value in questions * 2:
        assert getattr(memoised, method)(value) == getattr(catalogue, method)(value), (method, value)


def test_identification_is_the_same_through_a_memoised_catalogue(catalogue):
    esp = catalogue.by_name("Test ESP")
    cases = [
        evidence(),
        evidence(reverse=confirmed("mx3.relay.example", "relay.example")),
        evidence(reverse=ReverseDns("198.18.0.1", "mx.relay.example", False, "relay.example", "unconfirmed")),
        evidence(spf_include_service=esp),
        evidence(network=NetworkInfo(64496, "EXAMPLE-TEST-AS", "NL", "198.18.0.0/15")),
        evidence(network=NetworkInfo(None, "example-test-as", "NL", None)),
        evidence(network=NetworkInfo(64511, "SOME-ISP", "DE", None)),
        evidence(dkim_domains=("customer.example", "s1.sign.esp.example")),
        evidence(dkim_domains=("customer.example",), envelope_domains=("x.example", "bounce.esp.example")),
        evidence(reverse=confirmed("static-1.isp.example.net", "example.net"),
                 network=NetworkInfo(64511, "SOME-ISP", "DE", None)),
        evidence(reverse=ReverseDns("198.18.0.1", None, False, None, "temperror")),
    ]
    memoised = MemoisedCatalogue(catalogue)
    for case in cases * 2:
        assert identify(case, memoised) == identify(case, catalogue), case
        assert identity_row(case.reverse, case.network, case.spf_include_service, list(case.dkim_domains),
                            list(case.envelope_domains), memoised) == astuple(identify(case, catalogue))


def test_an_identity_row_holds_the_stored_columns_in_their_order():
    """The enrichment stage writes identity_row's tuples straight into these columns."""
    assert tuple(field.name for field in fields(SourceIdentity)) == IDENTITY_COLUMNS
