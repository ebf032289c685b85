"""Looking up, live, everything a later recomputation will ask of DNS, and recording it.

For a domain: its `_dmarc` record along the RFC 9989 tree walk and at its PSL organisational
domain, whether the name exists (the np policy), its MX, and its SPF record with every name
the record's evaluation can reach without knowing the sender (include and redirect targets,
the hosts of a and mx, exists targets). Names built from the sender's address or IP (%{i},
%{s}, %{l}, ptr) cannot be looked up in advance; a recomputation that needs one says
`not_snapshotted` rather than guessing. For a (d=, selector): the key's TXT record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine

from ingest.dkim_key import dkim_key_name
from ingest.dns_history import Key
from ingest.dns_snapshot_store import record_answers
from ingest.dns_source import DnsAnswer, DnsOutcome, DnsSource, RecordType, domain_name, parse_mx
from ingest.org_domain import DiscoveryMethod, discover_policy, tree_walk
from ingest.spf_record import SpfSyntaxError, fixed_target, parse_record, select_record

log = logging.getLogger(__name__)

SPF_NAME_BUDGET = 40
"""At most this many SPF records are followed from one domain: ten DNS terms per record are
allowed, so a legal tree is far smaller; this only bounds a hostile or looping one."""
MAX_MX_HOSTS = 10
WORKERS = 8


class RecordingSource:
    """A live source that remembers every answer of one snapshot run, each asked once."""

    def __init__(self, live: DnsSource) -> None:
        self._live = live
        self.answers: dict[Key, DnsAnswer] = {}

    def lookup(self, name: str, rdtype: RecordType) -> DnsAnswer:
        key = (domain_name(name), rdtype)
        answer = self.answers.get(key)
        if answer is None:
            answer = self.answers[key] = self._live.lookup(name, rdtype)
        return answer


def gather_domain(domain: str, source: DnsSource) -> None:
    domain = domain_name(domain)
    tree_walk(domain, source)
    discover_policy(domain, source, DiscoveryMethod.PSL)
    discover_policy(domain, source, DiscoveryMethod.TREEWALK)
    source.lookup(domain, "MX")
    gather_spf(domain, source)


def gather_spf(domain: str, source: DnsSource) -> None:
    pending = [domain_name(domain)]
    followed: set[str] = set()
    while pending and len(followed) < SPF_NAME_BUDGET:
        name = pending.pop()
        if name in followed:
            continue
        followed.add(name)
        answer = source.lookup(name, "TXT")
        if answer.outcome is not DnsOutcome.ANSWER:
            continue
        try:
            text = select_record(answer.records)
            record = parse_record(text) if text else None
        except SpfSyntaxError:
            continue
        if record is None:
            continue
        for mechanism in record.mechanisms:
            target = fixed_target(mechanism.target, name)
            if target is None:
                continue
            if mechanism.kind == "include":
                pending.append(target)
            elif mechanism.kind == "a":
                _addresses(target, source)
            elif mechanism.kind == "mx":
                mx = source.lookup(target, "MX")
                for text in mx.records[:MAX_MX_HOSTS]:
                    exchange = parse_mx(text)[1]
                    if exchange != ".":
                        _addresses(exchange, source)
            elif mechanism.kind == "exists":
                source.lookup(target, "A")
        redirect = fixed_target(record.redirect, name) if record.redirect else None
        if redirect:
            pending.append(redirect)


def _addresses(name: str, source: DnsSource) -> None:
    source.lookup(name, "A")
    source.lookup(name, "AAAA")


@dataclass(slots=True)
class SnapshotRun:
    answers: int = 0
    changed: set[Key] = field(default_factory=set)
    changed_domains: set[str] = field(default_factory=set)
    changed_keys: set[tuple[str, str]] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    """Names whose lookup failed (SERVFAIL or timeout): recorded as such, retried next run."""


def take_snapshots(engine: Engine, live: DnsSource, domains: Iterable[str] = (),
                   dkim_keys: Iterable[tuple[str, str]] = (), *, workers: int = WORKERS,
                   at: datetime | None = None) -> SnapshotRun:
    """Look up every domain and key now and add the answers to the history."""
    run = SnapshotRun()
    when = at or datetime.now(UTC)
    domain_list = sorted({domain_name(domain) for domain in domains if domain})
    key_list = sorted({(domain_name(d), selector.lower()) for d, selector in dkim_keys if d and selector})

    def one_domain(domain: str) -> tuple[str, dict[Key, DnsAnswer]]:
        source = RecordingSource(live)
        gather_domain(domain, source)
        return domain, source.answers

    def one_key(pair: tuple[str, str]) -> tuple[tuple[str, str], dict[Key, DnsAnswer]]:
        source = RecordingSource(live)
        try:
            source.lookup(dkim_key_name(pair[1], pair[0]), "TXT")
        except ValueError:
            log.warning("DKIM key name of selector %r at %r is not a DNS name", pair[1], pair[0])
        return pair, source.answers

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        domain_answers = list(pool.map(one_domain, domain_list))
        key_answers = list(pool.map(one_key, key_list))
    with engine.begin() as conn:
        def recorded(answers: dict[Key, DnsAnswer]) -> bool:
            changed = record_answers(conn, answers.values(), when)
            run.answers += len(answers)
            run.failures += [f"{name} {rdtype}: {answer.outcome}"
                             for (name, rdtype), answer in answers.items() if answer.failed]
            run.changed |= changed
            return bool(changed)

        run.changed_domains = {domain for domain, answers in domain_answers if recorded(answers)}
        run.changed_keys = {pair for pair, answers in key_answers if recorded(answers)}
    return run
