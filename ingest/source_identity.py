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

from ingest.ip_network_db import NetworkInfo
from ingest.reverse_dns import ReverseDns
from ingest.sender_catalogue import SenderCatalogue, Service

UNKNOWN = "unknown"


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


def identify(evidence: SourceEvidence, catalogue: SenderCatalogue) -> SourceIdentity:
    reverse, network = evidence.reverse, evidence.network
    ptr = reverse.ptr if reverse else None
    confirmed = bool(reverse and reverse.confirmed)
    service, matched_by = _catalogue_match(evidence, catalogue, ptr, confirmed)
    base_domain = reverse.base_domain if reverse else None
    sender = service.name if service is not None else base_domain or network.as_name or UNKNOWN
    return SourceIdentity(
        sender=sender, service=service.name if service else None,
        service_type=str(service.type) if service else None, matched_by=matched_by,
        ptr=ptr, reverse_dns=reverse.outcome if reverse else None, base_domain=base_domain,
        asn=network.asn, as_name=network.as_name, country=network.country)


def _catalogue_match(evidence: SourceEvidence, catalogue: SenderCatalogue, ptr: str | None,
                     confirmed: bool) -> tuple[Service | None, str | None]:
    if ptr and confirmed and (service := catalogue.by_ptr(ptr)):
        return service, "ptr"
    if evidence.spf_include_service is not None:
        return evidence.spf_include_service, "spf_include"
    network = evidence.network
    if network.asn is not None and (service := catalogue.by_asn(network.asn)):
        return service, "asn"
    if network.as_name and (service := catalogue.by_as_name(network.as_name)):
        return service, "as_name"
    if service := _first(catalogue.by_dkim_domain, evidence.dkim_domains):
        return service, "dkim_domain"
    if service := _first(catalogue.by_envelope_domain, evidence.envelope_domains):
        return service, "envelope_domain"
    if ptr and not confirmed and (service := catalogue.by_ptr(ptr)):
        return service, "ptr_unconfirmed"
    return None, None


def _first(match: Callable[[str], Service | None], domains: Iterable[str]) -> Service | None:
    for domain in domains:
        if service := match(domain):
            return service
    return None
