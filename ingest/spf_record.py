"""SPF records (RFC 7208 §4.5, §4.6, §5, §6): choosing one among TXT records, and its grammar.

A record is parsed whole before evaluation starts, because §4.6 makes a syntax error anywhere
in it a permerror even when an earlier mechanism would have matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

from ingest.dns_source import domain_name
from ingest.spf_macro import MacroString, MacroSyntaxError, parse_macro_string

_VERSION = "v=spf1"
_MODIFIER = re.compile(r"([a-zA-Z][a-zA-Z0-9\-_.]*)=(.*)", re.DOTALL)
_MECHANISM = re.compile(r"([+\-~?]?)([a-zA-Z0-9]*)(.*)", re.DOTALL)
_DUAL_CIDR = re.compile(r"(?:/([0-9]+))?(?://([0-9]+))?")
_TARGET_AND_CIDR = re.compile(r"(.*?)((?:/[0-9]+)?(?://[0-9]+)?)", re.DOTALL)
_CIDR_LENGTH = re.compile(r"0|[1-9][0-9]*")
_TOPLABEL = re.compile(r"[a-zA-Z0-9]*[a-zA-Z][a-zA-Z0-9]*|[a-zA-Z0-9]+-[a-zA-Z0-9\-]*[a-zA-Z0-9]")


class SpfSyntaxError(ValueError):
    """A record RFC 7208 does not allow: a permerror. The message names the offending term."""


class Verdict(StrEnum):
    """The seven check_host() results (§2.6); the values are the words reports use."""

    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


QUALIFIERS = {"+": Verdict.PASS, "-": Verdict.FAIL, "~": Verdict.SOFTFAIL, "?": Verdict.NEUTRAL}
DNS_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})
"""The mechanisms that count against the limit of 10 DNS-querying terms (§4.6.4)."""


@dataclass(frozen=True, slots=True)
class Mechanism:
    text: str
    """The term as published, for reports and traces."""
    verdict: Verdict
    kind: str
    """"all", "include", "a", "mx", "ptr", "ip4", "ip6" or "exists", lower-case."""
    target: MacroString | None = None
    """The domain-spec; None means the current domain (a, mx, ptr) or none needed."""
    network: IPv4Network | IPv6Network | None = None
    cidr4: int = 32
    cidr6: int = 128


@dataclass(frozen=True, slots=True)
class SpfRecord:
    mechanisms: tuple[Mechanism, ...]
    redirect: MacroString | None
    explanation: MacroString | None
    unknown_modifiers: tuple[tuple[str, str], ...]
    """Kept for display only: unknown modifiers never change the result (§6)."""


def is_spf_record(text: str) -> bool:
    """Whether a TXT record claims to be SPF: "v=spf1" in any case, then a space or the end."""
    return text[:len(_VERSION)].lower() == _VERSION and text[len(_VERSION):len(_VERSION) + 1] in ("", " ")


def select_record(texts: tuple[str, ...]) -> str | None:
    """The one SPF record among a name's TXT records; None if there is none.

    Raises SpfSyntaxError when several claim to be SPF (§4.5): publishing two is an error even
    when they are identical.
    """
    found = [text for text in texts if is_spf_record(text)]
    if len(found) > 1:
        raise SpfSyntaxError(f"{len(found)} SPF records published")
    return found[0] if found else None


@lru_cache(maxsize=4096)
def parse_record(text: str) -> SpfRecord:
    """Memoised: recomputation evaluates the same few records for many thousands of addresses,
    and a parsed record is immutable."""
    if not is_spf_record(text):
        raise SpfSyntaxError(f"not an SPF record: {text!r}")
    if any(not " " <= char <= "~" for char in text):
        raise SpfSyntaxError("the record holds characters outside printable ASCII (§3.1)")
    mechanisms: list[Mechanism] = []
    modifiers: dict[str, MacroString] = {}
    unknown: list[tuple[str, str]] = []
    for term in text[len(_VERSION):].split(" "):
        if not term:
            continue
        modifier = _MODIFIER.fullmatch(term)
        if modifier is None:
            mechanisms.append(_mechanism(term))
            continue
        name, value = modifier[1].lower(), modifier[2]
        if name in ("redirect", "exp"):
            if name in modifiers:
                raise SpfSyntaxError(f"{name}= appears more than once (§6)")
            modifiers[name] = domain_spec(value, term)
        else:
            _macro_string(value, term, explanation=True)
            unknown.append((modifier[1], value))
    return SpfRecord(tuple(mechanisms), modifiers.get("redirect"), modifiers.get("exp"), tuple(unknown))


def fixed_target(spec: MacroString | None, current: str) -> str | None:
    """The domain a term names when that needs no sender (no macro letter), or `current` when
    the term names none; None when the name is built from the sender or client address, so
    it cannot be known, looked up or walked before a message arrives."""
    if spec is None:
        return current
    return domain_name(spec.literal) or None if spec.literal else None


def domain_spec(text: str, term: str) -> MacroString:
    """Check a domain-spec (§7.1): a macro string ending in a macro or in "." top-label ["."]."""
    spec = _macro_string(text, term)
    if spec.ends_in_macro:
        return spec
    tail = spec.literal_tail
    tail = tail.removesuffix(".")
    _, dot, toplabel = tail.rpartition(".")
    if not dot or _TOPLABEL.fullmatch(toplabel) is None:
        raise SpfSyntaxError(f"{term!r}: {text!r} does not end in a valid top-level label")
    return spec


def _macro_string(text: str, term: str, *, explanation: bool = False) -> MacroString:
    try:
        return parse_macro_string(text, explanation=explanation)
    except MacroSyntaxError as error:
        raise SpfSyntaxError(f"{term!r}: {error}") from None


def _mechanism(term: str) -> Mechanism:
    match = _MECHANISM.fullmatch(term)
    assert match is not None  # every part of the pattern is optional
    qualifier, kind, rest = match[1], match[2].lower(), match[3]
    verdict = QUALIFIERS[qualifier or "+"]
    if kind == "all" and not rest:
        return Mechanism(term, verdict, kind)
    if kind in ("include", "exists") and rest.startswith(":"):
        return Mechanism(term, verdict, kind, domain_spec(rest[1:], term))
    if kind == "ptr" and (not rest or rest.startswith(":")):
        return Mechanism(term, verdict, kind, domain_spec(rest[1:], term) if rest else None)
    if kind in ("a", "mx"):
        return _address_mechanism(term, verdict, kind, rest)
    if kind in ("ip4", "ip6") and rest.startswith(":"):
        return Mechanism(term, verdict, kind, network=_network(term, kind, rest[1:]))
    raise SpfSyntaxError(f"{term!r} is not a valid mechanism or modifier")


def _address_mechanism(term: str, verdict: Verdict, kind: str, rest: str) -> Mechanism:
    """a and mx: an optional ":" domain-spec, then an optional dual CIDR length (§5.3, §5.4)."""
    target: MacroString | None = None
    if rest.startswith(":"):
        split = _TARGET_AND_CIDR.fullmatch(rest, 1)
        assert split is not None  # the first group can take everything
        target, rest = domain_spec(split[1], term), split[2]
    cidr = _DUAL_CIDR.fullmatch(rest)
    if cidr is None:
        raise SpfSyntaxError(f"{term!r} is not a valid mechanism")
    cidr4 = _cidr_length(term, cidr[1], 32) if cidr[1] is not None else 32
    cidr6 = _cidr_length(term, cidr[2], 128) if cidr[2] is not None else 128
    return Mechanism(term, verdict, kind, target, cidr4=cidr4, cidr6=cidr6)


def _network(term: str, kind: str, text: str) -> IPv4Network | IPv6Network:
    address_text, slash, length_text = text.partition("/")
    try:
        if "%" in address_text:  # Python accepts an IPv6 zone index; SPF's grammar does not
            raise ValueError(address_text)
        address: IPv4Address | IPv6Address
        address = IPv4Address(address_text) if kind == "ip4" else IPv6Address(address_text)
    except ValueError:
        raise SpfSyntaxError(f"{term!r}: {address_text!r} is not an {kind} address") from None
    maximum = 32 if kind == "ip4" else 128
    length = _cidr_length(term, length_text, maximum) if slash else maximum
    return ip_network(f"{address}/{length}", strict=False)


def _cidr_length(term: str, text: str, maximum: int) -> int:
    """A prefix length: no leading zeros (the RFC forbids them in ip4-network, so here too)."""
    if _CIDR_LENGTH.fullmatch(text) is None or int(text) > maximum:
        raise SpfSyntaxError(f"{term!r}: {text!r} is not a prefix length from 0 to {maximum}")
    return int(text)
