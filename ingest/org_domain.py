"""Organisational Domains and DMARC policy discovery, the RFC 7489 way and the RFC 9989 way.

A report's verdicts were reached with one of two notions of "the organisation behind a name":
RFC 7489's Public Suffix List or RFC 9989's DNS Tree Walk (RFC 9990 reports say which, in
`discovery_method`). They disagree for real names (a private suffix whose owner publishes
`psd=n`, a PSO publishing `psd=y`), so recomputing a report means using the method it used,
and both live here side by side.

DNS is only ever reached through a `DnsSource`, so a walk made today against the live resolver
and one replayed from a snapshot run the same code. DMARC records are recognised here with a
deliberately small check (version tag and `psd` only) so that discovery does not depend on the
full record parser: which record applies is decided before anyone needs its other tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, lru_cache
from typing import Final, Literal

import publicsuffixlist
from publicsuffixlist import PublicSuffixList

from ingest.dns_source import DnsAnswer, DnsOutcome, DnsSource, RecordType, domain_name

PsdFlag = Literal["y", "n", "u"]
"""A record's `psd` tag (RFC 9989 §4.7); "u", the default, also stands for a missing or bad value."""

AppliesAs = Literal["domain", "subdomain", "none"]
"""Which policy of the applied record is in force: `p` ("domain"), `sp`/`np` ("subdomain")."""

PSL_VERSION: Final[str] = publicsuffixlist.__version__
"""The list shipped in the package is dated by its version; a PSL verdict is only reproducible
with the same list, so results computed with `psl_org_domain` should be stored alongside it."""

MAX_WALK_NAMES: Final = 8
"""RFC 9989 §4.10: a walk never asks about more than eight names, however long the start name."""

_PSL_CACHE_SIZE: Final = 1 << 18
_MAX_NAME_OCTETS: Final = 253
_MAX_LABEL_OCTETS: Final = 63
_EXISTENCE_TYPES: Final[tuple[RecordType, ...]] = ("A", "AAAA", "MX")
_DMARC_VERSION: Final = re.compile(r"\s*v\s*=\s*dmarc1\s*(?:;|\Z)", re.IGNORECASE | re.ASCII)
_IDNA_DOTS: Final = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


class DiscoveryMethod(StrEnum):
    """How Organisational Domains were found; the values are RFC 9990's `discovery_method` words."""

    PSL = "psl"
    TREEWALK = "treewalk"


# --- RFC 7489: the Public Suffix List -------------------------------------------------------------


@cache
def _psl() -> PublicSuffixList:
    """Parsing the list costs a noticeable fraction of a second, so it is done once per process and
    only when first needed; two threads racing here at worst parse two identical copies."""
    return PublicSuffixList()


def psl_org_domain(name: str) -> str:
    """The RFC 7489 §3.2 Organisational Domain: the longest matching public suffix plus one label.

    The whole list is used, private section included (e.g. `github.io`), and an unknown TLD counts
    as a public suffix, as the list's own "*" default rule says. A name with no registrable part
    (a public suffix itself, a bare TLD, an empty label) is its own Organisational Domain, so that
    a comparison of two such names still means "same name". Unicode and A-label spellings are
    matched alike, even when mixed in one name, but the answer keeps the spelling it was given.
    """
    return _psl_org_domain(domain_name(name.translate(_IDNA_DOTS)))


@lru_cache(maxsize=_PSL_CACHE_SIZE)
def _psl_org_domain(name: str) -> str:
    """Memoised because recomputing a large report set asks about the same few thousand names
    millions of times; keyed on the normalised name so spelling variants share an entry."""
    labels = name.split(".")
    registrable = _psl().privatesuffix(".".join(_a_label(label) for label in labels))
    if registrable is None:
        return name
    return ".".join(labels[-(registrable.count(".") + 1):])


def _a_label(label: str) -> str:
    """Match on one spelling: the list holds both, but a name mixing U-labels and A-labels would
    otherwise match neither (e.g. `例子.公司.xn--j6w193g`)."""
    if label.isascii():
        return label
    try:
        encoded = label.encode("idna").decode("ascii")
    except UnicodeError:
        return label  # not valid IDNA: no rule can match it, so it is left to count as unknown
    return label if "." in encoded else encoded  # keep label counts aligned with the original


# --- RFC 9989: the DNS Tree Walk ------------------------------------------------------------------


def tree_walk_names(name: str) -> list[str]:
    """The names a §4.10 walk asks about, longest first: the name, then (from 8 labels up) a jump to
    its last 7 labels, then one label less each time down to the TLD; never more than eight.

    A name with an empty label is not a domain name and yields no names at all.
    """
    start = domain_name(name)
    labels = start.split(".")
    if "" in labels:
        return []
    shorter = len(labels) - 1 if len(labels) < MAX_WALK_NAMES else MAX_WALK_NAMES - 1
    return [start, *(".".join(labels[-count:]) for count in range(shorter, 0, -1))]


@dataclass(frozen=True, slots=True)
class FoundRecord:
    """A name where the walk found exactly one DMARC record; the text is kept whole so the caller
    can parse the tags it needs (p, sp, np, rua...) with the full record parser."""

    domain: str
    text: str
    psd: PsdFlag


@dataclass(frozen=True, slots=True)
class TreeWalk:
    """What one walk saw, kept so that the Organisational Domain can be explained and re-derived.

    `queried` and `failed` hold the `_dmarc.<name>` names as asked; a failed name is treated as
    having no record, which is why any failure makes the outcome `uncertain` rather than wrong.
    """

    start: str
    records: tuple[FoundRecord, ...]
    queried: tuple[str, ...]
    failed: tuple[str, ...]
    org_domain: str

    @property
    def uncertain(self) -> bool:
        """A record hidden by a failed query could have stopped the walk or moved the Organisational
        Domain, so the result stands only until the same walk succeeds everywhere (temperror)."""
        return bool(self.failed)


def tree_walk(name: str, dns: DnsSource) -> TreeWalk:
    """Walk §4.10 from `name` and pick its Organisational Domain by the §4.10.2 rules.

    The walk goes on past a failed query: the records above it still bound the answer, and
    `uncertain` says it needs confirming. It stops at the first record with `psd=y` or `psd=n`.
    """
    start = domain_name(name)
    records: list[FoundRecord] = []
    queried: list[str] = []
    failed: list[str] = []
    for target in tree_walk_names(start):
        qname = f"_dmarc.{target}"
        if not _carriable(qname):
            continue  # DNS cannot carry the name, so there is certainly no record to find there
        answer = dns.lookup(qname, "TXT")
        queried.append(qname)
        if answer.failed:
            failed.append(qname)
            continue
        found = _single_record(target, answer)
        if found is None:
            continue
        records.append(found)
        if found.psd != "u":
            break
    return TreeWalk(start, tuple(records), tuple(queried), tuple(failed), _walk_org_domain(start, records))


def _walk_org_domain(start: str, records: list[FoundRecord]) -> str:
    """§4.10.2 over the records found, longest name first."""
    for record in records:
        if record.psd == "n":
            return record.domain
        if record.psd == "y" and record.domain != start:
            # the PSD's child on the way to the start: that label need not have been asked about
            # (the jump from 8+ labels skips names), so it is cut from the start name itself
            return ".".join(start.split(".")[-(_label_count(record.domain) + 1):])
    if records:
        return records[-1].domain  # fewest labels: the walk only ever shortens the name
    return start


def _single_record(domain: str, answer: DnsAnswer) -> FoundRecord | None:
    """§4.10 steps 2 and 6: other TXT records are not DMARC's business, and several DMARC records
    at one name cancel out, since nobody can say which one the owner meant."""
    texts = [text for text in answer.records if _is_dmarc(text)]
    if len(texts) != 1:
        return None
    return FoundRecord(domain, texts[0], _psd_flag(texts[0]))


def _is_dmarc(text: str) -> bool:
    """The version tag must come first. Case and whitespace are tolerated, as by
    `dmarc_record.is_dmarc_record`, so that discovery and the record parser agree on which names
    have a record (the parser then flags a version not spelt exactly "DMARC1", which RFC 9989
    receivers would ignore)."""
    return _DMARC_VERSION.match(text) is not None


def _psd_flag(text: str) -> PsdFlag:
    """The first `psd` tag's value; anything else is the default "u", because §4.7 discards a bad
    tag value in favour of the default rather than the whole record."""
    for tag in text.split(";")[1:]:
        tag_name, equals, value = tag.partition("=")
        if equals and tag_name.strip().lower() == "psd":
            flag = value.strip().lower()
            return "y" if flag == "y" else "n" if flag == "n" else "u"
    return "u"


def _label_count(name: str) -> int:
    return name.count(".") + 1


def _carriable(name: str) -> bool:
    """Whether DNS can carry the name at all (the live resolver refuses the rest with ValueError);
    names are sent as UTF-8, so lengths are counted in octets."""
    labels = [label.encode() for label in name.split(".")]
    return (sum(len(label) + 1 for label in labels) - 1 <= _MAX_NAME_OCTETS
            and all(0 < len(label) <= _MAX_LABEL_OCTETS for label in labels))


# --- Policy discovery -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyDiscovery:
    """Which DMARC record governs mail from an Author Domain, and which of its policies applies.

    `author_exists` matters only for a subdomain policy (`np` replaces `sp` for a name that does not
    exist, RFC 9989 §4.10.1); it is True for a record at the Author Domain (its `_dmarc` child
    exists, so it does too), False after NXDOMAIN, and None when not asked or not known.
    """

    author_domain: str
    policy_domain: str | None
    record_text: str | None
    applies_as: AppliesAs
    author_exists: bool | None
    org_domain: str
    method: DiscoveryMethod
    uncertain: bool


def discover_policy(author_domain: str, dns: DnsSource,
                    method: DiscoveryMethod = DiscoveryMethod.TREEWALK) -> PolicyDiscovery:
    """Find the applicable record as RFC 7489 §6.6.3 (PSL) or RFC 9989 §4.10.1 (tree walk) does.

    PSL: the Author Domain's record, else its Organisational Domain's. Tree walk: the Author
    Domain's, else the Organisational Domain's, else the PSD's (a `psd=y` record), all from one
    walk, which also yields the Organisational Domain needed for alignment. `uncertain` is set by
    any failed query, since a record it hid could have changed the outcome.
    """
    author = domain_name(author_domain)
    if method is DiscoveryMethod.PSL:
        org, candidates, failures = _psl_candidates(author, dns)
    else:
        walk = tree_walk(author, dns)
        org, failures = walk.org_domain, bool(walk.failed)
        candidates = _walk_candidates(author, walk)
    if not candidates:
        return PolicyDiscovery(author, None, None, "none", None, org, method, failures)
    applied = candidates[0]
    if applied.domain == author:
        return PolicyDiscovery(author, author, applied.text, "domain", True, org, method, failures)
    exists = _author_exists(author, dns)
    return PolicyDiscovery(author, applied.domain, applied.text, "subdomain", exists, org, method,
                           failures or exists is None)


def _psl_candidates(author: str, dns: DnsSource) -> tuple[str, list[FoundRecord], bool]:
    """RFC 7489 asks at most two names, and only the second when the first has no record; a failed
    first query does not stop it, as the Organisational Domain's record is still the best guess."""
    org = psl_org_domain(author)
    failed = False
    for target in dict.fromkeys((author, org)):
        qname = f"_dmarc.{target}"
        if not _carriable(qname):
            continue
        answer = dns.lookup(qname, "TXT")
        failed = failed or answer.failed
        found = _single_record(target, answer)
        if found is not None:
            return org, [found], failed
    return org, [], failed


def _walk_candidates(author: str, walk: TreeWalk) -> list[FoundRecord]:
    """The walk's records in §4.10.1 order of preference: Author Domain, Organisational Domain, PSD.
    Records found between them are passed over, as the RFC's list leaves no place for them."""
    by_domain = {record.domain: record for record in walk.records}
    psd = next((record.domain for record in walk.records if record.psd == "y"), None)
    return [by_domain[domain] for domain in dict.fromkeys((author, walk.org_domain, psd))
            if domain is not None and domain in by_domain]


def _author_exists(author: str, dns: DnsSource) -> bool | None:
    """RFC 8020: NXDOMAIN for any type means the name does not exist, while an answer or NODATA
    means it does, so the first conclusive reply settles it. None when every query failed."""
    if not _carriable(author):
        return False
    for rdtype in _EXISTENCE_TYPES:
        answer = dns.lookup(author, rdtype)
        if answer.outcome is DnsOutcome.NXDOMAIN:
            return False
        if not answer.failed:
            return True
    return None


def org_domain(name: str, method: DiscoveryMethod, dns: DnsSource | None = None) -> str:
    """The Organisational Domain by either method, for alignment checks that follow a report's own
    `discovery_method`; only the tree walk needs DNS."""
    if method is DiscoveryMethod.PSL:
        return psl_org_domain(name)
    if dns is None:
        raise ValueError("the tree walk needs a DnsSource to find an Organisational Domain")
    return tree_walk(name, dns).org_domain
