"""A domain's SPF record tree turned into networks, so that judging a million records does not
mean a million RFC 7208 evaluations.

Most published SPF trees depend on the client address only through network membership: ip4,
ip6, a and mx name fixed hosts, include and redirect name fixed domains. Such a tree is read
once per (domain, DNS epoch, address family) into ordered entries and then answers any
address in microseconds, with the result `check_host` would give. Anything whose answer
depends on more than the address's networks — exists, ptr, macros — makes `compile_spf` give
up (None), and the caller evaluates per address as before. So do trees that could hit the
limits of §4.6.4 (more than 10 DNS-querying terms or 2 void lookups in the whole tree): which
terms count depends on where evaluation stops, so only trees that can never reach a limit
are compiled. DNS trouble and broken includes keep their place in the order (a `stop`
entry), because check_host only meets them if no earlier term matched.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network

from ingest.dns_source import DnsOutcome, DnsSource, RecordType, domain_name, parse_mx
from ingest.spf_evaluator import MAX_DNS_TERMS, MAX_MX_NAMES, MAX_VOID_LOOKUPS, usable_domain
from ingest.spf_macro import MacroString
from ingest.spf_record import SpfSyntaxError, Verdict, fixed_target, parse_record, select_record

Network = IPv4Network | IPv6Network
_V4_MAPPED = bytes(10) + b"\xff\xff"


class _NotCompilable(Exception):
    """The tree's result depends on more than the address's networks, or it may hit a limit."""


@dataclass(slots=True)
class CompiledSpf:
    """One SPF level: its entries in record order, then its redirect, else neutral."""

    entries: list[tuple[str, object, Verdict]] = field(default_factory=list)
    redirect: CompiledSpf | None = None
    constant: Verdict | None = None
    """Set when the level ends before any mechanism: none, temperror or permerror."""

    def result(self, version: int, ip: int) -> Verdict:
        """The result for the client address `ip` (as an integer) of IP `version`."""
        if self.constant is not None:
            return self.constant
        for kind, payload, verdict in self.entries:
            if kind == "net":
                for family, low, high in payload:  # type: ignore[attr-defined]
                    if family == version and low <= ip <= high:
                        return verdict
            elif kind == "all":
                return verdict
            elif kind == "include":
                inner: Verdict = payload.result(version, ip)  # type: ignore[attr-defined]
                if inner is Verdict.PASS:
                    return verdict
                if inner in (Verdict.TEMPERROR, Verdict.PERMERROR):
                    return inner
            else:  # stop: DNS trouble or a broken include, met only when reached
                return payload  # type: ignore[return-value]
        return self.redirect.result(version, ip) if self.redirect is not None else Verdict.NEUTRAL


def client_number(ip: str) -> tuple[int, int] | None:
    """(IP version, address as an integer), an IPv4-mapped IPv6 address taken as IPv4 (RFC 7208
    §5); None when `ip` is not an address. inet_pton is ten times quicker than ipaddress here."""
    try:
        if ":" not in ip:
            return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big")
        packed = socket.inet_pton(socket.AF_INET6, ip)
    except OSError:
        return None
    if packed[:12] == _V4_MAPPED:
        return 4, int.from_bytes(packed[12:], "big")
    return 6, int.from_bytes(packed, "big")


def _ranges(networks: list[Network] | tuple[Network, ...]) -> tuple[tuple[int, int, int], ...]:
    return tuple((network.version, int(network.network_address), int(network.broadcast_address))
                 for network in networks)


def compile_spf(domain: str, source: DnsSource, version: int) -> CompiledSpf | None:
    """The tree under `domain` as `source` answers it, for clients of IP `version` (4 or 6)."""
    counts = [0, 0]  # DNS-querying terms, void lookups: over the whole tree
    try:
        compiled = _level(domain_name(domain), source, "A" if version == 4 else "AAAA", counts, depth=0,
                          top=True)
    except _NotCompilable:
        return None
    if counts[0] > MAX_DNS_TERMS or counts[1] > MAX_VOID_LOOKUPS:
        return None
    return compiled


def _level(domain: str, source: DnsSource, address_type: RecordType, counts: list[int], depth: int,
           top: bool = False) -> CompiledSpf:
    if depth > MAX_DNS_TERMS:
        raise _NotCompilable
    if not usable_domain(domain):
        return CompiledSpf(constant=Verdict.NONE if top else Verdict.PERMERROR)
    answer = source.lookup(domain, "TXT")
    if answer.failed:
        return CompiledSpf(constant=Verdict.TEMPERROR)
    try:
        text = select_record(answer.records)
        if text is None:
            return CompiledSpf(constant=Verdict.NONE if top else Verdict.PERMERROR)
        record = parse_record(text)
    except SpfSyntaxError:
        return CompiledSpf(constant=Verdict.PERMERROR)
    level = CompiledSpf()
    for mechanism in record.mechanisms:
        if mechanism.kind == "all":
            level.entries.append(("all", None, mechanism.verdict))
        elif mechanism.network is not None:
            level.entries.append(("net", _ranges((mechanism.network,)), mechanism.verdict))
        elif mechanism.kind in ("a", "mx", "include"):
            counts[0] += 1
            target = _target(mechanism.target, domain)
            if mechanism.kind == "include":
                inner = _level(target, source, address_type, counts, depth + 1)
                if inner.constant is Verdict.NONE:
                    inner = CompiledSpf(constant=Verdict.PERMERROR)
                level.entries.append(("include", inner, mechanism.verdict))
            else:
                level.entries += _hosts(mechanism.kind, target, mechanism.cidr4, mechanism.cidr6,
                                        mechanism.verdict, source, address_type, counts)
        else:  # exists, ptr: the answer depends on the address itself
            raise _NotCompilable
    if record.redirect is not None and not any(kind == "all" for kind, _, _ in level.entries):
        counts[0] += 1
        target = _target(record.redirect, domain)
        level.redirect = _level(target, source, address_type, counts, depth + 1)
        if level.redirect.constant is Verdict.NONE:
            level.redirect = CompiledSpf(constant=Verdict.PERMERROR)
    return level


def _hosts(kind: str, target: str, cidr4: int, cidr6: int, verdict: Verdict, source: DnsSource,
           address_type: RecordType, counts: list[int]) -> list[tuple[str, object, Verdict]]:
    """An a or mx term as the networks of its hosts, host by host in answer order, as
    check_host meets them: a host whose lookup failed stops there, after the ones before it."""
    prefix = cidr4 if address_type == "A" else cidr6
    names = [target]
    if kind == "mx":
        mx = source.lookup(target, "MX")
        if mx.failed:
            return [("stop", Verdict.TEMPERROR, verdict)]
        if mx.outcome is not DnsOutcome.ANSWER:
            counts[1] += 1
            return []
        if len(mx.records) > MAX_MX_NAMES:
            return [("stop", Verdict.PERMERROR, verdict)]
        names = [exchange for exchange in (parse_mx(text)[1] for text in mx.records) if exchange != "."]
    entries: list[tuple[str, object, Verdict]] = []
    for name in names:
        answer = source.lookup(name, address_type)
        if answer.failed:
            entries.append(("stop", Verdict.TEMPERROR, verdict))
            break
        if kind == "a" and answer.outcome is not DnsOutcome.ANSWER:
            counts[1] += 1
        networks: list[Network] = []
        for text in answer.records:
            try:
                networks.append(ip_network(f"{text}/{prefix}", strict=False))
            except ValueError:
                continue
        entries.append(("net", _ranges(networks), verdict))
    return entries


def _target(spec: MacroString | None, current: str) -> str:
    if spec is None:
        return current
    name = fixed_target(spec, current)
    if name is None or not usable_domain(name):
        raise _NotCompilable
    return name
