"""The fields of a failure report (RFC 6591 §3, RFC 7489 §7.3.1, RFC 9991 §4), read leniently.

Generators get the ARF format subtly wrong in many ways (values in other cases, angle brackets
around addresses, dates without offsets, unknown Delivery-Result tokens, fields repeated or
missing), so every field is read on its own and each deviation becomes a repair note instead
of a rejection. The same reader serves plain-text notices: their "Key: value" lines are mapped
onto ARF names first (see `NOTICE_KEYS`).
"""

from __future__ import annotations

import email.errors
import email.header
import email.utils
import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ingest.aggregate_normaliser import packed_address
from ingest.aggregate_report import RepairNotes

Field = tuple[str, str]

FIELD_LINE = re.compile(r"^([!-9;-~]+)[ \t]*:[ \t]*(.*)$")
_FOLD = re.compile(r"[ \t]*\r?\n[ \t]*")
_DOMAIN = re.compile(r"^[^\s@<>()\[\],;:\"]+\.[^\s@<>()\[\],;:\"]+$")
_BRACKETED = re.compile(r"^\[([^\]]*)\](?::(\d{1,5}))?$")

AUTH_FAILURES = frozenset({"adsp", "bodyhash", "revoked", "signature", "spf", "dmarc"})
DELIVERY_RESULTS = frozenset({"delivered", "spam", "policy", "reject", "other"})
ALIGNMENTS = ("dkim", "spf")


def split_fields(text: str, stop_at_blank: bool) -> tuple[list[Field], int]:
    """Header-style fields of a text, folded lines joined; also how many lines were not fields.

    `stop_at_blank` ends at the first blank line after a field, as a header block ends; the
    ARF part has no body, so there blank lines are only skipped.
    """
    fields: list[Field] = []
    skipped = 0
    for line in text.splitlines():
        if not line.strip():
            if stop_at_blank and fields:
                break
            continue
        if line[:1] in (" ", "\t"):
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {line.strip()}".strip())
            else:
                skipped += 1
            continue
        match = FIELD_LINE.match(line)
        if match:
            fields.append((match.group(1), match.group(2).strip()))
        else:
            skipped += 1
    return fields, skipped


def unfold(value: str) -> str:
    """A header value on one line: folding whitespace becomes one space, 8-bit bytes become text."""
    if any("\udc80" <= char <= "\udcff" for char in value):
        raw = value.encode("ascii", "surrogateescape")
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            value = raw.decode("latin-1")
    return _FOLD.sub(" ", value).strip()


def decode_words(value: str) -> str:
    """A header value with its RFC 2047 encoded words decoded; junk is left as it came."""
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (LookupError, ValueError, TypeError, UnicodeError, email.errors.MessageError):
        return value


def split_address(text: str) -> tuple[str, int | None]:
    """An address as written (`[192.0.2.1]:25`, `IPv6:2001:db8::1`, `fe80::1%eth0`) split into
    the bare address and the port, if one was given."""
    value, port = text.strip(), None
    bracketed = _BRACKETED.match(value)
    if bracketed:
        value = bracketed.group(1).strip()
        port = int(bracketed.group(2)) if bracketed.group(2) else None
    elif value.count(":") == 1:
        host, _, tail = value.partition(":")
        if tail.isdigit():
            value, port = host, int(tail)
    if value[:5].lower() == "ipv6:":
        value = value[5:]
    return value.split("%", 1)[0], port


def normalise_ip(text: str) -> tuple[str, bytes] | None:
    """Canonical text and the 16-byte stored form of an address written any usual way.

    An IPv4-mapped IPv6 address becomes the IPv4 address, as aggregate reports name it (the
    stored 16 bytes are the same either way, so linking to aggregate records is unaffected).
    """
    try:
        address = ipaddress.ip_address(split_address(text)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address), packed_address(address)


def parse_date(text: str, what: str, notes: RepairNotes) -> datetime | None:
    """An RFC 5322 date (or, failing that, ISO 8601) as an aware datetime."""
    value = text.strip()
    if not value:
        return None
    moment: datetime | None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            notes.add(f"{what} {value[:60]!r} is not a date; ignored")
            return None
    if moment.tzinfo is None:
        notes.add(f"{what} has no UTC offset; read as UTC")
        moment = moment.replace(tzinfo=UTC)
    try:
        moment.astimezone(UTC)
    except (OverflowError, ValueError):
        notes.add(f"{what} {value[:60]!r} is out of range; ignored")
        return None
    return moment


def clean_domain(text: str | None) -> str | None:
    """A domain name lower-cased, without the root dot; None when it does not look like one."""
    if text is None:
        return None
    value = text.strip().strip("<>[]\"'").rstrip(".").lower()
    return value if len(value) <= 253 and _DOMAIN.match(value) else None


def bare_address(text: str) -> str | None:
    """The first address of an address list (`Name <a@b>`, `<a@b>`, `a@b`), without brackets."""
    try:
        pairs = email.utils.getaddresses([text])
    except (TypeError, ValueError, IndexError):
        pairs = []
    for _, address in pairs:
        if address.strip():
            return address.strip()
    value = text.strip().strip("<>").strip()
    return value or None


def all_addresses(text: str) -> list[str]:
    try:
        pairs = email.utils.getaddresses([text])
    except (TypeError, ValueError, IndexError):
        return [value for value in (text.strip().strip("<>").strip(),) if value]
    return [address.strip() for _, address in pairs if address.strip()]


def domain_of(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    return clean_domain(address.rsplit("@", 1)[1])


@dataclass(slots=True)
class ArfFields:
    """What the feedback fields say, normalised; list fields keep every occurrence."""

    feedback_type: str | None = None
    version: str | None = None
    user_agent: str | None = None
    auth_failure: list[str] = field(default_factory=list)
    identity_alignment: list[str] | None = None
    """[] when the report says `none`; None when it says nothing"""
    source_ip: str | None = None
    source_ip_packed: bytes | None = None
    source_port: int | None = None
    reported_domain: str | None = None
    reported_uri: list[str] = field(default_factory=list)
    original_mail_from: str | None = None
    original_rcpt_to: list[str] = field(default_factory=list)
    original_envelope_id: str | None = None
    arrival_date: datetime | None = None
    received_date: datetime | None = None
    reporting_mta: str | None = None
    incidents: int | None = None
    delivery_result: str | None = None
    dkim_domain: str | None = None
    dkim_selector: str | None = None
    dkim_identity: str | None = None
    dkim_canonicalized_header: bool = False
    dkim_canonicalized_body: bool = False
    dkim_adsp_dns: list[str] = field(default_factory=list)
    spf_dns: list[str] = field(default_factory=list)
    authentication_results: list[str] = field(default_factory=list)
    other_fields: list[Field] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    """lower-case names of the ARF fields that were present"""


_TEXT = {"version": "version", "user-agent": "user_agent", "original-envelope-id": "original_envelope_id",
         "reporting-mta": "reporting_mta", "dkim-selector": "dkim_selector"}
_LISTS = {"reported-uri": "reported_uri", "spf-dns": "spf_dns", "dkim-adsp-dns": "dkim_adsp_dns",
          "authentication-results": "authentication_results"}
_DOMAINS = {"reported-domain": "reported_domain", "dkim-domain": "dkim_domain"}
_SPECIAL = frozenset({"feedback-type", "auth-failure", "identity-alignment", "source-ip", "source-port",
                      "original-mail-from", "original-rcpt-to", "arrival-date", "received-date", "incidents",
                      "delivery-result", "dkim-identity", "dkim-canonicalized-header",
                      "dkim-canonicalized-body"})
ARF_NAMES = frozenset(_TEXT) | frozenset(_LISTS) | frozenset(_DOMAINS) | _SPECIAL

NOTICE_KEYS: dict[str, str] = {
    **{name.replace("-", " "): name for name in ARF_NAMES},
    "sender domain": "reported-domain", "domain": "reported-domain", "from domain": "reported-domain",
    "header from": "reported-domain", "policy domain": "reported-domain",
    "sender ip address": "source-ip", "sender ip": "source-ip", "source ip address": "source-ip",
    "ip address": "source-ip", "client ip": "source-ip", "connecting ip": "source-ip",
    "remote ip": "source-ip",
    "received date": "received-date", "date received": "received-date", "arrival time": "arrival-date",
    "envelope from": "original-mail-from", "mail from": "original-mail-from",
    "return path": "original-mail-from",
    "envelope to": "original-rcpt-to", "rcpt to": "original-rcpt-to", "recipient": "original-rcpt-to",
    "authentication result": "authentication-results",
}
"""A plain-text notice's "Key: value" labels (lower-case, spaces for dashes) and the ARF field
each one means; labels not listed here are kept as other fields."""


def read_arf_fields(fields: list[Field], notes: RepairNotes) -> ArfFields:
    """Interpret feedback fields by name (case-insensitive); unknown ones are kept as they are."""
    arf = ArfFields()
    for raw_name, raw_value in fields:
        name = raw_name.strip().lower()
        value = decode_words(unfold(raw_value))
        if name not in ARF_NAMES:
            arf.other_fields.append((raw_name.strip(), value))
            continue
        repeated = name in arf.seen and name not in _LISTS and name not in (
            "auth-failure", "original-rcpt-to")
        arf.seen.add(name)
        if repeated:
            notes.add(f"{raw_name.strip()} appears more than once; the first is used")
            continue
        _read_one(arf, name, raw_name.strip(), value, notes)
    return arf


def _read_one(arf: ArfFields, name: str, label: str, value: str, notes: RepairNotes) -> None:
    if name in _TEXT:
        setattr(arf, _TEXT[name], value or None)
    elif name in _LISTS:
        if value:
            getattr(arf, _LISTS[name]).append(value)
    elif name in _DOMAINS:
        domain = clean_domain(value)
        if value and domain is None:
            notes.add(f"{label} {value[:60]!r} is not a domain name; ignored")
        setattr(arf, _DOMAINS[name], domain)
    elif name == "feedback-type":
        arf.feedback_type = value.lower() or None
        if arf.feedback_type != "auth-failure":
            notes.add(f"Feedback-Type is {value[:40]!r}, not auth-failure")
    elif name == "auth-failure":
        _read_auth_failure(arf, value, notes)
    elif name == "identity-alignment":
        _read_alignment(arf, value, notes)
    elif name == "source-ip":
        _read_source_ip(arf, value, notes)
    elif name == "source-port":
        arf.source_port = _number(value, label, notes, upper=65535)
    elif name == "incidents":
        arf.incidents = _number(value, label, notes, upper=2**31 - 1)
    elif name == "original-mail-from":
        address = bare_address(value) if value.strip("<> ") else None
        if address is None:
            notes.add("Original-Mail-From is empty: the null reverse-path, stored as <>")
        arf.original_mail_from = address or "<>"
    elif name == "original-rcpt-to":
        arf.original_rcpt_to.extend(all_addresses(value))
    elif name == "dkim-identity":
        arf.dkim_identity = bare_address(value)
    elif name in ("arrival-date", "received-date"):
        setattr(arf, name.replace("-", "_"), parse_date(value, label, notes))
    elif name == "delivery-result":
        result = value.lower() or None
        if result is not None and result not in DELIVERY_RESULTS:
            notes.add(f"Delivery-Result {value[:40]!r} is not one of {', '.join(sorted(DELIVERY_RESULTS))}; "
                      "kept as given")
        arf.delivery_result = result
    elif name == "dkim-canonicalized-header":
        arf.dkim_canonicalized_header = bool(value)
    elif name == "dkim-canonicalized-body":
        arf.dkim_canonicalized_body = bool(value)


def _read_auth_failure(arf: ArfFields, value: str, notes: RepairNotes) -> None:
    for token in re.split(r"[\s,;]+", value.lower()):
        if not token:
            continue
        if token not in AUTH_FAILURES:
            notes.add(f"Auth-Failure {token[:40]!r} is not a registered failure type; kept")
        if token not in arf.auth_failure:
            arf.auth_failure.append(token)


def _read_alignment(arf: ArfFields, value: str, notes: RepairNotes) -> None:
    tokens = [token for token in re.split(r"[\s,;]+", value.lower()) if token]
    if tokens == ["none"]:
        arf.identity_alignment = []
        return
    known = [token for token in ALIGNMENTS if token in tokens]
    if len(known) != len(set(tokens)):
        notes.add(f"Identity-Alignment {value[:60]!r} holds values other than none, dkim and spf; "
                  "only dkim and spf are kept")
    arf.identity_alignment = known


def _read_source_ip(arf: ArfFields, value: str, notes: RepairNotes) -> None:
    address = normalise_ip(value)
    if address is None:
        if value:
            notes.add(f"Source-IP {value[:60]!r} is not an IP address; ignored")
        return
    arf.source_ip, arf.source_ip_packed = address
    if address[0] != value.strip():
        notes.add(f"Source-IP {value[:60]!r} normalised to {address[0]}")
    port = split_address(value)[1]
    if port is not None and arf.source_port is None:
        arf.source_port = port


def _number(value: str, label: str, notes: RepairNotes, upper: int) -> int | None:
    try:
        number = int(value.strip())
    except ValueError:
        notes.add(f"{label} {value[:40]!r} is not a number; ignored")
        return None
    if not 0 <= number <= upper:
        notes.add(f"{label} {number} is out of range; ignored")
        return None
    return number
