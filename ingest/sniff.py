"""Tell what a blob is from its first bytes, never from its name or declared MIME type.

Real senders mislabel reports constantly (gzip sent as application/octet-stream, zip as
text/xml, XML named .zip), so the bytes are the only evidence worth trusting.
"""

from __future__ import annotations

import re
from enum import StrEnum

SNIFF_BYTES = 4096

_UTF8_BOM = b"\xef\xbb\xbf"
_AGGREGATE_ELEMENT = re.compile(rb"<(?:[\w.-]+:)?(?:feedback|report_metadata)[\s>/]")
_HEADER_LINE = re.compile(rb"[!-9;-~]{1,76}:[ \t]*[^\r\n]*\r?\n")


class ReportKind(StrEnum):
    """The three kinds of report that reach a DMARC reporting address."""

    AGGREGATE = "aggregate"
    FAILURE = "failure"
    TLS = "tls"


class ContainerKind(StrEnum):
    EMPTY = "empty"
    GZIP = "gzip"
    ZLIB = "zlib"
    ZIP = "zip"
    XML = "xml"
    JSON = "json"
    EMAIL = "email"
    MBOX = "mbox"
    UNKNOWN = "unknown"


def sniff(head: bytes) -> ContainerKind:
    """Classify a blob by up to its first `SNIFF_BYTES` bytes."""
    if not head.strip():
        return ContainerKind.EMPTY
    if head.startswith(b"\x1f\x8b"):
        return ContainerKind.GZIP
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return ContainerKind.ZIP
    if len(head) >= 2 and head[0] == 0x78 and (head[0] << 8 | head[1]) % 31 == 0:
        return ContainerKind.ZLIB
    text = head[3:] if head.startswith(_UTF8_BOM) else head
    text = text.lstrip(b" \t\r\n")
    if text.startswith(b"<"):
        return ContainerKind.XML
    if text.startswith((b"{", b"[")):
        return ContainerKind.JSON
    if head.startswith(b"From "):
        return ContainerKind.MBOX
    if _HEADER_LINE.match(head):
        return ContainerKind.EMAIL
    if head.startswith((b"\xff\xfe<", b"\xfe\xff\x00<", b"\xff\xfe\x3c\x00", b"\x00<", b"<\x00")):
        return ContainerKind.XML  # UTF-16 XML: rare, but the parser can read it
    return ContainerKind.UNKNOWN


def looks_like_aggregate_xml(head: bytes) -> bool:
    """Whether an XML blob found inside an e-mail is a DMARC report rather than, say, HTML."""
    return _AGGREGATE_ELEMENT.search(head[:SNIFF_BYTES]) is not None


def describe(head: bytes) -> str:
    """A short, printable rendering of the first bytes, for error messages."""
    shown = head[:16]
    return " ".join(f"{b:02x}" for b in shown) + (" …" if len(head) > 16 else "")
