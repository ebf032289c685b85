"""The one class every record gets, and the rule behind each.

The classes answer the question a domain owner asks of failing mail — is it mine, is it
forwarding, or is it someone else? — so each rule is a predicate of its own, tested alone,
and `classify` applies them in a fixed order (the first that holds wins):

1. `forwarded` — DMARC passes through an aligned DKIM signature while SPF does not pass
   aligned, and there is a sign of forwarding: SPF failed for the source (the mail left the
   domain's own servers and arrived from elsewhere, signature intact), or the reporter gave a
   forwarding override reason. SPF that *passes* for an unaligned envelope domain is an ESP
   using its own bounce domain, not forwarding, and stays `aligned`.
2. `aligned` — any other DMARC pass.
3. `forwarding_failure` — DMARC fails and the reporter named forwarding (override reason
   `forwarded`, `mailing_list` or `trusted_forwarder`).
4. `misconfigured` — DMARC fails for a source the domain itself vouches for: its own SPF
   record (the header_from domain's) authorises the address, or it carries a passing DKIM
   signature of the domain's own organisation that is not aligned (strict mode, a sibling
   subdomain). The fix is in the domain's own DNS or the sender's settings.
5. `forwarding_failure` — DMARC fails, the source is not authorised by the domain's SPF, and
   an aligned DKIM signature is present but failed: the domain signed the message and
   something on the way (a forwarder or list rewriting it) broke the signature.
6. `forwarding_failure` — DMARC fails, the source is not authorised by the domain's SPF,
   and sender identification names it a forwarder, mailing list or mailbox provider
   (ingest.source_identity): mail the domain sent elsewhere first, passed on from there.
7. `unauthorised` — everything else: a source the domain neither authorises nor signs for,
   a spoofing candidate.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

FORWARDING_REASONS = frozenset({"forwarded", "mailing_list", "trusted_forwarder"})
FORWARDING_SOURCE_TYPES = frozenset({"forwarder", "mailbox_provider"})
"""Catalogue service types (ingest.sender_catalogue) whose failing mail is forwarding."""
SPF_NOT_PASSING = frozenset({"fail", "softfail", "neutral", "none", "permerror"})


class RecordClass(StrEnum):
    ALIGNED = "aligned"
    FORWARDED = "forwarded"
    FORWARDING_FAILURE = "forwarding_failure"
    MISCONFIGURED = "misconfigured"
    UNAUTHORISED = "unauthorised"


@dataclass(frozen=True, slots=True)
class ClassEvidence:
    dmarc_pass: bool
    spf_aligned: bool
    """SPF passed for a domain aligned with header_from."""
    dkim_aligned: bool
    """A DKIM signature of a domain aligned with header_from passed."""
    spf_result: str | None
    """SPF for the envelope domain: the reporter's, else Rua's own from the snapshots."""
    own_spf_pass: bool
    """The header_from domain's own SPF record authorises the source address."""
    own_dkim_pass: bool
    """A signature of the domain's own organisation passed, aligned or not."""
    aligned_dkim_failed: bool
    """A signature of an aligned domain is present and did not pass."""
    override_reasons: frozenset[str] = frozenset()
    known_forwarder: bool = False
    """Sender identification names the source a forwarder, mailing list or mailbox provider."""


def is_forwarded(e: ClassEvidence) -> bool:
    forwarding_sign = (e.spf_result in SPF_NOT_PASSING) or bool(e.override_reasons & FORWARDING_REASONS)
    return e.dmarc_pass and e.dkim_aligned and not e.spf_aligned and forwarding_sign


def is_aligned(e: ClassEvidence) -> bool:
    return e.dmarc_pass


def is_reported_forwarding_failure(e: ClassEvidence) -> bool:
    return not e.dmarc_pass and bool(e.override_reasons & FORWARDING_REASONS)


def is_misconfigured(e: ClassEvidence) -> bool:
    return not e.dmarc_pass and (e.own_spf_pass or e.own_dkim_pass)


def is_broken_signature_failure(e: ClassEvidence) -> bool:
    return not e.dmarc_pass and not e.own_spf_pass and e.aligned_dkim_failed


def is_known_forwarder_failure(e: ClassEvidence) -> bool:
    return not e.dmarc_pass and not e.own_spf_pass and e.known_forwarder


RULES = (
    (is_forwarded, RecordClass.FORWARDED),
    (is_aligned, RecordClass.ALIGNED),
    (is_reported_forwarding_failure, RecordClass.FORWARDING_FAILURE),
    (is_misconfigured, RecordClass.MISCONFIGURED),
    (is_broken_signature_failure, RecordClass.FORWARDING_FAILURE),
    (is_known_forwarder_failure, RecordClass.FORWARDING_FAILURE),
)


def classify(evidence: ClassEvidence) -> RecordClass:
    for rule, record_class in RULES:
        if rule(evidence):
            return record_class
    return RecordClass.UNAUTHORISED
