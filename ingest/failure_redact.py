"""Removing the people from failure reports: every address keeps its domain, loses its local part.

Failure reports quote recipients' addresses in many places (envelope fields, headers, the
report's text, Authentication-Results properties, VERP bounce addresses that encode a second
address), so redaction is a text rewrite of every address-shaped token rather than a list of
known fields. The domain stays: it is what DMARC analysis needs.
"""

from __future__ import annotations

import re

from ingest.arf_fields import Field

REDACTED = "redacted"

_LOCAL_CHARS = r"[\w.!#$%&'*+/=?^`{|}~-]"
_ADDRESS = re.compile(
    rf"(?<!{_LOCAL_CHARS})"
    # a `ptype.property=` or `key-name=` prefix is kept (smtp.mailfrom=, envelope-from=): without it
    # the `=` would be read as part of the local part and the property name lost
    r"(?P<prefix>[A-Za-z][A-Za-z0-9]*[.-][A-Za-z0-9.-]*=)?"
    rf"(?P<local>\"[^\"\r\n]*\"|{_LOCAL_CHARS}+)"
    r"@(?P<domain>\[[^\]\s]+\]|[\w](?:[\w-]*[\w])?(?:\.[\w](?:[\w-]*[\w])?)*)")

ADDRESS_HEADERS = frozenset({
    "from", "to", "cc", "bcc", "reply-to", "sender", "return-path", "resent-from", "resent-to", "resent-cc",
    "resent-bcc", "resent-sender", "delivered-to", "x-original-to", "disposition-notification-to",
    "errors-to", "x-envelope-from", "x-envelope-to"})
"""Headers made of addresses: rewritten as the bare redacted addresses, display names dropped
(they name people as surely as the local parts do)."""

ID_HEADERS = frozenset({"message-id", "in-reply-to", "references", "content-id", "resent-message-id",
                        "original-envelope-id", "x-ms-exchange-parent-message-id"})
"""Headers whose `x@y` values are identifiers, not addresses: kept, so messages can be traced."""


def _redacted(match: re.Match[str]) -> str:
    return f"{match.group('prefix') or ''}{REDACTED}@{match.group('domain')}"


def redact_text(value: str) -> str:
    """Every address in a text with its local part replaced; nothing else changes."""
    return _ADDRESS.sub(_redacted, value) if "@" in value else value


def redact_optional(value: str | None) -> str | None:
    return None if value is None else redact_text(value)


def redact_address_list(value: str) -> str:
    """An address header as its redacted addresses alone; left as text if it holds none (`<>`)."""
    addresses = [f"{REDACTED}@{match.group('domain')}" for match in _ADDRESS.finditer(value)]
    return ", ".join(dict.fromkeys(addresses)) if addresses else value


def redact_headers(headers: tuple[Field, ...]) -> tuple[Field, ...]:
    out = []
    for name, value in headers:
        lower = name.lower()
        if lower in ID_HEADERS:
            out.append((name, value))
        elif lower in ADDRESS_HEADERS:
            out.append((name, redact_address_list(value)))
        else:
            out.append((name, redact_text(value)))
    return tuple(out)


def redact_named(fields: tuple[Field, ...]) -> tuple[Field, ...]:
    """Other feedback fields: addresses redacted, identifiers (Message-ID) kept."""
    return tuple((name, value if name.lower() in ID_HEADERS else redact_text(value))
                 for name, value in fields)
