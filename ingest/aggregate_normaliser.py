"""Turn raw report texts into typed, canonical values, leniently and on the record.

Real generators write `Pass`, `hardfail`, `unknown`, padded numbers and empty elements. Each
value is folded to the schema's vocabulary where the meaning is clear (the raw text is kept
beside it), and set to null with a repair note where it is not; nothing fails a whole report
that a human could still read.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from datetime import UTC, datetime
from functools import lru_cache

from ingest.aggregate_report import PublishedPolicy, RawReportHeader, RepairNotes, ReportHeader
from ingest.record_batch import Row


def _vocabulary(values: str, **synonyms: str) -> dict[str, str]:
    table = {value: value for value in values.split()}
    table.update(synonyms)
    return table


DISPOSITIONS = _vocabulary("none quarantine reject pass")
POLICY_RESULTS = _vocabulary("pass fail", hardfail="fail", softfail="fail", neutral="fail",
                             none="fail", temperror="fail", permerror="fail", unknown="fail",
                             error="fail")
DKIM_RESULTS = _vocabulary("none pass fail policy neutral temperror permerror",
                           hardfail="fail", softfail="fail", unknown="temperror", error="permerror")
SPF_RESULTS = _vocabulary("none neutral pass fail softfail temperror permerror policy",
                          hardfail="fail", unknown="temperror", error="permerror")
SPF_SCOPES = _vocabulary("helo mfrom", mailfrom="mfrom", ehlo="helo")
ALIGNMENTS = _vocabulary("r s", relaxed="r", strict="s")
POLICIES = _vocabulary("none quarantine reject")
TESTING = _vocabulary("n y")
DISCOVERY_METHODS = _vocabulary("psl treewalk")
OVERRIDE_TYPES = _vocabulary(
    "forwarded sampled_out trusted_forwarder mailing_list local_policy other policy_test_mode")

_MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z
_MAX_COUNT = 2**63 - 1  # the column is a signed 64-bit integer
_MAX_DOMAIN = 253  # RFC 1035: longer is not a domain name, and index entries must stay small


def _fold(text: str | None, vocabulary: dict[str, str], what: str, notes: RepairNotes,
          position: int | None, raw: dict[str, str] | None = None, key: str = "") -> str | None:
    """Map a text onto a vocabulary; keep the original where it differed."""
    if text is None:
        return None
    value = vocabulary.get(text)
    if value == text:
        return value
    stripped = text.strip()
    if not stripped:
        return None
    value = vocabulary.get(stripped.lower())
    if value is None:
        notes.add(f"{what} {stripped[:60]!r} is not a known value; stored as null, raw text kept",
                  position)
    if value != stripped and raw is not None:
        raw[key] = stripped
    return value


def _text(text: str | None) -> str | None:
    if text is None:
        return None
    stripped = text.strip()
    return stripped or None


_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"


def packed_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    """The stored 16-byte form (source_ip_packed): IPv4 mapped into IPv6, so one byte order
    sorts both families and a CIDR network is one range."""
    return _V4_MAPPED + address.packed if address.version == 4 else address.packed


@lru_cache(maxsize=4096)
def _address(text: str) -> tuple[str, bytes] | None:
    """Canonical text and 16-byte form (IPv4 mapped into IPv6) of an address.

    `inet_pton` is used first because `ipaddress` costs tens of microseconds per address,
    which at a million records is most of the parse; `ipaddress` still judges the odd forms
    (zone indexes) that `inet_pton` refuses.
    """
    try:
        packed = socket.inet_pton(socket.AF_INET, text)
        return socket.inet_ntop(socket.AF_INET, packed), _V4_MAPPED + packed
    except OSError:
        pass
    try:
        packed = socket.inet_pton(socket.AF_INET6, text)
        return socket.inet_ntop(socket.AF_INET6, packed), packed
    except OSError:
        pass
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 4:
        return str(address), packed_address(address)
    # a zone index (fe80::1%eth0) means nothing outside the reporter's host: dropped
    return ipaddress.IPv6Address(address.packed).compressed, address.packed


def _timestamp(text: str | None, what: str, notes: RepairNotes) -> datetime | None:
    value = _text(text)
    if value is None:
        notes.add(f"date_range {what} is missing")
        return None
    try:
        seconds = int(value)
    except ValueError:
        try:
            seconds = int(float(value))
        except (ValueError, OverflowError):
            notes.add(f"date_range {what} {value[:40]!r} is not a timestamp")
            return None
    if seconds > _MAX_TIMESTAMP and seconds // 1000 <= _MAX_TIMESTAMP:
        notes.add(f"date_range {what} looks like milliseconds; divided by 1000")
        seconds //= 1000
    if not 0 <= seconds <= _MAX_TIMESTAMP:
        notes.add(f"date_range {what} {seconds} is out of range")
        return None
    return datetime.fromtimestamp(seconds, UTC)


def normalise_header(raw: RawReportHeader, notes: RepairNotes) -> ReportHeader:
    """Canonical report metadata and published policy, with a note for each repair."""
    meta = raw.metadata
    policy = raw.policy
    if "report_metadata" not in raw.seen:
        notes.add("report has no <report_metadata>")
    if "policy_published" not in raw.seen:
        notes.add("report has no <policy_published>")
    for name in ("org_name", "report_id"):
        if _text(meta.get(name)) is None:
            notes.add(f"report_metadata {name} is missing or empty")
    begin = _timestamp(meta.get("begin"), "begin", notes)
    end = _timestamp(meta.get("end"), "end", notes)
    if begin and end and begin > end:
        notes.add("date_range begin is after its end")
    domain = _long_domain(policy.get("domain"), "policy_published domain", notes, None)
    if domain is None and "policy_published" in raw.seen:
        notes.add("policy_published domain is missing")
    pct_text = _text(policy.get("pct"))
    pct = None
    if pct_text is not None:
        try:
            pct = int(pct_text)
        except ValueError:
            pct = None
        if pct is None or not 0 <= pct <= 100:
            notes.add(f"policy_published pct {pct_text[:20]!r} is not 0–100; stored as null")
            pct = None
    published = PublishedPolicy(
        domain=domain,
        adkim=_fold(policy.get("adkim"), ALIGNMENTS, "adkim", notes, None),
        aspf=_fold(policy.get("aspf"), ALIGNMENTS, "aspf", notes, None),
        p=_fold(policy.get("p"), POLICIES, "policy p", notes, None),
        sp=_fold(policy.get("sp"), POLICIES, "policy sp", notes, None),
        np=_fold(policy.get("np"), POLICIES, "policy np", notes, None),
        pct=pct,
        fo=_text(policy.get("fo")),
        testing=_fold(policy.get("testing"), TESTING, "testing", notes, None),
        discovery_method=_fold(policy.get("discovery_method"), DISCOVERY_METHODS,
                               "discovery_method", notes, None),
    )
    if published.p is None and "policy_published" in raw.seen:
        notes.add("policy_published p is missing or unknown")
    return ReportHeader(
        org_name=_text(meta.get("org_name")),
        email=_text(meta.get("email")),
        extra_contact_info=_text(meta.get("extra_contact_info")),
        report_id=_text(meta.get("report_id")),
        begin=begin,
        end=end,
        errors=tuple(raw.errors),
        generator=_text(meta.get("generator")),
        version=_text(raw.version),
        xml_namespace=raw.namespace or None,
        policy=published,
    )


def record_row(number: int, ip: str | None, count_text: str | None, disposition_text: str | None,
               dkim_text: str | None, spf_text: str | None, header_from_text: str | None,
               envelope_from_text: str | None, envelope_to_text: str | None,
               notes: RepairNotes) -> Row:
    """One record's row (`RECORD_COLUMNS`) from its texts.

    This runs once per record, millions of times: each value takes a dictionary lookup
    when it is already canonical, and the general (noting) path only when it is not.
    """
    kept: dict[str, str] = {}
    source_ip: str | None
    packed: bytes | None
    address = _address(ip) if ip is not None else None
    if address is not None:
        source_ip, packed = address
        if source_ip != ip:
            kept["source_ip"] = ip[:100]  # type: ignore[index]
    else:
        source_ip, packed = _slow_address(ip, notes, number, kept)

    try:
        count: int | None = int(count_text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        count = None
    if count is None or not 0 <= count <= _MAX_COUNT:
        count = _slow_count(count_text, notes, number, kept)

    disposition = DISPOSITIONS.get(disposition_text) if disposition_text is not None else None
    if disposition is None or disposition != disposition_text:
        disposition = _required(disposition_text, DISPOSITIONS, "disposition", notes, number, kept)
    dkim = POLICY_RESULTS.get(dkim_text) if dkim_text is not None else None
    if dkim is None or dkim != dkim_text:
        dkim = _required(dkim_text, POLICY_RESULTS, "dkim", notes, number, kept)
    spf = POLICY_RESULTS.get(spf_text) if spf_text is not None else None
    if spf is None or spf != spf_text:
        spf = _required(spf_text, POLICY_RESULTS, "spf", notes, number, kept)

    header_from = _long_domain(header_from_text, "header_from", notes, number)
    if header_from is None:
        notes.add("header_from is missing or empty", number)
    envelope_from = (_long_domain(envelope_from_text, "envelope_from", notes, number)
                     if envelope_from_text else None)
    if envelope_from is None or "@" in envelope_from or envelope_from == "<>":
        envelope_from = _envelope_from(envelope_from_text, kept)
    envelope_to = _long_domain(envelope_to_text, "envelope_to", notes, number) if envelope_to_text else None
    return (number, source_ip, packed, count, disposition, dkim, spf, header_from, envelope_from,
            envelope_to, json.dumps(kept) if kept else None)


def dkim_row(number: int, seq: int, domain: str | None, selector: str | None, result: str | None,
             human: str | None, notes: RepairNotes) -> Row:
    """One DKIM result's row (`DKIM_COLUMNS`)."""
    value = DKIM_RESULTS.get(result) if result is not None else None
    result_raw = None
    if value is None or value != result:
        value, result_raw = _result(result, DKIM_RESULTS, "DKIM result", notes, number)
    return (number, seq, _long_domain(domain, "DKIM domain", notes, number),
            _text(selector) if selector else None, value, _text(human) if human else None, result_raw)


def spf_row(number: int, seq: int, domain: str | None, scope: str | None, result: str | None,
            human: str | None, notes: RepairNotes) -> Row:
    """One SPF result's row (`SPF_COLUMNS`)."""
    value = SPF_RESULTS.get(result) if result is not None else None
    result_raw = None
    if value is None or value != result:
        value, result_raw = _result(result, SPF_RESULTS, "SPF result", notes, number)
    scope_value = SPF_SCOPES.get(scope) if scope is not None else None
    if scope_value != scope:
        scope_value = _fold(scope, SPF_SCOPES, "SPF scope", notes, number)
    return (number, seq, _long_domain(domain, "SPF domain", notes, number), scope_value, value,
            _text(human) if human else None, result_raw)


def reason_row(number: int, seq: int, type_text: str | None, comment: str | None,
               notes: RepairNotes) -> Row:
    """One policy override reason's row (`REASON_COLUMNS`)."""
    value = _fold(type_text, OVERRIDE_TYPES, "override reason type", notes, number)
    if _text(type_text) is None:
        notes.add("empty override reason type", number)
    return (number, seq, value, _text(comment), _changed(type_text, value))


def _required(text: str | None, vocabulary: dict[str, str], name: str, notes: RepairNotes,
              number: int, kept: dict[str, str]) -> str | None:
    """The slow path of a required policy_evaluated value: fold it, or note it missing."""
    what = name if name == "disposition" else f"policy_evaluated {name}"
    value = _fold(text, vocabulary, what, notes, number, kept, name)
    if value is None and name not in kept:
        notes.add(f"{what} is missing or empty", number)
    return value


def _result(text: str | None, vocabulary: dict[str, str], what: str, notes: RepairNotes,
            number: int) -> tuple[str | None, str | None]:
    """The slow path of an auth result: (folded value, raw text kept), noted when missing."""
    value = _fold(text, vocabulary, what, notes, number)
    raw = _changed(text, value)
    if value is None and raw is None:
        notes.add(f"{what} is missing or empty", number)
    return value, raw


def _long_domain(text: str | None, what: str, notes: RepairNotes, number: int | None) -> str | None:
    """`_domain`, with a note when the text was too long to be a domain and was cut."""
    value = _domain(text)
    if value is not None and len(value) >= _MAX_DOMAIN and len(text.strip()) > _MAX_DOMAIN:  # type: ignore[union-attr]
        notes.add(f"{what} longer than {_MAX_DOMAIN} characters; cut", number)
    return value


def _changed(text: str | None, value: str | None) -> str | None:
    """The raw text worth keeping beside a folded value (not mere padding)."""
    if text is None:
        return None
    stripped = text.strip()
    return stripped if stripped and stripped != value else None


def _slow_address(text: str | None, notes: RepairNotes, position: int,
                  kept: dict[str, str]) -> tuple[str | None, bytes | None]:
    stripped = _text(text)
    if stripped is None:
        notes.add("source_ip is missing or empty", position)
        return None, None
    address = _address(stripped)
    if address is None:
        notes.add("source_ip is not an IP address; stored as null, raw text kept", position)
        kept["source_ip"] = stripped[:100]
        return None, None
    if address[0] != stripped:
        kept["source_ip"] = stripped[:100]
    return address


def _slow_count(text: str | None, notes: RepairNotes, position: int, kept: dict[str, str]) -> int | None:
    stripped = _text(text)
    if stripped is None:
        notes.add("count is missing or empty", position)
        return None
    notes.add("count is not an integer from 0 to 2^63-1; stored as null, raw text kept", position)
    kept["count"] = stripped[:100]
    return None


_DOMAINS: dict[str, str | None] = {}


def _domain(text: str | None) -> str | None:
    """A lower-case domain without the root dot; memoised, as a report repeats a few domains."""
    if text is None:
        return None
    value = _DOMAINS.get(text)
    if value is None:
        value = text.strip().lower().rstrip(".")[:_MAX_DOMAIN] or None
        if len(_DOMAINS) > 4096:
            _DOMAINS.clear()
        _DOMAINS[text] = value
    return value


def _envelope_from(text: str | None, kept: dict[str, str]) -> str | None:
    """The RFC5321.MailFrom domain; '' stands for the null reverse-path (`<>` or empty)."""
    if text is None:
        return None
    value = text.strip()
    if value in ("", "<>"):
        if value:
            kept["envelope_from"] = value
        return ""
    if "@" in value:
        kept["envelope_from"] = value[:255]
        value = value.rpartition("@")[2].strip("<> ")
    return value.lower().rstrip(".")[:_MAX_DOMAIN] or ""
