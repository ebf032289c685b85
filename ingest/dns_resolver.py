"""The live `DnsSource`: dnspython asking real name servers.

Every failure dnspython can report is mapped onto one `DnsOutcome`, so the evaluators never see
a dnspython exception and a recorded answer looks exactly like a live one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import NamedTuple

import dns.exception
import dns.name
import dns.nameserver
import dns.rdata
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.resolver

from ingest.dns_source import DnsAnswer, DnsOutcome, RecordType, domain_name, mx_record, record_name

DNS_PORT = 53


class Nameserver(NamedTuple):
    host: str
    port: int


def parse_nameservers(setting: str) -> list[Nameserver]:
    """Read a setting such as "192.0.2.53, 127.0.0.1:5353, [::1]:53"; blanks are ignored."""
    return [parse_nameserver(item) for item in setting.split(",") if item.strip()]


def parse_nameserver(text: str) -> Nameserver:
    """One "host", "host:port", "IPv6" or "[IPv6]:port"; the host must be an IP address.

    Only addresses are accepted because resolving a name server's own name would need a
    resolver, and a wrong guess there would silently send every query elsewhere.
    """
    item = text.strip()
    port = DNS_PORT
    if item.startswith("["):
        host, bracket, rest = item[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"name server {text!r}: write an IPv6 address with a port as [::1]:53")
        if rest:
            port = _port(text, rest[1:])
    elif item.count(":") == 1:
        host, _, port_text = item.partition(":")
        port = _port(text, port_text)
    else:
        host = item
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"name server {text!r}: {host!r} is not an IP address") from None
    return Nameserver(str(address), port)


def _port(text: str, port_text: str) -> int:
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"name server {text!r}: {port_text!r} is not a port number")
    return int(port_text)


class LiveResolver:
    """Queries the given name servers (host or host:port strings), else the system's.

    `timeout` bounds one attempt at one server, `lifetime` the whole query with its retries;
    running out of either is a TIMEOUT, never "no record".
    """

    def __init__(self, nameservers: Iterable[str] | None = None, *, timeout: float = 2.0,
                 lifetime: float = 5.0) -> None:
        servers = [parse_nameserver(text) for text in nameservers or ()]
        self._resolver = dns.resolver.Resolver(configure=not servers)
        if servers:
            self._resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)
                                          for host, port in servers]
        self._resolver.timeout = timeout
        self._resolver.lifetime = lifetime

    def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
        """Ask for `name` exactly as written (no search list); raises ValueError only for a
        name DNS cannot carry (a label over 63 octets, an empty label, over 255 octets)."""
        qname = query_name(name)
        shown = domain_name(name)
        try:
            answer = self._resolver.resolve(qname, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            return DnsAnswer(shown, rdtype, DnsOutcome.NXDOMAIN)
        except dns.resolver.NoAnswer:
            return DnsAnswer(shown, rdtype, DnsOutcome.NODATA)
        except dns.exception.Timeout:  # includes LifetimeTimeout
            return DnsAnswer(shown, rdtype, DnsOutcome.TIMEOUT)
        except (dns.resolver.NoNameservers, dns.resolver.YXDOMAIN):
            # every server answered SERVFAIL, REFUSED or garbage: the name's state is unknown
            return DnsAnswer(shown, rdtype, DnsOutcome.SERVFAIL)
        rrset = answer.rrset
        if rrset is None or not len(rrset):
            return DnsAnswer(shown, rdtype, DnsOutcome.NODATA)
        records = tuple(_record_text(rdata) for rdata in rrset)
        return DnsAnswer(shown, rdtype, DnsOutcome.ANSWER, records, rrset.ttl)


def query_name(name: str) -> dns.name.Name:
    """Build the absolute name label by label, so that SPF's odd but legal names (spaces,
    '%', ':' or '/' from macro expansion) are sent as they are, not parsed as zone-file text."""
    text = domain_name(name)
    if text == ".":
        return dns.name.root
    try:
        return dns.name.Name([label.encode() for label in text.split(".")] + [b""])
    except dns.name.NameTooLong:
        raise ValueError(f"{name!r} is longer than 255 octets") from None
    except (dns.name.LabelTooLong, dns.name.EmptyLabel) as error:
        raise ValueError(f"{name!r} is not a valid DNS name: {error}") from None


def _record_text(rdata: dns.rdata.Rdata) -> str:
    match rdata:
        case dns.rdtypes.IN.A.A() | dns.rdtypes.IN.AAAA.AAAA():
            return str(ipaddress.ip_address(rdata.address))
        case dns.rdtypes.ANY.TXT.TXT():
            return b"".join(rdata.strings).decode("utf-8", "replace")
        case dns.rdtypes.ANY.MX.MX():
            return mx_record(rdata.preference, _name_text(rdata.exchange))
        case dns.rdtypes.ANY.PTR.PTR():
            return _name_text(rdata.target)
    raise ValueError(f"no text form for {rdata.rdtype!r} records")


def _name_text(name: dns.name.Name) -> str:
    """A name as text without zone-file escaping, so it can be looked up again as is."""
    return record_name(".".join(label.decode("utf-8", "replace") for label in name.labels))
