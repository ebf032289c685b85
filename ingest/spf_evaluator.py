"""RFC 7208 check_host() over any `DnsSource`.

The evaluator never touches the network itself: given the live resolver it checks today's
DNS, given a snapshot it re-checks history, and the answers it used come back in the result so
that a snapshot can be made of exactly what an evaluation read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

from ingest.dns_source import DnsAnswer, DnsOutcome, DnsSource, RecordType, domain_name, parse_mx
from ingest.spf_macro import (
    MacroString,
    MacroSyntaxError,
    MacroValues,
    expand,
    parse_macro_string,
    reverse_name,
)
from ingest.spf_record import Mechanism, SpfSyntaxError, Verdict, parse_record, select_record

MAX_DNS_TERMS = 10
MAX_VOID_LOOKUPS = 2
MAX_MX_NAMES = 10
MAX_PTR_NAMES = 10
DEFAULT_TIME_LIMIT = 20.0
"""Seconds; §4.6.4 asks for at least 20 before giving up with temperror."""
_MAX_NAME_LENGTH = 253
_MAX_LABEL_LENGTH = 63

ClientAddress = IPv4Address | IPv6Address


@dataclass(frozen=True, slots=True)
class SpfResult:
    result: Verdict
    domain: str
    """The domain check_host() started from."""
    mechanism: str | None
    """The term that decided the result, as published; None when none matched or on error."""
    mechanism_domain: str | None
    """The domain whose record holds `mechanism` (differs from `domain` after a redirect)."""
    explanation: str | None
    """Only for fail (§6.2): the expanded exp= text, or `default_explanation`."""
    explanation_domain: str | None
    """The name whose TXT record gave the explanation; None when the default was used."""
    reason: str
    """Why, in one line: what matched, or which problem stopped the evaluation."""
    lookups: tuple[DnsAnswer, ...]
    """Every answer the evaluation read, in the order first asked, each once."""
    dns_terms: int
    void_lookups: int

    @property
    def names(self) -> tuple[tuple[str, RecordType], ...]:
        return tuple((answer.name, answer.rdtype) for answer in self.lookups)


def check_mail_from(source: DnsSource, ip: str | ClientAddress, mail_from: str, helo: str, *,
                    receiver: str = "unknown", timestamp: int | None = None,
                    time_limit: float = DEFAULT_TIME_LIMIT) -> SpfResult:
    """The "mfrom" check (§2.4); a null reverse-path is checked as postmaster@HELO instead."""
    if mail_from in ("", "<>"):
        return check_helo(source, ip, helo, receiver=receiver, timestamp=timestamp, time_limit=time_limit)
    return check_host(source, ip, mail_from.rpartition("@")[2], mail_from, helo, receiver=receiver,
                      timestamp=timestamp, time_limit=time_limit)


def check_helo(source: DnsSource, ip: str | ClientAddress, helo: str, *, receiver: str = "unknown",
               timestamp: int | None = None, time_limit: float = DEFAULT_TIME_LIMIT) -> SpfResult:
    """The "helo" check (§2.3)."""
    return check_host(source, ip, helo, f"postmaster@{helo}", helo, receiver=receiver,
                      timestamp=timestamp, time_limit=time_limit)


def check_host(source: DnsSource, ip: str | ClientAddress, domain: str, sender: str, helo: str = "",
               *, receiver: str = "unknown", timestamp: int | None = None,
               time_limit: float = DEFAULT_TIME_LIMIT) -> SpfResult:
    """RFC 7208 §4: is `ip` allowed to send mail for `domain` on behalf of `sender`?

    `receiver` and `timestamp` only feed the explanation macros %{r} and %{t}. DNS trouble
    never raises (it is temperror); an `ip` that is not an address raises ValueError.
    """
    address = client_address(ip)
    local_part, _, sender_domain = sender.rpartition("@")
    local_part = local_part or "postmaster"  # §4.3
    domain = domain_name(domain)
    evaluation = _Evaluation(source, address, time.monotonic() + time_limit)
    values = MacroValues(
        sender=f"{local_part}@{sender_domain}", local_part=local_part, sender_domain=sender_domain,
        domain=domain, ip=address, helo=helo, receiver=receiver,
        timestamp=int(time.time()) if timestamp is None else timestamp,
        validated_name=evaluation.validated_name)
    explanation: str | None = None
    explanation_domain: str | None = None
    try:
        outcome = evaluation.check(domain, values)
    except _Stop as stop:
        outcome = _Outcome(stop.verdict, domain, None, None, stop.reason)
    if outcome.verdict is Verdict.FAIL:
        explanation, explanation_domain = evaluation.explain(outcome, replace(values, domain=outcome.domain))
        explanation = explanation or default_explanation(domain, address)
    return SpfResult(
        result=outcome.verdict, domain=domain,
        mechanism=outcome.mechanism.text if outcome.mechanism else None,
        mechanism_domain=outcome.domain if outcome.mechanism else None,
        explanation=explanation, explanation_domain=explanation_domain, reason=outcome.reason,
        lookups=tuple(evaluation.answers.values()), dns_terms=evaluation.dns_terms,
        void_lookups=evaluation.void_lookups)


def default_explanation(domain: str, ip: ClientAddress) -> str:
    return f"{domain} does not designate {ip} as a permitted sender"


def client_address(ip: str | ClientAddress) -> ClientAddress:
    """The client's address; an IPv4-mapped IPv6 address is IPv4 (§5, last paragraph)."""
    address = ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def usable_domain(name: str) -> bool:
    """§4.3: a domain check_host() can start from; anything else gives "none" without a query."""
    name = name.removesuffix(".")
    return not name.startswith("[") and "." in name and _usable_name(name)


def _usable_name(name: str) -> bool:
    labels = name.split(".")
    return len(name) <= _MAX_NAME_LENGTH and all(0 < len(label) <= _MAX_LABEL_LENGTH for label in labels)


@dataclass(frozen=True, slots=True)
class _Outcome:
    verdict: Verdict
    domain: str
    mechanism: Mechanism | None
    explanation: MacroString | None
    """The exp= of the record that decided: only that record's may explain a fail (§6.2)."""
    reason: str


class _Stop(Exception):
    """Ends the whole evaluation (temperror or permerror), however deep in includes."""

    def __init__(self, verdict: Verdict, reason: str) -> None:
        super().__init__(reason)
        self.verdict = verdict
        self.reason = reason


class _Evaluation:
    """The state one check_host() call shares across includes and redirects: the limits'
    counters and the answers read so far (asked once each, so a trace is also a cache)."""

    def __init__(self, source: DnsSource, ip: ClientAddress, deadline: float) -> None:
        self.source = source
        self.ip = ip
        self.deadline = deadline
        self.answers: dict[tuple[str, RecordType], DnsAnswer] = {}
        self.dns_terms = 0
        self.void_lookups = 0
        self._validated: list[str] | None = None
        self._address_type: RecordType = "A" if ip.version == 4 else "AAAA"

    def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
        key = (domain_name(name), rdtype)
        if key not in self.answers:
            if time.monotonic() > self.deadline:
                raise _Stop(Verdict.TEMPERROR, "time limit reached before all DNS lookups were done")
            self.answers[key] = self.source.lookup(*key)
        return self.answers[key]

    def check(self, domain: str, values: MacroValues) -> _Outcome:
        """One level of check_host(): the top domain, an include's or a redirect's target."""
        if not usable_domain(domain):
            return _Outcome(Verdict.NONE, domain, None, None, f"{domain!r} is not a usable domain name")
        answer = self.lookup(domain, "TXT")
        if answer.failed:
            raise _Stop(Verdict.TEMPERROR, f"TXT lookup of {domain} ended in {answer.outcome}")
        try:
            text = select_record(answer.records)
            if text is None:
                return _Outcome(Verdict.NONE, domain, None, None, f"no SPF record at {domain}")
            record = parse_record(text)
        except SpfSyntaxError as error:
            raise _Stop(Verdict.PERMERROR, f"{domain}: {error}") from None
        values = replace(values, domain=domain)
        for mechanism in record.mechanisms:
            if self.matches(mechanism, values):
                return _Outcome(mechanism.verdict, domain, mechanism, record.explanation,
                                f"{mechanism.text} matched in the record of {domain}")
        if record.redirect is None:
            return _Outcome(Verdict.NEUTRAL, domain, None, record.explanation,
                            f"no mechanism matched in the record of {domain}")
        term = f"redirect={record.redirect.text}"
        self.count_dns_term(term)
        target = self.target_name(record.redirect, values)
        outcome = self.check(target, values) if target else None
        if outcome is None or outcome.verdict is Verdict.NONE:
            raise _Stop(Verdict.PERMERROR, f"{domain}: {term} leads to no SPF record")
        return outcome

    def matches(self, mechanism: Mechanism, values: MacroValues) -> bool:
        if mechanism.kind == "all":
            return True
        if mechanism.network is not None:
            return self.ip in mechanism.network
        self.count_dns_term(mechanism.text)
        target = self.target_name(mechanism.target, values) if mechanism.target else values.domain
        if mechanism.kind == "include":
            outcome = self.check(target, values) if target else None
            if outcome is None or outcome.verdict is Verdict.NONE:
                raise _Stop(Verdict.PERMERROR, f"{mechanism.text}: no SPF record at {target}")
            return outcome.verdict is Verdict.PASS
        if target is None:  # expanded to something DNS cannot ask: as if it did not exist
            return False
        if mechanism.kind == "a":
            answer = self.asked(mechanism, target, self._address_type)
            return self.holds_client(answer, mechanism)
        if mechanism.kind == "mx":
            return self.matches_mx(mechanism, target)
        if mechanism.kind == "ptr":
            return any(name == target or name.endswith("." + target) for name in self.validated_names())
        return self.asked(mechanism, target, "A").outcome is DnsOutcome.ANSWER  # exists

    def matches_mx(self, mechanism: Mechanism, target: str) -> bool:
        answer = self.asked(mechanism, target, "MX")
        if len(answer.records) > MAX_MX_NAMES:
            raise _Stop(Verdict.PERMERROR, f"{mechanism.text}: {target} has "
                                           f"{len(answer.records)} MX records, over {MAX_MX_NAMES}")
        for record in answer.records:
            exchange = parse_mx(record)[1]
            if exchange == ".":  # null MX (RFC 7505): no host receives mail
                continue
            addresses = self.lookup(exchange, self._address_type)
            if addresses.failed:
                raise _Stop(Verdict.TEMPERROR, f"{mechanism.text}: {exchange} lookup ended in "
                                               f"{addresses.outcome}")
            if self.holds_client(addresses, mechanism):
                return True
        return False

    def asked(self, mechanism: Mechanism, name: str, rdtype: RecordType) -> DnsAnswer:
        """A mechanism's own query: DNS failure is temperror (§5), an empty answer is void.

        Voids are counted per term evaluated, like the DNS-querying terms, so that a result
        never depends on whether an answer came from this evaluation's cache.
        """
        answer = self.lookup(name, rdtype)
        if answer.failed:
            raise _Stop(Verdict.TEMPERROR, f"{mechanism.text}: {rdtype} lookup of {name} "
                                           f"ended in {answer.outcome}")
        if answer.outcome is not DnsOutcome.ANSWER:
            self.void_lookups += 1
            if self.void_lookups > MAX_VOID_LOOKUPS:
                raise _Stop(Verdict.PERMERROR, f"{mechanism.text}: more than {MAX_VOID_LOOKUPS} "
                                               "lookups found nothing (§4.6.4)")
        return answer

    def holds_client(self, answer: DnsAnswer, mechanism: Mechanism) -> bool:
        prefix = mechanism.cidr4 if self.ip.version == 4 else mechanism.cidr6
        for text in answer.records:
            try:
                if self.ip in ip_network(f"{text}/{prefix}", strict=False):
                    return True
            except ValueError:  # not an address: a damaged snapshot must not crash a check
                continue
        return False

    def count_dns_term(self, term: str) -> None:
        self.dns_terms += 1
        if self.dns_terms > MAX_DNS_TERMS:
            raise _Stop(Verdict.PERMERROR, f"{term}: more than {MAX_DNS_TERMS} DNS-querying terms (§4.6.4)")

    def target_name(self, spec: MacroString, values: MacroValues) -> str | None:
        """Expand a domain-spec into a name to ask for (§7.3: over 253 characters, labels
        are dropped from the left); None when no DNS query could carry it."""
        name = expand(spec, values).removesuffix(".")
        while len(name) > _MAX_NAME_LENGTH and "." in name:
            name = name.partition(".")[2]
        return domain_name(name) if name and _usable_name(name) else None

    def validated_names(self) -> list[str]:
        """The client's host names that resolve back to it (§5.5), for ptr and %{p}.

        A failed PTR query means no names (ptr does not match, %{p} is "unknown"); a failed
        address query skips that name. The reverse lookup is not counted as void: the client,
        not the publisher, controls it. Only the first 10 names are tried (§4.6.4).
        """
        if self._validated is None:
            answer = self.lookup(reverse_name(self.ip), "PTR")
            self._validated = []
            for record in answer.records[:MAX_PTR_NAMES]:
                name = domain_name(record)
                addresses = self.lookup(name, self._address_type)
                if any(_same_address(text, self.ip) for text in addresses.records):
                    self._validated.append(name)
        return self._validated

    def validated_name(self, domain: str) -> str:
        """%{p}: a validated name within `domain` if there is one, else any (§7.3)."""
        names = self.validated_names()
        within = [name for name in names if name == domain or name.endswith("." + domain)]
        return (within or names or ["unknown"])[0]

    def explain(self, outcome: _Outcome, values: MacroValues) -> tuple[str | None, str | None]:
        """The exp= text for a fail, or (None, None); any problem falls back to the default
        (§6.2), and nothing here may change the result or count against the limits."""
        if outcome.explanation is None:
            return None, None
        try:
            name = self.target_name(outcome.explanation, values)
            answer = self.lookup(name, "TXT") if name else None
            if name is None or answer is None or len(answer.records) != 1:
                return None, None
            text = answer.records[0]
            if not all(" " <= char <= "~" for char in text):
                return None, None
            return expand(parse_macro_string(text, explanation=True), values), name
        except (_Stop, MacroSyntaxError):
            return None, None


def _same_address(text: str, ip: ClientAddress) -> bool:
    try:
        return ip_address(text) == ip
    except ValueError:
        return False
