"""Parse an SMTP TLS report (RFC 8460 §4.4): JSON bytes in, frozen dataclasses out.

Pure: no I/O, no database. Lenient where real senders deviate (STANDARDS.md §7: a null
`contact-info`, Microsoft's failure details without `sending-mta-ip` or MX hostname, `mx-host`
as a bare string, policy types and result types the RFC does not list), because dropping a
report over a cosmetic deviation would hide the very delivery failures it reports. Every
repair is noted on the report; only what makes the report meaningless (no reporter, no id,
no dates, no policy list, negative counts) raises `MalformedReport`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from ingest.errors import MalformedReport
from ingest.tls_values import (
    MAX_COUNT,
    Notes,
    count,
    is_missing,
    kind_of,
    load_json,
    member,
    moment,
    text,
    texts,
)

POLICY_TYPES = frozenset({"tlsa", "sts", "no-policy-found"})
"""RFC 8460 §4.4 policy-type values; others are kept as given, with a note."""

RESULT_TYPES = frozenset({
    # §4.3.1 negotiation failures
    "starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
    "certificate-not-trusted", "validation-failure",
    # §4.3.2 policy failures: DANE, then MTA-STS
    "tlsa-invalid", "dnssec-invalid", "dane-required",
    "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
})
"""RFC 8460 §4.3 result types; others are kept as given, with a note."""

MAX_ORGANIZATION_NAME = 500
"""Longer is no organisation's name; the folded name is indexed, and index entries must stay small."""
MAX_REPORT_ID = 1024
MAX_DOMAIN = 253
"""RFC 1035: a longer text is not a domain name."""


@dataclass(frozen=True, slots=True)
class TlsFailureDetail:
    """One `failure-details` entry: sessions that failed one way, between one pair of hosts."""

    result_type: str
    sending_mta_ip: str | None
    receiving_mx_hostname: str | None
    receiving_mx_helo: str | None
    receiving_ip: str | None
    failed_session_count: int
    additional_information: str | None
    failure_reason_code: str | None


@dataclass(frozen=True, slots=True)
class TlsPolicy:
    """One `policies` entry: the policy the sender applied to a domain, and how it went."""

    policy_type: str
    policy_strings: tuple[str, ...]
    policy_domain: str | None
    mx_hosts: tuple[str, ...]
    total_successful: int
    total_failure: int
    failure_details: tuple[TlsFailureDetail, ...]


@dataclass(frozen=True, slots=True)
class TlsReport:
    """One report as the sender meant it; `notes` keep what it took to read it, so a sender's
    deviations stay visible after the repair."""

    organization_name: str
    start: datetime
    """date-range start-datetime, aware, in UTC"""
    end: datetime
    """date-range end-datetime, aware, in UTC"""
    contact_info: str | None
    report_id: str
    policies: tuple[TlsPolicy, ...]
    notes: tuple[str, ...]
    """what had to be repaired or guessed to read the document"""

    @property
    def policy_domains(self) -> tuple[str, ...]:
        """Each policy domain once, in the order first seen."""
        return tuple(dict.fromkeys(p.policy_domain for p in self.policies if p.policy_domain))

    @property
    def total_successful(self) -> int:
        return sum(p.total_successful for p in self.policies)

    @property
    def total_failure(self) -> int:
        return sum(p.total_failure for p in self.policies)


def parse_tls_report(data: bytes) -> TlsReport:
    """Read one JSON TLS report; raises `MalformedReport` when it cannot be read at all."""
    notes = Notes()
    document = load_json(data, notes)
    if not isinstance(document, dict):
        raise MalformedReport(f"not a TLS report: the JSON document is {kind_of(document)}, not an object")
    organization = text(member(document, "organization-name"), "organization-name", "", notes,
                        required=True, max_length=MAX_ORGANIZATION_NAME)
    report_id = text(member(document, "report-id"), "report-id", "", notes, required=True,
                     max_length=MAX_REPORT_ID)
    assert organization is not None and report_id is not None  # required=True never answers None
    start, end = _date_range(member(document, "date-range"), notes)
    contact = member(document, "contact-info")
    if is_missing(contact):
        notes.add("", "no contact-info")
    elif contact is None:
        notes.add("", "contact-info is null")
    contact_info = text(contact, "contact-info", "", notes)
    raw_policies = member(document, "policies")
    if is_missing(raw_policies) or raw_policies is None:
        raise MalformedReport("no policies: the report says nothing about any policy")
    if not isinstance(raw_policies, list):
        raise MalformedReport(f"policies is {kind_of(raw_policies)}, not a list")
    if not raw_policies:
        notes.add("", "the report holds no policies")
    policies = tuple(_policy(entry, number, notes) for number, entry in enumerate(raw_policies, 1))
    for total, what in ((sum(p.total_successful for p in policies), "successful"),
                        (sum(p.total_failure for p in policies), "failed")):
        if total > MAX_COUNT:
            raise MalformedReport(f"the policies add up to {total} {what} sessions, more than any real "
                                  "report")
    return TlsReport(organization_name=organization, start=start, end=end, contact_info=contact_info,
                     report_id=report_id, policies=policies, notes=tuple(notes.lines()))


def _date_range(value: object, notes: Notes) -> tuple[datetime, datetime]:
    if is_missing(value) or value is None:
        raise MalformedReport("no date-range: the report does not say which period it covers")
    if not isinstance(value, dict):
        raise MalformedReport(f"date-range is {kind_of(value)}, not an object")
    start = moment(member(value, "start-datetime"), "start-datetime", "date-range", notes)
    end = moment(member(value, "end-datetime"), "end-datetime", "date-range", notes)
    if end < start:
        notes.add("date-range", "end-datetime is before start-datetime; kept as given")
    return start, end


def _policy(entry: object, number: int, notes: Notes) -> TlsPolicy:
    where = f"policy {number}"
    if not isinstance(entry, dict):
        raise MalformedReport(f"{where}: is {kind_of(entry)}, not an object")
    policy = member(entry, "policy")
    if not isinstance(policy, dict):
        raise MalformedReport(f"{where}: " + ("no policy object" if is_missing(policy) or policy is None
                                              else f"policy is {kind_of(policy)}, not an object"))
    policy_type = _vocabulary(text(member(policy, "policy-type"), "policy-type", where, notes, required=True),
                              POLICY_TYPES, "policy-type", where, notes)
    domain = _domain(member(policy, "policy-domain"), where, notes)
    summary = member(entry, "summary")
    if not isinstance(summary, dict):
        notes.add(where, "no summary; session counts taken as 0" if is_missing(summary) or summary is None
                  else f"summary is {kind_of(summary)}, not an object; session counts taken as 0")
        summary = {}
    successful = count(member(summary, "total-successful-session-count"), "total-successful-session-count",
                       where, notes)
    failed = count(member(summary, "total-failure-session-count"), "total-failure-session-count",
                   where, notes)
    details = member(entry, "failure-details")
    if is_missing(details) or details is None:
        details = []
    if not isinstance(details, list):
        raise MalformedReport(f"{where}: failure-details is {kind_of(details)}, not a list")
    failures = tuple(_failure(item, f"{where} failure {n}", notes) for n, item in enumerate(details, 1))
    detailed = sum(f.failed_session_count for f in failures)
    if detailed > failed:
        notes.add(where, f"failure-details count {detailed} failed sessions, more than the summary's "
                         f"{failed}; both kept as given")
    return TlsPolicy(policy_type=policy_type,
                     policy_strings=texts(member(policy, "policy-string"), "policy-string", where, notes),
                     policy_domain=domain,
                     mx_hosts=texts(member(policy, "mx-host"), "mx-host", where, notes),
                     total_successful=successful, total_failure=failed, failure_details=failures)


def _failure(item: object, where: str, notes: Notes) -> TlsFailureDetail:
    if not isinstance(item, dict):
        raise MalformedReport(f"{where}: is {kind_of(item)}, not an object")
    result_type = _vocabulary(text(member(item, "result-type"), "result-type", where, notes, required=True),
                              RESULT_TYPES, "result-type", where, notes)
    return TlsFailureDetail(
        result_type=result_type,
        sending_mta_ip=_address(item, "sending-mta-ip", where, notes),
        receiving_mx_hostname=_optional(item, "receiving-mx-hostname", where, notes),
        receiving_mx_helo=_optional(item, "receiving-mx-helo", where, notes),
        receiving_ip=_address(item, "receiving-ip", where, notes),
        failed_session_count=count(member(item, "failed-session-count"), "failed-session-count", where,
                                   notes),
        additional_information=_optional(item, "additional-information", where, notes),
        failure_reason_code=_optional(item, "failure-reason-code", where, notes))


def _optional(obj: Mapping[str, object], key: str, where: str, notes: Notes) -> str | None:
    return text(member(obj, key), key, where, notes)


def _address(obj: Mapping[str, object], key: str, where: str, notes: Notes) -> str | None:
    """An IP address, kept as written (it is what the sender's logs say) but checked."""
    value = _optional(obj, key, where, notes)
    if value is not None:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            notes.add(where, f"{key} {value[:60]!r} is not an IP address; kept as given")
    return value


def _vocabulary(value: str | None, known: frozenset[str], key: str, where: str, notes: Notes) -> str:
    """Fold case and underscores onto a known value; keep an unknown one as given, noted."""
    assert value is not None  # read with required=True
    folded = value.lower().replace("_", "-")
    if folded in known:
        if folded != value:
            notes.add(where, f"{key} {value!r} read as {folded!r}")
        return folded
    notes.add(where, f"unknown {key} {value!r} kept as given")
    return value


def _domain(value: object, where: str, notes: Notes) -> str | None:
    if is_missing(value) or value is None:
        notes.add(where, "no policy-domain")
        return None
    domain = text(value, "policy-domain", where, notes, max_length=MAX_DOMAIN + 1)
    if domain is None:
        return None
    folded = domain.lower().rstrip(".")
    if folded != domain:
        notes.add(where, f"policy-domain {domain!r} read as {folded!r}")
    if not folded or len(folded) > MAX_DOMAIN or any(ch.isspace() for ch in folded):
        notes.add(where, f"policy-domain {domain[:60]!r} is not a domain name; left out")
        return None
    return folded
