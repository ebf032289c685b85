"""Who a source address is, from the evidence gathered about it.

A postmaster recognises "SendGrid" or "Google Workspace", not 149.72.3.4; failing that, the
domain its reverse DNS names, or the network that announces it. The evidence comes in order
of trust, and the first catalogue rule that matches names the service:

1. the reverse DNS name, when forward-confirmed (anyone can publish any PTR for their own
   addresses, but only the owner of the name can make it resolve back);
2. the SPF include of a catalogued service that authorises the address (from the DNS
   history, so the match holds for the include as it was published);
3. the AS number, then the AS name, that announces the address;
4. the DKIM d= domain of passing signatures, then the SPF envelope domain, seen with the
   address in reports (services that sign or bounce with their own domain);
5. an unconfirmed reverse DNS name, last: it is a claim, not a proof.

Without a catalogue match the sender is the PTR name's registrable domain, else the AS name,
else "unknown". Pure: the caller gathers the evidence (ingest.source_enrichment).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Protocol

from ingest.ip_network_db import NetworkInfo
from ingest.reverse_dns import ReverseDns
from ingest.sender_catalogue import SenderCatalogue, Service

UNKNOWN = "unknown"

IdentityRow = tuple[str, str | None, str | None, str | None, str | None, str | None, str | None, int | None,
                    str | None, str | None]
"""A SourceIdentity's fields in their order: what the enrichment stage writes, without building
a dataclass per address on the way."""


class ServiceLookups(Protocol):
    """The look-ups identification makes: a SenderCatalogue, or a MemoisedCatalogue over one."""

    def by_ptr(self, ptr_name: str) -> Service | None: ...
    def by_asn(self, asn: int) -> Service | None: ...
    def by_as_name(self, as_name: str) -> Service | None: ...
    def by_dkim_domain(self, domain: str) -> Service | None: ...
    def by_envelope_domain(self, domain: str) -> Service | None: ...


class MemoisedCatalogue:
    """A catalogue whose answers for DKIM and envelope domains are kept for the run: the same few
    signing and bounce domains come back for address after address, and a dict probe costs a
    fraction of a suffix walk. The other look-ups are passed on: AS numbers and names are dict
    probes already, and PTR names are nearly all distinct (one per host), so keeping them would
    only hold memory."""

    def __init__(self, catalogue: SenderCatalogue) -> None:
        self.by_dkim_domain = cache(catalogue.by_dkim_domain)
        self.by_envelope_domain = cache(catalogue.by_envelope_domain)
        self.by_ptr = catalogue.by_ptr
        self.by_asn = catalogue.by_asn
        self.by_as_name = catalogue.by_as_name


@dataclass(frozen=True, slots=True)
class SourceEvidence:
    ip: str
    reverse: ReverseDns | None
    network: NetworkInfo
    spf_include_service: Service | None = None
    """the catalogued service whose SPF include authorises the address, if any"""
    dkim_domains: tuple[str, ...] = ()
    """d= domains of passing signatures seen with the address, most frequent first"""
    envelope_domains: tuple[str, ...] = ()
    """SPF (MAIL FROM) domains seen with the address, most frequent first"""


@dataclass(frozen=True, slots=True)
class SourceIdentity:
    sender: str
    service: str | None
    service_type: str | None
    matched_by: str | None
    ptr: str | None
    reverse_dns: str | None
    base_domain: str | None
    asn: int | None
    as_name: str | None
    country: str | None


def identify(evidence: SourceEvidence, catalogue: ServiceLookups) -> SourceIdentity:
    return SourceIdentity(*identity_row(evidence.reverse, evidence.network, evidence.spf_include_service,
                                        evidence.dkim_domains, evidence.envelope_domains, catalogue))


def identity_row(reverse: ReverseDns | None, network: NetworkInfo, spf_include_service: Service | None,
                 dkim_domains: Iterable[str], envelope_domains: Iterable[str],
                 catalogue: ServiceLookups) -> IdentityRow:
    """`identify` on the evidence taken apart, for the enrichment stage's hot loop: the same
    rules, without a SourceEvidence in and a SourceIdentity out for every address."""
    if reverse is None:
        ptr = base_domain = outcome = None
        confirmed = False
    else:
        ptr, confirmed, base_domain, outcome = (reverse.ptr, reverse.confirmed, reverse.base_domain,
                                                reverse.outcome)
    asn, as_name, country, _ = network
    service: Service | None = None
    matched_by: str | None = None
    if ptr and confirmed and (service := catalogue.by_ptr(ptr)):
        matched_by = "ptr"
    elif spf_include_service is not None:
        service, matched_by = spf_include_service, "spf_include"
    elif asn is not None and (service := catalogue.by_asn(asn)):
        matched_by = "asn"
    elif as_name and (service := catalogue.by_as_name(as_name)):
        matched_by = "as_name"
    elif service := _first(catalogue.by_dkim_domain, dkim_domains):
        matched_by = "dkim_domain"
    elif service := _first(catalogue.by_envelope_domain, envelope_domains):
        matched_by = "envelope_domain"
    elif ptr and not confirmed and (service := catalogue.by_ptr(ptr)):
        matched_by = "ptr_unconfirmed"
    if service is None:
        return (base_domain or as_name or UNKNOWN, None, None, None, ptr, outcome, base_domain,
                asn, as_name, country)
    return (service.name, service.name, str(service.type), matched_by, ptr, outcome, base_domain,
            asn, as_name, country)


def _first(match: Callable[[str], Service | None], domains: Iterable[str]) -> Service | None:
    for domain in domains:
        if service := match(domain):
            return service
    return None
