"""The catalogue of known sending services: who is behind a source IP, an SPF include, a d= domain.

A DMARC report names source IPs, and a user wants to read "SendGrid" or "Google Workspace", not
numbers; the forwarding analysis further needs to know whether a source is a mailbox provider or a
forwarder, because those are where legitimate mail fails SPF. The knowledge lives in a data file
shipped with the package (`ingest/data/senders.toml`) rather than in code, so it can be reviewed
and extended without touching the matcher, and a user file in the same format adds or replaces
entries for the services only one site knows about (a partner's relay, an in-house list server).

Each service carries rules of six kinds, and each kind answers one question on its own: which
service owns this reverse-DNS name, this AS number, this AS name (as MaxMind's GeoLite ASN data
spells it), this SPF include, this DKIM d= domain, this envelope (MAIL FROM) domain. Combining the
answers is the caller's business: a PTR name is stronger evidence than an AS number, and only the
caller knows which of them it has.

Loading is strict (unknown keys, duplicate claims and malformed values are errors naming the file,
the entry and the field) because a silently ignored typo in a user file would quietly mislabel
sources in every report. Matching is a handful of dict look-ups per name, since it runs for every
record of every report, at up to 100k look-ups a second.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Final

__all__ = ["SenderCatalogue", "Service", "ServiceType"]


class ServiceType(StrEnum):
    """What kind of party sends through a service; it decides how a failing source is read."""

    MAILBOX_PROVIDER = "mailbox_provider"
    """Hosts people's mailboxes (Gmail, Microsoft 365, an ISP's mail); a user's auto-forward makes
    legitimate mail arrive from here with SPF failing."""
    ESP = "esp"
    """Sends bulk or transactional mail on a customer's behalf (SendGrid, Mailchimp, Amazon SES)."""
    CRM = "crm"
    """A business application that mails as the customer's domain as a side line: CRM, help desk,
    ticketing, e-signature, commerce and other SaaS notifications."""
    FORWARDER = "forwarder"
    """Re-sends mail it received: forwarding and alias services, mailing lists."""
    SECURITY_GATEWAY = "security_gateway"
    """Filters a customer's mail on the way in or out (Mimecast, Proofpoint), so it relays mail
    that someone else originated."""
    HOSTING = "hosting"
    """General servers and web hosting: the IP says whose data centre, not who sent."""


@dataclass(frozen=True, slots=True)
class Service:
    """One known sending service, as shown to users; its matching rules stay in the catalogue."""

    name: str
    type: ServiceType
    url: str | None = None


# --- the file format ---------------------------------------------------------------------------

_DOMAIN_KINDS: Final = ("ptr_domains", "spf_includes", "dkim_domains", "envelope_domains")
_RULE_KINDS: Final = (*_DOMAIN_KINDS, "asns", "as_names")
_ENTRY_KEYS: Final = frozenset({"name", "type", "url", *_RULE_KINDS})
_TOP_KEY: Final = "service"
_MAX_ASN: Final = 2**32 - 1
_LABEL: Final = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", re.ASCII)
_MAX_NAME_OCTETS: Final = 253
_SHIPPED: Final = ("data", "senders.toml")
_TYPE_VALUES: Final = frozenset(t.value for t in ServiceType)


@dataclass(frozen=True, slots=True)
class _Entry:
    """A service with its rules and the file it came from (named in duplicate-claim errors)."""

    service: Service
    source: str
    rules: Mapping[str, tuple[str | int, ...]]


class _Where:
    """Builds the "file, entry, field" prefix every load error starts with."""

    def __init__(self, source: str, index: int, name: str | None = None) -> None:
        self.source = source
        self.index = index
        self.name = name

    def error(self, message: str, field: str | None = None) -> ValueError:
        entry = f"service #{self.index}" + (f" {self.name!r}" if self.name else "")
        where = f"{self.source}: {entry}" + (f", field {field!r}" if field else "")
        return ValueError(f"{where}: {message}")


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def _check_domain(value: object, where: _Where, field: str) -> str:
    """Rule domains must already be in canonical form: look-ups normalise their input once and then
    compare strings, so a rule spelled "Google.com." would otherwise never match."""
    if not isinstance(value, str):
        raise where.error(f"expected a domain name (string), got {_describe(value)}", field)
    if value != value.lower() or value.endswith(".") or value.startswith("."):
        raise where.error(f"domain {value!r} must be lower-case, without leading or trailing dot", field)
    if len(value) > _MAX_NAME_OCTETS or not all(_LABEL.fullmatch(label) for label in value.split(".")):
        raise where.error(f"{value!r} is not a valid domain name", field)
    return value


def _check_asn(value: object, where: _Where, field: str) -> int:
    # bool is an int subclass; `asns = [true]` is a typo, not AS1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(f"expected an AS number (integer), got {_describe(value)}", field)
    if not 0 < value <= _MAX_ASN:
        raise where.error(f"AS number {value} is out of range 1..{_MAX_ASN}", field)
    return value


def _check_as_name(value: object, where: _Where, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise where.error(
            f"expected a non-empty AS name without surrounding spaces, got {_describe(value)}", field
        )
    return value


def _check_rules(raw: Mapping[str, Any], where: _Where) -> dict[str, tuple[str | int, ...]]:
    rules: dict[str, tuple[str | int, ...]] = {}
    for kind in _RULE_KINDS:
        if kind not in raw:
            continue
        values = raw[kind]
        if not isinstance(values, list):
            raise where.error(f"expected a list, got {_describe(values)}", kind)
        checked: list[str | int] = []
        seen: set[str | int] = set()
        for value in values:
            item: str | int
            if kind == "asns":
                item = _check_asn(value, where, kind)
            elif kind == "as_names":
                item = _check_as_name(value, where, kind)
            else:
                item = _check_domain(value, where, kind)
            key = item.casefold() if isinstance(item, str) else item
            if key in seen:
                raise where.error(f"{item!r} is listed twice", kind)
            seen.add(key)
            checked.append(item)
        rules[kind] = tuple(checked)
    return rules


def _check_entry(raw: object, source: str, index: int) -> _Entry:
    where = _Where(source, index)
    if not isinstance(raw, dict):
        raise where.error(f"expected a table, got {_describe(raw)}")
    name = raw.get("name")
    if name is None:
        raise where.error("missing required field 'name'")
    if not isinstance(name, str) or not name.strip():
        raise where.error(f"expected a non-empty string, got {_describe(name)}", "name")
    where.name = name
    unknown = sorted(set(raw) - _ENTRY_KEYS)
    if unknown:
        raise where.error(
            f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(_ENTRY_KEYS))}"
        )
    kind = raw.get("type")
    if kind is None:
        raise where.error("missing required field 'type'")
    if not isinstance(kind, str) or kind not in _TYPE_VALUES:
        allowed = ", ".join(t.value for t in ServiceType)
        raise where.error(f"unknown service type {_describe(kind)}; expected one of {allowed}", "type")
    url = raw.get("url")
    if url is not None and (not isinstance(url, str) or not url.startswith(("https://", "http://"))):
        raise where.error(f"expected an http(s) URL, got {_describe(url)}", "url")
    return _Entry(Service(name, ServiceType(kind), url), source, _check_rules(raw, where))


def _parse(data: bytes, source: str) -> list[_Entry]:
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{source}: not a valid UTF-8 TOML file: {exc}") from exc
    unknown = sorted(set(document) - {_TOP_KEY})
    if unknown:
        raise ValueError(
            f"{source}: unknown top-level key(s) {', '.join(map(repr, unknown))}; "
            f"services are written as [[{_TOP_KEY}]] tables"
        )
    raw_entries = document.get(_TOP_KEY, [])
    if not isinstance(raw_entries, list):
        raise ValueError(f"{source}: {_TOP_KEY!r} must be an array of tables ([[{_TOP_KEY}]])")
    entries = [_check_entry(raw, source, index) for index, raw in enumerate(raw_entries, start=1)]
    names: dict[str, int] = {}
    for index, entry in enumerate(entries, start=1):
        first = names.setdefault(entry.service.name.casefold(), index)
        if first != index:
            raise _Where(source, index, entry.service.name).error(
                f"the name is already used by service #{first}"
            )
    return entries


def _merge(shipped: list[_Entry], extra: list[_Entry]) -> list[_Entry]:
    """A user entry replaces the shipped one of the same name in place, so the order of the shipped
    file (and of iteration) survives an override; new names are appended."""
    overrides = {entry.service.name.casefold(): entry for entry in extra}
    merged = [overrides.pop(entry.service.name.casefold(), entry) for entry in shipped]
    return merged + [entry for entry in extra if entry.service.name.casefold() in overrides]


# --- matching ------------------------------------------------------------------------------------


class _SuffixIndex:
    """Domain rules keyed by their exact text; a look-up tries the name and then each parent.

    Trying the longest candidate first makes "the longest matching rule wins" free, and cutting at
    label boundaries only is what keeps "evilgoogle.com" from matching "google.com". Names with more
    labels than the longest rule skip straight to the suffixes that could match, so a look-up costs
    at most one dict probe per label of the longest rule.
    """

    __slots__ = ("_by_domain", "_max_labels")

    def __init__(self, by_domain: dict[str, Service]) -> None:
        self._by_domain = by_domain
        self._max_labels = max((domain.count(".") + 1 for domain in by_domain), default=0)

    def domains(self) -> frozenset[str]:
        return frozenset(self._by_domain)

    def lookup(self, name: str) -> Service | None:
        if not self._max_labels:
            return None
        name = name.lower()
        if name.endswith("."):
            name = name[:-1]
        start = 0
        extra_labels = name.count(".") + 1 - self._max_labels
        while extra_labels > 0:
            start = name.index(".", start) + 1
            extra_labels -= 1
        by_domain = self._by_domain
        while True:
            found = by_domain.get(name[start:] if start else name)
            if found is not None:
                return found
            dot = name.find(".", start)
            if dot < 0:
                return None
            start = dot + 1


class SenderCatalogue:
    """Known sending services and the indexes that find one from a single piece of evidence."""

    def __init__(self, entries: list[_Entry]) -> None:
        """Builds the indexes; any rule value claimed by two services is an error, because which of
        them a look-up returned would then depend on file order, and the user would never know."""
        self._services = tuple(entry.service for entry in entries)
        self._by_name = {service.name.casefold(): service for service in self._services}
        claims: dict[str, dict[str | int, _Entry]] = {kind: {} for kind in _RULE_KINDS}
        for entry in entries:
            for kind, values in entry.rules.items():
                claimed = claims[kind]
                for value in values:
                    key = value.casefold() if kind == "as_names" and isinstance(value, str) else value
                    other = claimed.setdefault(key, entry)
                    if other is not entry:
                        raise ValueError(
                            f"{kind} value {value!r} is claimed by two services: {other.service.name!r} "
                            f"({other.source}) and {entry.service.name!r} ({entry.source}); "
                            "remove it from one, or override the shipped service by name"
                        )
        domain_index = {
            kind: _SuffixIndex({str(value): entry.service for value, entry in claims[kind].items()})
            for kind in _DOMAIN_KINDS
        }
        self._ptr = domain_index["ptr_domains"]
        self._spf = domain_index["spf_includes"]
        self._dkim = domain_index["dkim_domains"]
        self._envelope = domain_index["envelope_domains"]
        self._asn = {int(value): entry.service for value, entry in claims["asns"].items()}
        self._as_name = {str(value): entry.service for value, entry in claims["as_names"].items()}
        self._spf_domains = self._spf.domains()

    @classmethod
    def load(cls, extra_path: Path | None = None) -> SenderCatalogue:
        """The shipped catalogue, plus the entries of a user file in the same format if given.

        The shipped file is read through importlib.resources so that it is found in an installed
        wheel as well as in a source checkout.
        """
        shipped = resources.files("ingest").joinpath(*_SHIPPED)
        entries = _parse(shipped.read_bytes(), "ingest/" + "/".join(_SHIPPED))
        if extra_path is not None:
            entries = _merge(entries, _parse(extra_path.read_bytes(), str(extra_path)))
        return cls(entries)

    def __len__(self) -> int:
        return len(self._services)

    def __iter__(self) -> Iterator[Service]:
        return iter(self._services)

    def by_name(self, name: str) -> Service | None:
        """Case-insensitive, as names are compared when a user entry overrides a shipped one."""
        return self._by_name.get(name.casefold())

    def by_ptr(self, ptr_name: str) -> Service | None:
        """The service whose reverse-DNS domain is the name or one of its parents, longest first."""
        return self._ptr.lookup(ptr_name)

    def by_asn(self, asn: int) -> Service | None:
        return self._asn.get(asn)

    def by_as_name(self, as_name: str) -> Service | None:
        """Exact but case-insensitive: GeoLite's spelling of an AS name has changed case over time."""
        return self._as_name.get(as_name.casefold())

    def by_spf_include(self, domain: str) -> Service | None:
        """Exact or parent match, longest first: some services hand each customer an include name of
        its own under a domain of theirs."""
        return self._spf.lookup(domain)

    def by_dkim_domain(self, domain: str) -> Service | None:
        """Exact or parent match, longest first: services sign with per-customer or per-region
        subdomains of one domain (e.g. "<tenant>.onmicrosoft.com")."""
        return self._dkim.lookup(domain)

    def by_envelope_domain(self, domain: str) -> Service | None:
        """Exact or parent match, longest first: bounce domains are usually per-region or per-pool
        subdomains (e.g. "us-west-2.amazonses.com")."""
        return self._envelope.lookup(domain)

    def spf_include_domains(self) -> frozenset[str]:
        """Every SPF include named by some service, for the DNS snapshotter to record alongside the
        reports: an include's IP ranges change, and a verdict is only explainable with the ranges
        that were published at the time."""
        return self._spf_domains
