"""DMARC policy records (RFC 7489 §6.3-6.4, RFC 9989 §4.7-4.8, §4.10.1): grammar, meaning, advice.

Receivers are told to shrug off most mistakes (unknown tags ignored, bad values replaced by
defaults), so a broken record rarely fails loudly: the domain owner just gets less protection
or no reports. The parser therefore never stops at the first problem; it lists every one, each
with a stable code for the API and a sentence for the UI, and still returns what a receiver
would make of the record.

Decisions where the RFCs are silent or where receivers differ:

- A tag given twice is an error and the *first* value is used. DMARC borrows DKIM's tag-list
  (RFC 6376 §3.2), under which a duplicate invalidates the whole record, so some receivers
  ignore such a record entirely; others keep the first or the last value.
- Detection is lenient (leading whitespace, "v=dmarc1" in any case) so that near-misses reach
  the parser and get explained, but a version not written exactly "DMARC1" is an error, since
  RFC 9989 makes the value case-sensitive and tells receivers to ignore such records.
- Invalid values of the tags RFC 9989 removed (pct, rf, ri) are warnings, not errors: DMARCbis
  receivers ignore those tags whatever they hold.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from urllib.parse import unquote, urlsplit

POLICIES = ("none", "quarantine", "reject")
"""In increasing strength: t=y moves a policy one place to the left."""
KNOWN_TAGS = ("v", "p", "sp", "np", "adkim", "aspf", "fo", "psd", "t", "rua", "ruf", "pct", "rf", "ri")
REMOVED_TAGS = ("pct", "rf", "ri")
"""Tags RFC 9989 (Appendix C.5) dropped; DMARCbis receivers ignore them."""

_DMARC_START = re.compile(r"\s*v\s*=\s*dmarc1\s*(?:;|\Z)", re.IGNORECASE | re.ASCII)
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_RUN_TOGETHER = re.compile(r"\s([A-Za-z][A-Za-z0-9_]*)\s*=")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_SIZE_SUFFIX = re.compile(r"[0-9]+[kmgt]?", re.IGNORECASE)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+"
_LOCAL_PART = re.compile(rf'{_ATOM}(?:\.{_ATOM})*|"[^"\\]*"')
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?")
_KEYWORD = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?")
_MAX_RI = 2**32 - 1


class ProblemSeverity(StrEnum):
    """How much a problem matters; the UI sorts and colours by it.

    ERROR: receivers ignore the record or part of it, so it does not do what it says.
    WARNING: it works, but the owner is probably missing something (reports, a tag).
    NOTICE: advice; nothing is broken.
    """

    ERROR = "error"
    WARNING = "warning"
    NOTICE = "notice"


ERROR, WARNING, NOTICE = ProblemSeverity.ERROR, ProblemSeverity.WARNING, ProblemSeverity.NOTICE
_RANK = {ERROR: 0, WARNING: 1, NOTICE: 2}


@dataclass(frozen=True, slots=True)
class RecordProblem:
    severity: ProblemSeverity
    code: str
    """Stable snake_case identifier the API and UI key on; the message may be reworded."""
    tag: str | None
    """The tag concerned, lower-case; None for a problem of the record's syntax as a whole."""
    message: str


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    """What a receiver makes of a record: invalid values are replaced by defaults or None.

    `rua` and `ruf` hold only the URIs a receiver could use, without the obsolete "!size"
    suffix, so `bool(record.rua)` answers "does this record have a valid rua?". `p`, `sp` and
    `np` are lower-case and None when absent or invalid; `tags` tells the two apart.
    """

    text: str
    p: str | None = None
    sp: str | None = None
    np: str | None = None
    adkim: str = "r"
    aspf: str = "r"
    pct: int | None = None
    fo: str | None = None
    rf: str | None = None
    ri: int | None = None
    psd: str = "u"
    t: str = "n"
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    """Every tag as written (name lower-cased, first value when repeated), in record order."""

    @property
    def policy_valid(self) -> bool:
        """Whether p, sp and np are all usable; one bad one makes RFC 9989 §4.10.1 override all."""
        return (self.p is not None and ("sp" not in self.tags or self.sp is not None)
                and ("np" not in self.tags or self.np is not None))

    @property
    def effective_p(self) -> str | None:
        """The policy for the domain itself; None when receivers skip DMARC for it.

        A missing or invalid p (or an invalid sp or np) makes receivers act as if p=none when
        rua has a usable address, and ignore the record otherwise (RFC 9989 §4.10.1).
        """
        if self.policy_valid:
            return self.p
        return "none" if self.rua else None

    def subdomain_policy(self, exists: bool | None) -> str | None:
        """The policy for a subdomain of the domain holding this record (RFC 9989 §4.10.1).

        `exists` is False when the subdomain is NXDOMAIN (np applies, then sp, then p), True
        when it exists, and None when that is unknown: np covers only names known not to
        exist, so unknown names get sp, then p.
        """
        if not self.policy_valid:
            return self.effective_p
        if exists is False and self.np is not None:
            return self.np
        return self.sp if self.sp is not None else self.p

    @property
    def testing(self) -> bool:
        return self.t == "y"

    def applied_policy(self, policy: str | None) -> str | None:
        """`policy` as receivers apply it: with t=y, one level lower (RFC 9989 §4.7)."""
        if self.testing and policy in ("quarantine", "reject"):
            return POLICIES[POLICIES.index(policy) - 1]
        return policy


def is_dmarc_record(text: str) -> bool:
    """Whether a TXT record claims to be DMARC: v=DMARC1 first, then ";" or the end.

    Case and whitespace are tolerated so that near-misses reach the parser and get explained.
    """
    return _DMARC_START.match(text) is not None


def parse_dmarc_record(text: str) -> tuple[DmarcRecord | None, list[RecordProblem]]:
    """Parse `text`, listing every problem, errors first, then warnings, then notices.

    The record is None only when `text` is not a DMARC record at all; the problem says why.
    """
    if not is_dmarc_record(text):
        return None, [_why_not_dmarc(text)]
    problems = _Problems()
    tags = _read_tags(text, problems)
    values = _Values(tags, problems)
    rua, ruf = values.uris("rua"), values.uris("ruf")
    record = DmarcRecord(
        text=text,
        p=values.policy("p", bool(rua)), sp=values.policy("sp", bool(rua)), np=values.policy("np", bool(rua)),
        adkim=values.keyword("adkim", ("r", "s"), "r", "invalid_alignment_mode"),
        aspf=values.keyword("aspf", ("r", "s"), "r", "invalid_alignment_mode"),
        pct=values.number("pct", 100, "a whole number from 0 to 100; RFC 7489 receivers use 100"),
        ri=values.number("ri", _MAX_RI, "a number of seconds; RFC 7489 receivers use 86400 (one day)"),
        fo=values.fo(), rf=values.rf(),
        psd=values.keyword("psd", ("y", "n", "u"), "u", "invalid_psd"),
        t=values.keyword("t", ("y", "n"), "n", "invalid_t"),
        rua=rua, ruf=ruf, tags=MappingProxyType(tags),
    )
    _advise(record, problems)
    return record, sorted(problems, key=lambda problem: _RANK[problem.severity])


class _Problems(list[RecordProblem]):
    def add(self, severity: ProblemSeverity, code: str, tag: str | None, message: str) -> None:
        self.append(RecordProblem(severity, code, tag, message))


def _why_not_dmarc(text: str) -> RecordProblem:
    terms = [term.strip() for term in text.split(";")]
    name, equals, value = (part.strip() for part in terms[0].partition("="))
    if name.lower() == "v" and equals:
        if value.lower().startswith("dmarc1"):
            return RecordProblem(ERROR, "syntax", "v",
                                 f"'{terms[0]}': v=DMARC1 must be followed by ';' before the next tag")
        return RecordProblem(ERROR, "invalid_v", "v",
                             f"v={value} is not a DMARC version; a DMARC record starts with v=DMARC1")
    for term in terms[1:]:
        name, equals, value = (part.strip().lower() for part in term.partition("="))
        if (name, equals, value) == ("v", "=", "dmarc1"):
            return RecordProblem(ERROR, "not_first_v", "v",
                                 "v=DMARC1 must be the first tag; receivers ignore this record")
    return RecordProblem(ERROR, "missing_v", "v",
                         "the record does not start with v=DMARC1, so receivers do not treat it as DMARC")


def _read_tags(text: str, problems: _Problems) -> dict[str, str]:
    """Split the record into tags, reporting syntax errors; the first of repeated tags wins."""
    tags: dict[str, str] = {}
    terms = text.split(";")
    for index, raw in enumerate(terms):
        term = raw.strip()
        if not term:
            if index < len(terms) - 1:
                problems.add(WARNING, "syntax", None, "empty entry between two ';': some receivers reject it")
            continue
        name, equals, value = (part.strip() for part in term.partition("="))
        if not equals:
            problems.add(ERROR, "syntax", None, f"'{term}' is not a tag=value pair; receivers ignore it")
        elif _TAG_NAME.fullmatch(name) is None:
            problems.add(ERROR, "syntax", None, f"'{term}' has no valid tag name; receivers ignore it")
        elif name.lower() in tags:
            name = name.lower()
            problems.add(ERROR, "duplicate_tag", name,
                         f"{name}= appears more than once; some receivers then ignore the whole record, "
                         f"others pick either value (this check uses the first, {name}={tags[name]})")
        else:
            tags[name.lower()] = value
            _check_term(name.lower(), value, term, problems)
    return tags


def _check_term(name: str, value: str, term: str, problems: _Problems) -> None:
    if name not in KNOWN_TAGS:
        guess = difflib.get_close_matches(name, KNOWN_TAGS, n=1, cutoff=0.6)
        hint = f" (did you mean {guess[0]}=?)" if guess else ""
        problems.add(WARNING, "unknown_tag", name, f"{name}= is not a DMARC tag; receivers ignore it{hint}")
        return
    if not value and name not in ("p", "sp", "np"):  # the policy check says what receivers do instead
        problems.add(ERROR, "empty_value", name, f"{name}= has no value; receivers ignore it")
    elif _PRINTABLE.fullmatch(value) is None:
        problems.add(ERROR, "syntax", name,
                     f"{name}= holds characters other than printable ASCII; receivers may reject it")
    run_together = _RUN_TOGETHER.search(value)
    if run_together is not None:
        problems.add(ERROR, "syntax", name,
                     f"'{term}' looks like two tags run together; put ';' before {run_together[1]}=")


def _policy_fallback(has_rua: bool) -> str:
    if has_rua:
        return "receivers act as if the record said p=none, because rua= has a valid address (RFC 9989)"
    return "without a valid rua= address receivers ignore the whole record"


class _Values:
    """Reads and checks one tag value at a time; invalid values become None or the default."""

    def __init__(self, tags: dict[str, str], problems: _Problems) -> None:
        self.tags = tags
        self.add = problems.add

    def _value(self, tag: str) -> str | None:
        return self.tags.get(tag) or None  # empty values were reported by _check_term

    def policy(self, tag: str, has_rua: bool) -> str | None:
        value = self.tags.get(tag)
        if value is not None and value.lower() in POLICIES:
            return value.lower()
        fallback = _policy_fallback(has_rua)
        if value is None and tag == "p":
            self.add(ERROR, "missing_p", tag, f"p= is missing; {fallback}")
        elif value == "":
            self.add(ERROR, "empty_value", tag, f"{tag}= has no value; {fallback}")
        elif value is not None:
            self.add(ERROR, f"invalid_{tag}", tag,
                     f"{tag}={value} is not a policy; use none, quarantine or reject; {fallback}")
        return None

    def keyword(self, tag: str, allowed: tuple[str, ...], default: str, code: str) -> str:
        value = self._value(tag)
        if value is None or value.lower() in allowed:
            return default if value is None else value.lower()
        choices = ", ".join(allowed[:-1]) + f" or {allowed[-1]}"
        self.add(ERROR, code, tag, f"{tag}={value} is invalid; use {choices}; receivers use {tag}={default}")
        return default

    def number(self, tag: str, maximum: int, meaning: str) -> int | None:
        value = self._value(tag)
        if value is None or (re.fullmatch(r"[0-9]+", value) and int(value) <= maximum):
            return None if value is None else int(value)
        self.add(WARNING, f"invalid_{tag}", tag, f"{tag}={value} is not {meaning}")
        return None

    def rf(self) -> str | None:
        value = self._value("rf")
        if value is None:
            return None
        formats = [part.strip().lower() for part in value.split(":")]
        if all(_KEYWORD.fullmatch(part) for part in formats) and "afrf" in formats:
            return ":".join(formats)
        self.add(WARNING, "invalid_rf", "rf", f"rf={value} is not a known report format (only afrf)")
        return None

    def fo(self) -> str | None:
        value = self._value("fo")
        if value is None:
            return None
        options = [part.strip().lower() for part in value.split(":")]
        bad = [option for option in options if option not in ("0", "1", "d", "s")]
        if bad:
            reason = f"{', '.join(bad)}: not among 0, 1, d and s"
        elif len(set(options)) != len(options):
            reason = "an option is repeated"
        elif "0" in options and "1" in options:
            reason = "0 and 1 exclude each other"
        else:
            return ":".join(options)
        self.add(ERROR, "invalid_fo", "fo",
                 f"fo={value} is invalid ({reason}); use 0 or 1, d, s, separated by ':'; receivers use fo=0")
        return None

    def uris(self, tag: str) -> tuple[str, ...]:
        value = self._value(tag)
        found: list[str] = []
        for raw in value.split(",") if value is not None else ():
            uri = raw.strip()
            if not uri:
                self.add(WARNING, "invalid_uri", tag, f"{tag}= has an empty entry (a stray comma)")
                continue
            destination = self._without_size(tag, uri)
            if destination is not None and self._usable(tag, destination):
                found.append(destination)
        return tuple(found)

    def _without_size(self, tag: str, uri: str) -> str | None:
        destination, bang, size = uri.rpartition("!")
        if not bang:
            return uri
        if _SIZE_SUFFIX.fullmatch(size) is None:
            self.add(ERROR, "invalid_uri", tag, f"{uri}: '!' must be written %21; receivers ignore it")
            return None
        self.add(NOTICE, "size_suffix", tag,
                 f"{uri}: the !{size} size limit was removed in RFC 9989; DMARCbis receivers ignore it")
        return destination

    def _usable(self, tag: str, uri: str) -> bool:
        scheme = _SCHEME.match(uri)
        if scheme is None:
            hint = f"; write {tag}=mailto:{uri}" if "@" in uri else ""
            self.add(ERROR, "invalid_uri", tag, f"{uri} is not a URI{hint}; receivers ignore it")
            return False
        kind = scheme[1].lower()
        if kind == "mailto":
            reason = _mailto_problem(uri[scheme.end():])
        elif kind == "https":
            host = urlsplit(uri).hostname
            reason = None if host and _is_hostname(host) and " " not in uri else "it has no valid host name"
            if reason is None:
                self.add(NOTICE, "https_uri", tag, f"{uri}: few receivers report over https; all use mailto:")
        else:
            reason = f"receivers send reports to mailto: (rarely https:) URIs, not {kind}:"
        if reason is not None:
            self.add(ERROR, "invalid_uri", tag, f"{uri}: {reason}; receivers ignore it")
        return reason is None


def _mailto_problem(rest: str) -> str | None:
    """Why a mailto: URI's address is unusable (RFC 6068), or None if it looks deliverable."""
    address = unquote(rest.partition("?")[0])
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return f"'{address}' is not an email address"
    if _LOCAL_PART.fullmatch(local) is None:
        return f"'{local}' is not a valid mailbox name"
    if not _is_hostname(domain):
        return f"'{domain}' is not a valid mail domain"
    return None


def _is_hostname(name: str) -> bool:
    labels = name.removesuffix(".").split(".")
    return (len(labels) >= 2 and len(name) <= 253 and not labels[-1].isdigit()
            and all(_LABEL.fullmatch(label) for label in labels))


def _advise(record: DmarcRecord, problems: _Problems) -> None:
    """Problems of the record as a whole rather than of one value."""
    tags = record.tags
    if tags.get("v") != "DMARC1":
        problems.add(ERROR, "invalid_v", "v",
                     f"v={tags.get('v')} must be written exactly v=DMARC1; RFC 9989 receivers ignore it")
    if not record.rua:
        problems.add(WARNING, "no_rua", "rua",
                     "rua= has no usable address, so no aggregate reports will be sent" if "rua" in tags
                     else "no rua= tag, so no aggregate reports will be sent")
    for tag, advice in zip(REMOVED_TAGS, (
        "they apply the policy to all failing mail; use t=y to test a policy instead",
        "failure reports always use the AFRF format",
        "aggregate reports are normally sent once a day",
    ), strict=True):
        if tag in tags:
            problems.add(NOTICE, "deprecated_tag", tag,
                         f"{tag}= was removed in RFC 9989 and is ignored by DMARCbis receivers; {advice}")
    if record.p == "none":
        problems.add(NOTICE, "monitoring_only", "p",
                     "p=none only monitors: failing mail is delivered as usual; move to quarantine or reject "
                     "once reports show your legitimate mail passes")
        if record.pct is not None and record.pct < 100:
            problems.add(NOTICE, "pointless_pct", "pct",
                         f"pct={record.pct} does nothing with p=none: there is no policy to sample")
    if record.fo is not None and not record.ruf:
        problems.add(NOTICE, "fo_without_ruf", "fo", "fo= has no effect without a usable ruf= address")
    if record.testing:
        problems.add(NOTICE, "test_mode", "t",
                     "t=y: receivers apply one policy level lower (reject as quarantine, quarantine as none)")
