"""Find the reports inside e-mail messages and mbox files.

Receivers attach reports every way MIME allows: as the whole body, as an attachment of any
declared type, inline, or inside a forwarded `message/rfc822`. Every leaf part is therefore
decoded and judged by its bytes; only the MIME structure that *defines* a report kind (ARF
failure reports, TLS reports) is trusted.
"""

from __future__ import annotations

import email.errors
import email.header
import email.parser
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ingest.errors import LimitExceeded
from ingest.sniff import ContainerKind, ReportKind, looks_like_aggregate_xml, sniff

_NON_ARF_FAILURE_SUBJECT = re.compile(
    r"(dmarc|dkim|spf)\b.*\b(failure|forensic)\b.*\breport|\b(failure|forensic)\s+report\b.*\bdmarc",
    re.IGNORECASE)
_REPORT_CONTAINERS = {ContainerKind.GZIP, ContainerKind.ZLIB, ContainerKind.ZIP}


@dataclass(frozen=True, slots=True)
class MessagePart:
    """A decoded leaf part that holds (or may hold) a report."""

    location: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class MessageContents:
    kind: ReportKind | None
    """What the message carries; None when it holds no report at all."""
    parts: tuple[MessagePart, ...]
    subject: str
    part_types: tuple[str, ...]


def read_message(data: bytes) -> MessageContents:
    """Classify one RFC 5322 message and collect the parts that carry reports."""
    message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(data)
    subject = _header_text(message.get("Subject", ""))
    top_type = message.get_content_type()
    report_type = (message.get_param("report-type") or "")
    report_type = report_type.lower() if isinstance(report_type, str) else ""

    parts: list[MessagePart] = []
    part_types: list[str] = []
    has_feedback_part = False
    has_tls_part = False
    for index, part in enumerate(message.walk()):
        ctype = part.get_content_type()
        part_types.append(ctype)
        if ctype == "message/feedback-report":
            # before the multipart test: the parser reads every message/* part as a nested
            # message, so this part always looks multipart
            has_feedback_part = True
            continue
        if part.is_multipart():
            continue
        if ctype.startswith("application/tlsrpt"):
            has_tls_part = True
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload.strip():
            continue
        if _holds_report(payload, ctype):
            name = part.get_filename() or f"part {index}"
            parts.append(MessagePart(location=str(name), content_type=ctype, data=payload))

    if report_type == "tlsrpt" or has_tls_part:
        kind = ReportKind.TLS
    elif report_type == "feedback-report" or has_feedback_part:
        kind = ReportKind.FAILURE
    elif parts:
        kind = ReportKind.AGGREGATE
    elif top_type == "multipart/report" or _NON_ARF_FAILURE_SUBJECT.search(subject):
        kind = ReportKind.FAILURE
    else:
        kind = None
    return MessageContents(kind, tuple(parts), subject, tuple(part_types))


def _holds_report(payload: bytes, ctype: str) -> bool:
    head = payload[:4096]
    kind = sniff(head)
    if kind in _REPORT_CONTAINERS:
        return True
    if kind is ContainerKind.XML:
        return looks_like_aggregate_xml(head)
    if kind is ContainerKind.JSON:
        return b"organization-name" in head or ctype.startswith("application/tlsrpt")
    return False


def _header_text(value: object) -> str:
    """A header as text, RFC 2047 words decoded, never raising on junk."""
    try:
        decoded = email.header.decode_header(str(value))
        return "".join(
            chunk.decode(charset or "utf-8", "replace") if isinstance(chunk, bytes) else chunk
            for chunk, charset in decoded)
    except (LookupError, ValueError, TypeError, email.errors.MessageError):
        return str(value)


def split_mbox(stream: BinaryIO, max_message_bytes: int) -> Iterator[bytes]:
    """Yield each message of an mbox (mboxo or mboxrd) without reading the whole file.

    A message starts at a `From ` line at the start of the file or after a blank line;
    `>From ` quoting is undone as mboxrd prescribes.
    """
    current: list[bytes] = []
    size = 0
    previous_blank = True
    for line in iter(lambda: stream.readline(max_message_bytes + 1), b""):
        if line.startswith(b"From ") and previous_blank:
            if current:
                yield b"".join(current)
            current, size = [], 0
            previous_blank = False
            continue
        if line.startswith(b">") and line.lstrip(b">").startswith(b"From "):
            line = line[1:]
        size += len(line)
        if size > max_message_bytes:
            raise LimitExceeded("max_message_bytes", max_message_bytes,
                                "a message in the mbox is larger than allowed")
        current.append(line)
        previous_blank = line in (b"\n", b"\r\n")
    if current:
        yield b"".join(current)

