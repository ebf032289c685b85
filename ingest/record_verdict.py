"""Rua's own verdict on a record, judged against the DNS that was live during its report.

The reporter's word on whether each SPF check and DKIM signature passed is taken as given (a
signature cannot be checked without the message), but everything that depends on DNS and on
the published policy is worked out again: alignment of each identifier under the report's
adkim/aspf, the DMARC result, SPF of the source address against the envelope domain's record
of the time, and the state of each signing key of the time. Where Rua and the reporter
disagree, or the DNS of the time explains a failure, a reason code says so:

- `reporter_dkim_fail_aligned_pass`, `reporter_dkim_pass_unaligned`,
  `reporter_spf_fail_aligned_pass`, `reporter_spf_pass_unaligned`: the reporter's
  policy_evaluated verdict disagrees with its own authentication results and the policy;
- `spf_result_differs`: SPF of the source against the record of the time is not what the
  reporter saw; `spf_record_changed_since`: that SPF record has changed since;
- `dkim_key_missing`, `dkim_key_revoked`, `dkim_key_malformed`, `dkim_key_weak`: the state
  of a signature's key at the time; `dkim_key_changed_since`: the key was replaced since;
- `policy_differs_from_dns`: the policy the report says was published is not what DNS held;
- `no_snapshot`: a needed answer was first recorded after the report's dates and was used
  in their place; `not_snapshotted`: a needed name was never looked up;
- `dns_temperror`: DNS failed (SERVFAIL or timeout) for a needed name at the time.

Results are memoised per (question, DNS epoch), which is what makes a million records a
matter of seconds: the same few senders and keys recur across a domain's records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from ingest.dkim_key import DkimKeyState, dkim_key_from_answer, dkim_key_name
from ingest.dmarc_record import is_dmarc_record, parse_dmarc_record
from ingest.dns_history import DnsHistory, HistorySource
from ingest.dns_source import DnsOutcome, domain_name
from ingest.org_domain import DiscoveryMethod, psl_org_domain, tree_walk
from ingest.record_class import FORWARDING_SOURCE_TYPES, ClassEvidence, RecordClass, classify
from ingest.spf_compiled import CompiledSpf, client_number, compile_spf
from ingest.spf_evaluator import check_host, client_address, usable_domain
from ingest.spf_record import Verdict as SpfVerdict

MEMO_LIMIT = 50_000
"""Entries per memo table before it is emptied: memory stays bounded over any number of
records, while the senders that recur are back in the table within a batch."""
PROBLEM_KEY_STATES = {DkimKeyState.MISSING, DkimKeyState.REVOKED, DkimKeyState.MALFORMED,
                      DkimKeyState.WEAK}


@dataclass(frozen=True, slots=True)
class ReportPolicy:
    """What a record's report says about the policy it was judged under."""

    report_id: int
    policy_domain: str | None
    p: str | None
    adkim: str | None
    aspf: str | None
    discovery_method: str | None
    date_begin: datetime | None
    date_end: datetime | None
    ingested_at: datetime

    @property
    def method(self) -> DiscoveryMethod:
        return DiscoveryMethod.TREEWALK if self.discovery_method == "treewalk" else DiscoveryMethod.PSL

    @property
    def judged_at(self) -> datetime:
        """The middle of the report's range: its mail was sent somewhere in it."""
        if self.date_begin and self.date_end and self.date_end >= self.date_begin:
            return self.date_begin + (self.date_end - self.date_begin) / 2
        return self.date_end or self.date_begin or self.ingested_at


class DkimAuth(NamedTuple):
    domain: str | None
    selector: str | None
    result: str | None


class SpfAuth(NamedTuple):
    domain: str | None
    scope: str | None
    result: str | None


class RecordFacts(NamedTuple):
    """What of a record its verdict depends on: two records with equal facts in reports of
    the same policy and DNS epoch get the same verdict, which is why it is hashable (and a
    tuple: a million of them are built and hashed in one recomputation)."""

    source_ip: str | None
    header_from: str | None
    envelope_from: str | None
    policy_dkim: str | None
    policy_spf: str | None
    dkim: tuple[DkimAuth, ...] = ()
    spf: tuple[SpfAuth, ...] = ()
    override_reasons: tuple[str, ...] = ()
    source_type: str | None = None
    """the source's catalogue service type, when sender identification named one"""


@dataclass(frozen=True, slots=True)
class SignatureVerdict:
    domain: str | None
    selector: str | None
    result: str | None
    aligned: bool
    key_state: str


@dataclass(frozen=True, slots=True)
class Verdict:
    record_class: RecordClass
    dmarc: str
    spf_aligned: bool
    dkim_aligned: bool
    spf_result: str | None
    own_spf_result: str | None
    signatures: tuple[SignatureVerdict, ...]
    reasons: tuple[str, ...]
    org_domain: str | None
    discovery_method: str


class _Looked(NamedTuple):
    """What a memoised DNS-backed answer needed, for the reason codes."""

    value: str | None
    borrowed: bool = False
    missing: bool = False
    failed: bool = False
    changed_since: bool = False


class RecordJudge:
    """Judges records against one loaded `DnsHistory`; keep one per recomputation run."""

    def __init__(self, history: DnsHistory) -> None:
        self.history = history
        self._spf: dict[tuple[str, str, int], _Looked] = {}
        self._usable: dict[str, bool] = {}
        self._trees: dict[tuple[str, int, int], tuple[CompiledSpf | None, _Looked]] = {}
        self._keys: dict[tuple[str, int], tuple[DkimKeyState, _Looked]] = {}
        self._walks: dict[tuple[str, int], _Looked] = {}
        self._policies: dict[tuple[str, int, str | None], bool] = {}
        self._verdicts: dict[tuple[object, ...], dict[RecordFacts, Verdict]] = {}

    def judge_report(self, policy: ReportPolicy, records: Sequence[RecordFacts]) -> list[Verdict]:
        """The verdicts of a report's records, in order; all are judged as of `judged_at`."""
        at = policy.judged_at
        epoch = self.history.epoch(at)
        source = self.history.source_at(at)
        org = self._org_function(policy.method, source, epoch)
        policy_reasons = self._policy_reasons(policy, source, epoch)
        scope = (epoch, policy.policy_domain, policy.p, policy.adkim, policy.aspf, policy.method)
        memo = self._verdicts.setdefault(scope, {})
        if len(memo) > MEMO_LIMIT:  # one-off sources never repeat: bound the memory, keep the speed
            memo.clear()
        if len(self._spf) > MEMO_LIMIT:
            self._spf.clear()
        verdicts = []
        for record in records:
            verdict = memo.get(record)
            if verdict is None:
                # the address matters only through SPF: records that differ in nothing else (one-off
                # sources failing alike) share the rest of the judgement
                author, envelope = _identities(policy, record)
                spf_check = self._spf_result(record.source_ip, envelope, source, epoch)
                own_check = spf_check if envelope == author else \
                    self._spf_result(record.source_ip, author, source, epoch)
                key = (record._replace(source_ip=None), spf_check, own_check)
                verdict = memo.get(key)  # type: ignore[call-overload]
                if verdict is None:
                    verdict = self._judge(policy, record, source, org, policy_reasons, author, envelope,
                                          spf_check, own_check, epoch)
                    memo[key] = verdict  # type: ignore[index]
                memo[record] = verdict
            verdicts.append(verdict)
        return verdicts

    # -- one record ----------------------------------------------------------------------------

    def _judge(self, policy: ReportPolicy, record: RecordFacts, source: HistorySource,
               org: Callable[[str], _Looked], policy_reasons: tuple[str, ...], author: str | None,
               envelope: str | None, spf_check: _Looked, own_check: _Looked, epoch: int) -> Verdict:
        reasons: list[str] = list(policy_reasons)
        looks: list[_Looked] = []
        author_org = org(author) if author else _Looked(None)
        looks.append(author_org)

        def aligned(domain: str | None, mode: str | None) -> bool:
            if not domain or not author:
                return False
            if domain == author:
                return True
            if mode == "s" or not _may_share_org(domain, author):
                return False
            other = org(domain)
            looks.append(other)
            return other.value is not None and other.value == author_org.value

        # SPF: the reporter's mfrom result when it gave one, else Rua's own from the snapshots
        mfrom = _mfrom(record)
        looks.append(own_check)
        reporter_spf = (mfrom[0].result or "").lower() if mfrom else None
        spf_pass = (reporter_spf or spf_check.value) == "pass"
        spf_aligned = spf_pass and aligned(envelope, policy.aspf)
        if reporter_spf and spf_check.value and spf_check.value != reporter_spf:
            reasons.append("spf_result_differs")
            if spf_check.changed_since:
                reasons.append("spf_record_changed_since")
        if aligned(envelope, policy.aspf):  # an unaligned envelope's SPF changes no verdict
            looks.append(spf_check)

        signatures: list[SignatureVerdict] = []
        dkim_aligned = own_dkim_pass = aligned_dkim_failed = False
        for auth in record.dkim:
            domain = _domain(auth.domain)
            result = (auth.result or "").lower() or None
            is_aligned = aligned(domain, policy.adkim)
            state, looked = self._key_state(domain, auth.selector, source, epoch)
            looks.append(looked)
            signatures.append(SignatureVerdict(domain, auth.selector, result, is_aligned, str(state)))
            if result == "pass":
                dkim_aligned |= is_aligned
                own_dkim_pass |= bool(domain and author and author_org.value
                                      and _may_share_org(domain, author)
                                      and org(domain).value == author_org.value)
            elif is_aligned:
                aligned_dkim_failed = True
            if state in PROBLEM_KEY_STATES:
                reasons.append(f"dkim_key_{state}")
            if looked.changed_since and result != "pass":
                reasons.append("dkim_key_changed_since")

        uncertain = any(look.failed for look in looks)
        dmarc = "pass" if spf_aligned or dkim_aligned else ("temperror" if uncertain or _temperror(record)
                                                            else "fail")
        reasons += _reporter_disagreements(record, spf_aligned, dkim_aligned)
        if any(look.borrowed for look in looks):
            reasons.append("no_snapshot")
        if any(look.missing for look in looks):
            reasons.append("not_snapshotted")
        if uncertain:
            reasons.append("dns_temperror")
        evidence = ClassEvidence(
            dmarc_pass=dmarc == "pass" or (dmarc == "temperror" and _reporter_pass(record)),
            spf_aligned=spf_aligned, dkim_aligned=dkim_aligned,
            spf_result=reporter_spf or spf_check.value, own_spf_pass=own_check.value == "pass",
            own_dkim_pass=own_dkim_pass, aligned_dkim_failed=aligned_dkim_failed,
            override_reasons=frozenset(reason.lower() for reason in record.override_reasons),
            known_forwarder=record.source_type in FORWARDING_SOURCE_TYPES)
        return Verdict(
            record_class=classify(evidence), dmarc=dmarc,
            spf_aligned=spf_aligned, dkim_aligned=dkim_aligned, spf_result=spf_check.value,
            own_spf_result=own_check.value, signatures=tuple(signatures),
            reasons=tuple(dict.fromkeys(reasons)), org_domain=author_org.value,
            discovery_method=str(policy.method))

    # -- memoised DNS-backed facts -------------------------------------------------------------

    def _org_function(self, method: DiscoveryMethod, source: HistorySource,
                      epoch: int) -> Callable[[str], _Looked]:
        if method is DiscoveryMethod.PSL:
            return lambda name: _Looked(psl_org_domain(name))

        def walked(name: str) -> _Looked:
            key = (name, epoch)
            if key not in self._walks:
                probe = self.history.source_at(source.at)
                walk = tree_walk(name, probe)
                if probe.missing:  # never snapshotted: the public suffix list is the best guess
                    self._walks[key] = _Looked(psl_org_domain(name), missing=True)
                else:
                    self._walks[key] = _Looked(walk.org_domain, borrowed=bool(probe.borrowed),
                                               failed=walk.uncertain)
            return self._walks[key]
        return walked

    def _spf_result(self, ip: str | None, domain: str | None, source: HistorySource, epoch: int) -> _Looked:
        if not ip or not domain:
            return _Looked(None)
        if domain not in self._usable:
            self._usable[domain] = usable_domain(domain)
        if not self._usable[domain]:
            return _Looked(None)
        if not self.history.has(domain, "TXT"):
            return _Looked(None, missing=True)
        key = (ip, domain, epoch)
        found = self._spf.get(key)
        if found is None:
            number = client_number(ip)
            found = self._spf[key] = _Looked(None) if number is None else \
                self._evaluate_spf(ip, number, domain, source, epoch)
        return found

    def _evaluate_spf(self, ip: str, number: tuple[int, int], domain: str, source: HistorySource,
                      epoch: int) -> _Looked:
        """From the domain's compiled tree when it compiles, else one RFC 7208 evaluation."""
        tree_key = (domain, epoch, number[0])
        if tree_key not in self._trees:
            probe = self.history.source_at(source.at)
            tree = compile_spf(domain, probe, number[0])
            self._trees[tree_key] = (tree, self._spf_flags(domain, probe))
        tree, flags = self._trees[tree_key]
        if tree is not None:
            result = tree.result(*number)
            return flags._replace(value=str(result), failed=result is SpfVerdict.TEMPERROR)
        probe = self.history.source_at(source.at)
        result = check_host(probe, client_address(ip), domain, f"postmaster@{domain}").result
        return self._spf_flags(domain, probe)._replace(
            value=str(result), failed=any(interval.answer().failed for interval in probe.used.values()))

    def _spf_flags(self, domain: str, probe: HistorySource) -> _Looked:
        then = probe.used.get((domain, "TXT"))
        latest = self.history.latest(domain, "TXT")
        return _Looked(None, borrowed=bool(probe.borrowed), missing=bool(probe.missing),
                       changed_since=then is not None and latest is not None and then != latest)

    def _key_state(self, domain: str | None, selector: str | None, source: HistorySource,
                   epoch: int) -> tuple[DkimKeyState, _Looked]:
        if not domain or not selector:
            return DkimKeyState.UNKNOWN, _Looked(None)
        try:
            name = dkim_key_name(selector, domain)
        except ValueError:
            return DkimKeyState.MALFORMED, _Looked(None)
        if not self.history.has(name, "TXT"):
            return DkimKeyState.UNKNOWN, _Looked(None, missing=True)
        key = (name, epoch)
        if key not in self._keys:
            found = self.history.interval_at(name, "TXT", source.at)
            assert found is not None
            interval, borrowed = found
            latest = self.history.latest(name, "TXT")
            state = dkim_key_from_answer(interval.answer()).state
            self._keys[key] = (state, _Looked(str(state), borrowed=borrowed, failed=interval.answer().failed,
                                              changed_since=latest is not None and latest != interval))
        return self._keys[key]

    def _policy_reasons(self, policy: ReportPolicy, source: HistorySource, epoch: int) -> tuple[str, ...]:
        domain = _domain(policy.policy_domain)
        if not domain or not policy.p:
            return ()
        key = (domain, epoch, policy.p.lower())
        if key not in self._policies:
            found = self.history.interval_at(f"_dmarc.{domain}", "TXT", source.at)
            differs = False
            if found is not None and found[0].outcome is DnsOutcome.ANSWER:
                texts = [text for text in found[0].records if is_dmarc_record(text)]
                if len(texts) == 1:
                    record, _ = parse_dmarc_record(texts[0])
                    differs = record is not None and record.p is not None and record.p != policy.p.lower()
            self._policies[key] = differs
        return ("policy_differs_from_dns",) if self._policies[key] else ()


def _mfrom(record: RecordFacts) -> list[SpfAuth]:
    return [auth for auth in record.spf if (auth.scope or "mfrom") == "mfrom"]


def _identities(policy: ReportPolicy, record: RecordFacts) -> tuple[str | None, str | None]:
    """The author domain (header_from) and the domain SPF was checked for (the reporter's mfrom
    domain, else envelope_from's, else the author's, as receivers fall back)."""
    author = _domain(record.header_from) or _domain(policy.policy_domain)
    mfrom = _mfrom(record)
    envelope = (_domain(mfrom[0].domain) if mfrom else None) or _mail_domain(record.envelope_from) or author
    return author, envelope


def _reporter_disagreements(record: RecordFacts, spf_aligned: bool, dkim_aligned: bool) -> list[str]:
    found = []
    pairs = (("dkim", record.policy_dkim, dkim_aligned), ("spf", record.policy_spf, spf_aligned))
    for name, theirs, ours in pairs:
        verdict = (theirs or "").lower()
        if verdict == "fail" and ours:
            found.append(f"reporter_{name}_fail_aligned_pass")
        elif verdict == "pass" and not ours:
            found.append(f"reporter_{name}_pass_unaligned")
    return found


def _may_share_org(one: str, other: str) -> bool:
    """Names that differ in their last two labels never share an organisational domain (no
    method makes a TLD one), so neither needs looking up; the same rule bounds what is watched."""
    return one.split(".")[-2:] == other.split(".")[-2:]


def _reporter_pass(record: RecordFacts) -> bool:
    return "pass" in ((record.policy_dkim or "").lower(), (record.policy_spf or "").lower())


def _temperror(record: RecordFacts) -> bool:
    results = [auth.result for auth in record.dkim] + [auth.result for auth in record.spf]
    return any((result or "").lower() == "temperror" for result in results)


def _domain(value: str | None) -> str | None:
    if not value:
        return None
    name = domain_name(value.strip())
    return name or None


def _mail_domain(address: str | None) -> str | None:
    if not address:
        return None
    return _domain(address.rpartition("@")[2])
