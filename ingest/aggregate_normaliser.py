"""Turn raw report texts into typed, canonical values, leniently and on the record.

Real generators write `Pass`, `hardfail`, `unknown`, padded numbers and empty elements. Each
value is folded to the schema's vocabulary where the meaning is clear (the raw text is kept
beside it), and set to null with a repair note where it is not; nothing fails a whole report
that a human could still read.
"""

from __future__ import annotations

import ipaddress
import socket
from datetime import UTC, datetime
from functools import lru_cache

from ingest.aggregate_parser import RawRecord, RawReportHeader
from ingest.aggregate_report import (
    AggregateRecord,
    DkimResult,
    PolicyOverride,
    PublishedPolicy,
    RepairNotes,
    ReportHeader,
    SpfResult,
)


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


@lru_cache(maxsize=65536)
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
        return str(address), _V4_MAPPED + address.packed
    return address.compressed, address.packed


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
        except ValueError:
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
    domain = _domain(policy.get("domain"))
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


def normalise_record(raw: RawRecord, notes: RepairNotes) -> AggregateRecord | None:
    """A canonical record, or None (noted) when nothing in it could be read.

    This runs once per record, millions of times: each value takes a dictionary lookup
    when it is already canonical, and the general (noting) path only when it is not.
    """
    position = raw.position
    if raw.missing:
        if len(raw.missing) == 3:
            notes.add("record could not be read (no row, identifiers or auth_results); skipped",
                      position)
            return None
        notes.add("record lacks <" + ">, <".join(raw.missing) + ">", position)
    kept: dict[str, str] = {}

    source_ip = packed = None
    text = raw.source_ip
    address = _address(text) if text is not None else None
    if address is not None:
        source_ip, packed = address
        if source_ip != text:
            kept["source_ip"] = text[:100]  # type: ignore[index]
    else:
        source_ip, packed = _slow_address(text, notes, position, kept)

    text = raw.count
    try:
        count: int | None = int(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        count = None
    if count is None or count < 0:
        count = _slow_count(text, notes, position, kept)

    text = raw.disposition
    disposition = DISPOSITIONS.get(text) if text is not None else None
    if disposition != text:
        disposition = _fold(text, DISPOSITIONS, "disposition", notes, position, kept, "disposition")
        if disposition is None and "disposition" not in kept:
            notes.add("disposition is missing or empty", position)
    text = raw.dkim
    dkim = POLICY_RESULTS.get(text) if text is not None else None
    if dkim != text:
        dkim = _fold(text, POLICY_RESULTS, "policy_evaluated dkim", notes, position, kept, "dkim")
    text = raw.spf
    spf = POLICY_RESULTS.get(text) if text is not None else None
    if spf != text:
        spf = _fold(text, POLICY_RESULTS, "policy_evaluated spf", notes, position, kept, "spf")

    header_from = _domain(raw.header_from)
    if header_from is None:
        notes.add("header_from is missing or empty", position)
    text = raw.envelope_from
    envelope_from = _domain(text) if text else _envelope_from(text, kept)
    if envelope_from is not None and ("@" in envelope_from or envelope_from == "<>"):
        envelope_from = _envelope_from(text, kept)

    dkim_results = []
    for domain, selector, outcome, human in raw.dkim_results:
        value = DKIM_RESULTS.get(outcome) if outcome is not None else None
        outcome_raw = None
        if value != outcome:
            value = _fold(outcome, DKIM_RESULTS, "DKIM result", notes, position)
            outcome_raw = _changed(outcome, value)
        dkim_results.append(DkimResult(_domain(domain), _text(selector), value,
                                       _text(human) if human else None, outcome_raw))
    spf_results = []
    for domain, scope, outcome, human in raw.spf_results:
        value = SPF_RESULTS.get(outcome) if outcome is not None else None
        outcome_raw = None
        if value != outcome:
            value = _fold(outcome, SPF_RESULTS, "SPF result", notes, position)
            outcome_raw = _changed(outcome, value)
        scope_value = SPF_SCOPES.get(scope) if scope is not None else None
        if scope_value != scope:
            scope_value = _fold(scope, SPF_SCOPES, "SPF scope", notes, position)
        spf_results.append(SpfResult(_domain(domain), scope_value, value,
                                     _text(human) if human else None, outcome_raw))

    return AggregateRecord(
        position=position,
        source_ip=source_ip,
        source_ip_packed=packed,
        count=count,
        disposition=disposition,
        dkim=dkim,
        spf=spf,
        header_from=header_from,
        envelope_from=envelope_from,
        envelope_to=_domain(raw.envelope_to) if raw.envelope_to else None,
        reasons=tuple(_reason(reason, notes, position) for reason in raw.reasons) if raw.reasons else (),
        dkim_results=tuple(dkim_results),
        spf_results=tuple(spf_results),
        raw=kept or None,
    )


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
    notes.add("count is not a non-negative integer; stored as null, raw text kept", position)
    kept["count"] = stripped[:100]
    return None


_DOMAINS: dict[str, str | None] = {}


def _domain(text: str | None) -> str | None:
    """A lower-case domain without the root dot; memoised, as a report repeats a few domains."""
    if text is None:
        return None
    value = _DOMAINS.get(text)
    if value is None:
        value = text.strip().lower().rstrip(".") or None
        if len(_DOMAINS) > 100_000:
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
    return value.lower().rstrip(".") or ""


def _reason(reason: tuple[str | None, str | None], notes: RepairNotes, position: int) -> PolicyOverride:
    type_text, comment = reason
    value = _fold(type_text, OVERRIDE_TYPES, "override reason type", notes, position)
    if _text(type_text) is None:
        notes.add("empty override reason type", position)
    return PolicyOverride(type=value, comment=_text(comment), type_raw=_changed(type_text, value))
