"""Reading what a failure report leaves unsaid: plain-text notices, and gaps in ARF reports.

Exim and Baruwa send a plain-text notice instead of ARF ("Sender Domain: …", "Sender IP
Address: …", then a copy of the headers); NetEase and others omit ARF fields. The facts are
usually still there, in the report's text, its subject or the copied headers, so they are
taken from there, each with a note naming where, and never invented.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ingest.aggregate_report import RepairNotes
from ingest.arf_fields import (
    ALIGNMENTS,
    FIELD_LINE,
    NOTICE_KEYS,
    ArfFields,
    Field,
    all_addresses,
    bare_address,
    clean_domain,
    normalise_ip,
    read_arf_fields,
    split_fields,
    unfold,
)

_HEADER_STARTS = frozenset({
    "received", "return-path", "from", "to", "subject", "date", "message-id", "dkim-signature",
    "authentication-results", "arc-seal", "received-spf", "delivered-to", "x-original-to", "reply-to",
    "sender", "mime-version", "content-type"})
_NOTICE_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 ._/-]{0,48}?)\s*:\s*(\S.*)$")
_IP_IN_TEXT = re.compile(r"\bIP(?:\s+address)?\s*[:=]?\s*\[?([0-9A-Fa-f:.]{3,}[0-9A-Fa-f])", re.IGNORECASE)
_DOMAIN_IN_SUBJECT = re.compile(r"(?:\bfor(?:\s+domain)?|report\s+domain:)\s+([\w.-]+\.[A-Za-z]{2,})\b",
                                re.IGNORECASE)
_AR_HEADER_FROM = re.compile(r"\bheader\.from=\"?([^\s;\"]+)", re.IGNORECASE)
_CLIENT_IP = re.compile(r"\bclient-ip=\"?([0-9A-Fa-f:.]+)", re.IGNORECASE)
_ENVELOPE_FROM = re.compile(r"\benvelope-from[=\s]\s*\"?<?([^\s<>;\"]*)>?", re.IGNORECASE)
_RECEIVED_FOR = re.compile(r"\bfor\s+<?([^\s<>;@]+@[^\s<>;]+?)>?\s*;", re.IGNORECASE)
_YES = frozenset({"yes", "pass", "true", "aligned", "y"})

EXPECTED_ARF = (("feedback-type", "Feedback-Type"), ("version", "Version"), ("user-agent", "User-Agent"),
                ("auth-failure", "Auth-Failure"), ("identity-alignment", "Identity-Alignment"),
                ("source-ip", "Source-IP"), ("reported-domain", "Reported-Domain"))
"""The fields every DMARC failure report is expected to carry (RFC 6591, RFC 7489 §7.3.1)."""


@dataclass(frozen=True, slots=True)
class NoticeParts:
    summary: str
    """the notice's own words, above the copied headers"""
    headers: tuple[Field, ...]
    """the original message's headers, when the notice copies them into its text"""


def split_notice(text: str) -> NoticeParts:
    """Separate a notice's summary from the header block it copies (anything after that block,
    which could be the original's body, is dropped)."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        match = FIELD_LINE.match(line)
        if match and match.group(1).lower() in _HEADER_STARTS and _block_follows(lines, index + 1):
            fields, _ = split_fields("\n".join(lines[index:]), stop_at_blank=True)
            headers = tuple((name.strip(), unfold(value)) for name, value in fields)
            return NoticeParts("\n".join(lines[:index]).strip(), headers)
    return NoticeParts(text.strip(), ())


def _block_follows(lines: list[str], start: int) -> bool:
    """A copied header block is more than one header line: one "Word: text" line is prose."""
    for line in lines[start:start + 3]:
        if line[:1] in (" ", "\t") or FIELD_LINE.match(line):
            return True
        if line.strip():
            return False
    return False


def read_notice(summary: str, notes: RepairNotes) -> ArfFields:
    """A plain-text notice's "Label: value" lines read as the ARF fields they stand for."""
    fields: list[Field] = []
    alignment: dict[str, bool] = {}
    for line in summary.splitlines():
        match = _NOTICE_LINE.match(line)
        if not match or match.group(2).startswith("//"):  # a URL, not a label
            continue
        label, value = match.group(1).strip(), match.group(2).strip()
        key = re.sub(r"[\s_.-]+", " ", label.lower()).strip()
        if key in ("spf alignment", "dkim alignment"):
            alignment[key.split()[0]] = value.lower() in _YES
            continue
        fields.append((NOTICE_KEYS.get(key, label), value))
    notes.add("not an ARF report (no message/feedback-report part): read best-effort from the text")
    arf = read_arf_fields(fields, notes)
    if alignment and arf.identity_alignment is None:
        arf.identity_alignment = [name for name in ALIGNMENTS if alignment.get(name)]
        notes.add("Identity-Alignment derived from the notice's SPF/DKIM alignment lines")
    return arf


def fill_gaps(arf: ArfFields, is_arf: bool, subject: str, text: str, headers: tuple[Field, ...],
              header_from: str | None, notes: RepairNotes) -> None:
    """Take missing facts from the text, the subject and the original's headers, noting each."""
    if is_arf:
        missing = [label for name, label in EXPECTED_ARF if name not in arf.seen]
        if missing:
            notes.add(f"the feedback-report part lacks {', '.join(missing)}")
    if arf.reported_domain is None:
        _derive_domain(arf, subject, headers, header_from, notes)
    if arf.source_ip is None:
        _derive_source_ip(arf, subject, text, headers, notes)
    if is_arf:
        return
    if arf.original_mail_from is None:
        found = (_first(_values(headers, "return-path"), _address_in)
                 or _first(_values(headers, "received-spf", "received"), _envelope_from))
        if found:
            arf.original_mail_from = found
            notes.add("Original-Mail-From taken from the copied headers")
    if not arf.original_rcpt_to:
        recipients = [address for value in _values(headers, "delivered-to", "x-original-to")
                      for address in all_addresses(value)]
        if not recipients:
            recipients = [match.group(1) for value in list(_values(headers, "received"))[:1]
                          for match in _RECEIVED_FOR.finditer(value)]
        if recipients:
            arf.original_rcpt_to = list(dict.fromkeys(recipients))
            notes.add("Original-Rcpt-To taken from the copied headers")
    if not arf.authentication_results:
        arf.authentication_results = list(_values(headers, "authentication-results"))
        if arf.authentication_results:
            notes.add("Authentication-Results taken from the copied headers")
    if not arf.auth_failure and "dmarc" in f"{subject}\n{text}".lower():
        arf.auth_failure = ["dmarc"]
        notes.add("Auth-Failure taken as dmarc: the notice reports a DMARC failure")


def _derive_domain(arf: ArfFields, subject: str, headers: tuple[Field, ...], header_from: str | None,
                   notes: RepairNotes) -> None:
    if header_from:
        arf.reported_domain = header_from
        notes.add("no Reported-Domain: the domain of the original From header is used")
        return
    results = [*arf.authentication_results, *_values(headers, "authentication-results")]
    from_results = _first(results, lambda value: _domain_match(_AR_HEADER_FROM, value))
    if from_results:
        arf.reported_domain = from_results
        notes.add("no Reported-Domain: the header.from of Authentication-Results is used")
        return
    from_subject = _domain_match(_DOMAIN_IN_SUBJECT, subject)
    if from_subject:
        arf.reported_domain = from_subject
        notes.add("no Reported-Domain: the domain named in the subject is used")


def _derive_source_ip(arf: ArfFields, subject: str, text: str, headers: tuple[Field, ...],
                      notes: RepairNotes) -> None:
    candidates = (("the report text", _ip_in(_IP_IN_TEXT, [text])),
                  ("the subject", _ip_in(_IP_IN_TEXT, [subject])),
                  ("the copied Received-SPF client-ip", _ip_in(_CLIENT_IP, _values(headers, "received-spf"))))
    for where, found in candidates:
        if found is not None:
            arf.source_ip, arf.source_ip_packed = found
            notes.add(f"no Source-IP: taken from {where}")
            return


def _values(headers: tuple[Field, ...], *names: str) -> Iterable[str]:
    return (value for name, value in headers if name.lower() in names)


def _first(values: Iterable[str], pick: Callable[[str], str | None]) -> str | None:
    for value in values:
        found = pick(value)
        if found:
            return found
    return None


def _domain_match(pattern: re.Pattern[str], value: str) -> str | None:
    match = pattern.search(value)
    return clean_domain(match.group(1)) if match else None


def _ip_in(pattern: re.Pattern[str], values: Iterable[str]) -> tuple[str, bytes] | None:
    for value in values:
        for match in pattern.finditer(value):
            address = normalise_ip(match.group(1).rstrip(".:"))
            if address is not None:
                return address
    return None


def _address_in(value: str) -> str | None:
    return bare_address(value) if "@" in value else None


def _envelope_from(value: str) -> str | None:
    match = _ENVELOPE_FROM.search(value)
    return match.group(1) if match and "@" in match.group(1) else None
