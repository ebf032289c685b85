"""Failure (ruf) reports: one e-mail in, one `FailureReport` out, without any I/O.

Two shapes reach a DMARC `ruf` address: ARF reports (RFC 6591 `multipart/report` with a
`message/feedback-report` part and the original message or its headers) and plain-text notices
that some MTAs (Exim, Baruwa) send instead. Both are read into the same fields; what had to
be tolerated, derived or guessed is written down in `notes`, and `format` says which shape it
was so nobody mistakes a best-effort reading for a conforming report.

Privacy: the original message's body is never read, only its headers; `redact` removes the
local parts of every address for installations that must not keep them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import email.errors
import email.parser
import email.policy
import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from email.message import Message
from typing import Any, Literal

from ingest.aggregate_report import RepairNotes
from ingest.arf_fields import (
    ArfFields,
    Field,
    bare_address,
    decode_words,
    domain_of,
    parse_date,
    read_arf_fields,
    split_fields,
    unfold,
)
from ingest.errors import MalformedReport
from ingest.failure_notice import fill_gaps, read_notice, split_notice
from ingest.failure_redact import redact_headers, redact_named, redact_optional, redact_text

MAX_HEADERS = 500
"""Original headers kept per report: a hostile message cannot make one row huge."""
MAX_TEXT = 8000
"""Characters of the report's human-readable text kept."""
_MAX_DEPTH = 8
_ENCODED = ("base64", "quoted-printable")
_ORIGINAL_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers")


@dataclass(frozen=True, slots=True)
class FailureReport:
    """One failure report, normalised; lists are tuples so a report can never change."""

    format: Literal["arf", "non_arf"]
    feedback_type: str | None
    version: str | None
    user_agent: str | None
    auth_failure: tuple[str, ...]
    identity_alignment: tuple[str, ...] | Literal["none"] | None
    """dkim and/or spf, `none` when the report says no identifier was aligned, None if unsaid"""
    source_ip: str | None
    source_ip_packed: bytes | None
    source_port: int | None
    reported_domain: str | None
    reported_uri: tuple[str, ...]
    original_mail_from: str | None
    original_rcpt_to: tuple[str, ...]
    original_envelope_id: str | None
    arrival_date: datetime | None
    arrival_date_source: str | None
    """which field the arrival date came from: Arrival-Date, Received-Date or the report's Date"""
    reporting_mta: str | None
    incidents: int | None
    delivery_result: str | None
    dkim_domain: str | None
    dkim_selector: str | None
    dkim_identity: str | None
    dkim_canonicalized_header: bool
    dkim_canonicalized_body: bool
    """whether the report carried these; their content (header and body copies) is never kept"""
    dkim_adsp_dns: tuple[str, ...]
    spf_dns: tuple[str, ...]
    authentication_results: tuple[str, ...]
    other_fields: tuple[Field, ...]
    """feedback fields (or notice lines) that are not ARF fields, as (name, value)"""
    report_from: str | None
    report_subject: str | None
    report_date: datetime | None
    report_message_id: str | None
    original_headers: tuple[Field, ...]
    original_headers_source: str | None
    """the part they came from: message/rfc822, text/rfc822-headers, or text for a notice"""
    original_from: str | None
    original_to: str | None
    original_subject: str | None
    original_message_id: str | None
    original_date: datetime | None
    header_from: str | None
    """the domain of the original From header: what DMARC evaluated"""
    text: str | None
    """the report's human-readable part (for a notice: its summary above the copied headers)"""
    redacted: bool
    notes: tuple[str, ...]

    @property
    def arrival_day(self) -> date | None:
        """The UTC day of arrival, which the store indexes and links aggregate records by."""
        return self.arrival_date.astimezone(UTC).date() if self.arrival_date else None


@dataclass(slots=True)
class _Parts:
    """The leaves of the report that matter; nothing inside the original message is visited."""

    feedback: Message | None = None
    feedback_type: str = ""
    original: Message | None = None
    text: str | None = None


def parse_failure_report(data: bytes) -> FailureReport:
    """Read one failure report e-mail; raise `MalformedReport` when nothing can be read."""
    notes = RepairNotes()
    data = data.replace(b"\r\n", b"\n")
    if data.startswith(b"From "):
        data = data.partition(b"\n")[2]
        notes.add("mbox 'From ' line before the headers; skipped")
    if not data.strip():
        raise MalformedReport("the failure report e-mail is empty")
    try:
        message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(data)
        parts = _Parts()
        _collect(message, parts, notes, 0)
        for _ in range(_MAX_DEPTH):  # a report forwarded as an attachment: read the report itself
            forwarded = _forwarded_report(parts)
            if forwarded is None:
                break
            notes.add("the report came forwarded inside a message/rfc822 part; read from there")
            message, parts = forwarded, _Parts()
            _collect(message, parts, notes, 0)
    except (ValueError, LookupError, TypeError, AttributeError, IndexError, email.errors.MessageError) as exc:
        raise MalformedReport(f"unreadable failure report e-mail ({exc})") from exc

    report_date = parse_date(_header(message, "Date") or "", "the report's Date", notes)
    subject = decode_words(_header(message, "Subject") or "") or None
    summary: str | None = parts.text
    if parts.feedback is not None:
        if (message.get_content_type(), str(message.get_param("report-type") or "").lower()) != (
                "multipart/report", "feedback-report"):
            notes.add(f"sent as {message.get_content_type()}, not multipart/report; "
                      "report-type=feedback-report")
        arf = read_arf_fields(_feedback_fields(parts, notes), notes)
        headers, source = _original_headers(parts.original, notes)
    else:
        notice = split_notice(parts.text or "")
        arf = read_notice(notice.summary, notes)
        headers, source = _original_headers(parts.original, notes)
        if not headers and notice.headers:
            headers, source = notice.headers[:MAX_HEADERS], "text"
        summary = notice.summary
    first = _first_values(headers)
    header_from = _header_from(first.get("from"), notes)
    fill_gaps(arf, parts.feedback is not None, subject or "", parts.text or "", headers, header_from, notes)
    if arf.reported_domain is None and arf.source_ip is None and not headers:
        shape = "no ARF fields" if parts.feedback is not None else "no feedback-report part"
        raise MalformedReport(f"no failure details found: {shape}, no reported domain or source IP, "
                              "and no original message headers")
    arrival, arrival_source = _arrival(arf, report_date, notes)
    decoded = tuple((name, decode_words(value)) for name, value in headers)
    decoded_first = _first_values(decoded)
    report = FailureReport(
        format="arf" if parts.feedback is not None else "non_arf",
        feedback_type=arf.feedback_type, version=arf.version, user_agent=arf.user_agent,
        auth_failure=tuple(arf.auth_failure),
        identity_alignment=None if arf.identity_alignment is None
        else (tuple(arf.identity_alignment) or "none"),
        source_ip=arf.source_ip, source_ip_packed=arf.source_ip_packed, source_port=arf.source_port,
        reported_domain=arf.reported_domain, reported_uri=tuple(arf.reported_uri),
        original_mail_from=arf.original_mail_from, original_rcpt_to=tuple(arf.original_rcpt_to),
        original_envelope_id=arf.original_envelope_id, arrival_date=arrival,
        arrival_date_source=arrival_source, reporting_mta=arf.reporting_mta, incidents=arf.incidents,
        delivery_result=arf.delivery_result, dkim_domain=arf.dkim_domain, dkim_selector=arf.dkim_selector,
        dkim_identity=arf.dkim_identity, dkim_canonicalized_header=arf.dkim_canonicalized_header,
        dkim_canonicalized_body=arf.dkim_canonicalized_body, dkim_adsp_dns=tuple(arf.dkim_adsp_dns),
        spf_dns=tuple(arf.spf_dns), authentication_results=tuple(arf.authentication_results),
        other_fields=tuple(arf.other_fields),
        report_from=decode_words(_header(message, "From") or "") or None, report_subject=subject,
        report_date=report_date, report_message_id=_header(message, "Message-ID"),
        original_headers=decoded, original_headers_source=source if headers else None,
        original_from=decoded_first.get("from"), original_to=decoded_first.get("to"),
        original_subject=decoded_first.get("subject"), original_message_id=decoded_first.get("message-id"),
        original_date=_original_date(decoded_first.get("date"), notes), header_from=header_from,
        text=_clip(summary), redacted=False, notes=tuple(notes.lines()))
    return replace(report, **{item.name: _scrubbed(getattr(report, item.name))
                              for item in dataclasses.fields(report)})


def redact(report: FailureReport) -> FailureReport:
    """The report with `redacted` for the local part of every address, domains kept.

    Covers the envelope addresses, DKIM-Identity, the original's address headers (display
    names dropped too), and every free text that may quote an address (subjects, the report
    text, Authentication-Results, unknown fields). Message ids are left alone: they only look
    like addresses.
    """
    headers = redact_headers(report.original_headers)
    first = _first_values(headers)
    return replace(
        report,
        original_mail_from=redact_optional(report.original_mail_from),
        original_rcpt_to=tuple(redact_text(address) for address in report.original_rcpt_to),
        dkim_identity=redact_optional(report.dkim_identity),
        original_headers=headers, original_from=first.get("from"), original_to=first.get("to"),
        original_subject=first.get("subject"),
        report_subject=redact_optional(report.report_subject),
        text=redact_optional(report.text),
        authentication_results=tuple(redact_text(value) for value in report.authentication_results),
        reported_uri=tuple(redact_text(value) for value in report.reported_uri),
        other_fields=redact_named(report.other_fields),
        redacted=True)


# -- the MIME structure -----------------------------------------------------------------------

def _collect(part: Message, parts: _Parts, notes: RepairNotes, depth: int) -> None:
    """Find the feedback part, the original and the text, never descending into the original."""
    ctype = part.get_content_type()
    if ctype.startswith("multipart/"):
        if depth >= _MAX_DEPTH:
            notes.add("MIME parts nested too deep; the deepest were skipped")
            return
        for child in _inner_messages(part):
            _collect(child, parts, notes, depth + 1)
        return
    if ctype == "message/feedback-report":
        if parts.feedback is None:
            parts.feedback, parts.feedback_type = part, ctype
        else:
            notes.add("more than one feedback-report part; the first is read")
    elif ctype in _ORIGINAL_TYPES:
        if parts.original is None:
            parts.original = part
    elif ctype == "text/plain":
        text = _part_text(part)
        if parts.feedback is None and re.match(r"\s*feedback-type\s*:", text, re.IGNORECASE):
            notes.add("the feedback fields came as text/plain, not message/feedback-report")
            parts.feedback, parts.feedback_type = part, ctype
        elif parts.text is None:
            parts.text = text


def _forwarded_report(parts: _Parts) -> Message | None:
    """The attached message, when the "original" is itself a failure report (a forward)."""
    if parts.feedback is not None or parts.original is None:
        return None
    inner = next(_inner_messages(parts.original), None)
    if inner is None:
        return None
    is_report = any(part.get_content_type() == "message/feedback-report" for part in inner.walk())
    return inner if is_report else None


def _inner_messages(part: Message) -> Iterator[Message]:
    """The parts of a multipart, or the message inside a message/* part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        yield from (item for item in payload if isinstance(item, Message))


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def _as_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _decoded_body(body: str, cte: str, what: str, notes: RepairNotes) -> str:
    """A transfer-encoded body as text; RFC 2046 forbids encoding message/* parts, yet some do."""
    raw = body.encode("ascii", "surrogateescape")
    if cte == "base64":
        try:
            raw = base64.b64decode(re.sub(rb"[^A-Za-z0-9+/]", b"", raw) + b"==", validate=False)
        except (binascii.Error, ValueError):
            notes.add(f"the {what} is declared base64 but is not; read as it is")
            return body
    else:
        raw = quopri.decodestring(raw)
    notes.add(f"the {what} is {cte}-encoded; decoded")
    return _as_text(raw)


def _feedback_fields(parts: _Parts, notes: RepairNotes) -> list[Field]:
    part = parts.feedback
    assert part is not None
    if parts.feedback_type == "text/plain":
        fields, skipped = split_fields(_part_text(part), stop_at_blank=False)
    else:
        cte = str(part.get("Content-Transfer-Encoding") or "").strip().lower()
        payload = part.get_payload()
        head: list[Field] = []
        body = ""
        inner = next(_inner_messages(part), None)
        if inner is not None:  # message/* is parsed as a header-only message
            head = [(str(name), str(value)) for name, value in inner.items()]
            inner_body = inner.get_payload()
            body = inner_body if isinstance(inner_body, str) else ""
        elif isinstance(payload, str):
            body = payload
        if cte in _ENCODED and body.strip():
            body = _decoded_body(body, cte, "feedback-report part", notes)
        fields, skipped = split_fields(body, stop_at_blank=False)
        fields = head + fields
    if skipped:
        notes.add(f"{skipped} line(s) of the feedback-report part are not fields; skipped")
    if not fields:
        notes.add("the feedback-report part holds no fields")
    return fields


def _original_headers(part: Message | None, notes: RepairNotes) -> tuple[tuple[Field, ...], str | None]:
    """The original's header fields, unfolded, RFC 2047 words still encoded (addresses are read
    from these; display values are decoded afterwards). The body is never touched."""
    if part is None:
        return (), None
    ctype = part.get_content_type()
    cte = str(part.get("Content-Transfer-Encoding") or "").strip().lower()
    payload = part.get_payload()
    fields: list[Field] = []
    inner = next(_inner_messages(part), None)
    if inner is not None:
        fields = [(str(name), str(value)) for name, value in inner.items()]
        inner_body = inner.get_payload()
        if not fields and cte in _ENCODED and isinstance(inner_body, str):
            fields = split_fields(_decoded_body(inner_body, cte, ctype + " part", notes), True)[0]
    elif isinstance(payload, str) or ctype.startswith("text/"):
        fields = split_fields(_part_text(part), stop_at_blank=True)[0]
    if len(fields) > MAX_HEADERS:
        notes.add(f"the original message has {len(fields)} header fields; the first {MAX_HEADERS} are kept")
    if not fields:
        notes.add(f"the {ctype} part holds no header fields")
    return tuple((name.strip(), unfold(value)) for name, value in fields[:MAX_HEADERS]), ctype


# -- derived values -----------------------------------------------------------------------------

def _header(message: Message, name: str) -> str | None:
    value = message.get(name)
    return unfold(str(value)) or None if value is not None else None


def _first_values(headers: tuple[Field, ...] | list[Field]) -> dict[str, str]:
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name.lower(), value)
    return first


def _header_from(value: str | None, notes: RepairNotes) -> str | None:
    if not value:
        return None
    address = bare_address(value)
    domain = domain_of(address)
    if domain is None:
        notes.add(f"the original From header {value[:80]!r} names no domain")
    elif value.count("@") > 1 and "," in value:
        notes.add("the original From header names several authors; the first one's domain is used")
    return domain


def _original_date(value: str | None, notes: RepairNotes) -> datetime | None:
    return parse_date(value, "the original Date header", notes) if value else None


def _arrival(arf: ArfFields, report_date: datetime | None,
             notes: RepairNotes) -> tuple[datetime | None, str | None]:
    if arf.arrival_date is not None:
        return arf.arrival_date, "Arrival-Date"
    if arf.received_date is not None:
        notes.add("no Arrival-Date: the arrival date is the Received-Date")
        return arf.received_date, "Received-Date"
    if report_date is not None:
        notes.add("no Arrival-Date or Received-Date: the arrival date is the report e-mail's Date")
        return report_date, "report Date"
    notes.add("no arrival date: no Arrival-Date, Received-Date or Date")
    return None, None


def _scrubbed(value: Any) -> Any:
    """Text every database accepts: no NUL characters (PostgreSQL refuses them) and no lone
    surrogates (undecodable bytes that slipped through)."""
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, tuple):
        return tuple(_scrubbed(item) for item in value)
    return value


def _clip(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    text = text.strip()
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + " …"
