"""Stored TLS reports: the filtered list, one report in full, and totals per policy domain.

A report is selected when its date range overlaps the window [since, until) (as aggregate
reports are), it comes from one of the named organisations, and one of its policies is for
one of the named domains. Lists show conflicting copies, flagged, since that is where they
are reviewed; the per-domain totals leave them out, since they restate a first copy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.engine import Connection

from app.models import Original, table_of
from app.record_filter import Window
from app.tls_models import TlsFailureRow, TlsPolicyRow, TlsReportOrigin, TlsReportRow

REPORTS = table_of(TlsReportRow)
POLICIES = table_of(TlsPolicyRow)
FAILURES = table_of(TlsFailureRow)
ORIGINS = table_of(TlsReportOrigin)
ORIGINALS = table_of(Original)


@dataclass(frozen=True, slots=True)
class TlsFilter:
    window: Window = field(default_factory=Window)
    domains: tuple[str, ...] = ()
    organization_keys: tuple[str, ...] = ()

    def report_conditions(self) -> list[ColumnElement[bool]]:
        """On tls_report: the window, the reporters, and a policy for one of the domains."""
        conditions = self._period_and_reporter()
        if self.domains:
            conditions.append(exists().where(POLICIES.c.report_id == REPORTS.c.id,
                                             POLICIES.c.policy_domain.in_(self.domains)))
        return conditions

    def policy_conditions(self) -> list[ColumnElement[bool]]:
        """On tls_policy joined to tls_report, for totals: the named domains' policies only, of
        reports that are not conflicting copies."""
        conditions = [REPORTS.c.conflict_of_id.is_(None), *self._period_and_reporter()]
        if self.domains:
            conditions.append(POLICIES.c.policy_domain.in_(self.domains))
        return conditions

    def _period_and_reporter(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.window.since is not None:
            conditions.append(REPORTS.c.date_end > self.window.since)
        if self.window.until is not None:
            conditions.append(REPORTS.c.date_begin < self.window.until)
        if self.organization_keys:
            conditions.append(REPORTS.c.organization_key.in_(self.organization_keys))
        return conditions


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


# -- the list -------------------------------------------------------------------------------------

def count_tls_reports(conn: Connection, flt: TlsFilter) -> int:
    query = select(func.count()).select_from(REPORTS).where(*flt.report_conditions())
    return int(conn.execute(query).scalar_one())


def tls_report_page(conn: Connection, flt: TlsFilter, limit: int | None, offset: int) -> list[dict[str, Any]]:
    query = (select(REPORTS).where(*flt.report_conditions())
             .order_by(REPORTS.c.date_begin.desc(), REPORTS.c.id.desc()).offset(offset).limit(limit))
    return [dict(row._mapping) for row in conn.execute(query)]


def policy_summaries(conn: Connection, report_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """Each report's policies in order, with failed sessions summed by result type."""
    ids = list(report_ids)
    if not ids:
        return {}
    failures: dict[tuple[int, int], dict[str, int]] = {}
    for report_id, seq, result_type, sessions in conn.execute(
            select(FAILURES.c.report_id, FAILURES.c.policy_seq, FAILURES.c.result_type,
                   func.sum(FAILURES.c.failed_session_count))
            .where(FAILURES.c.report_id.in_(ids))
            .group_by(FAILURES.c.report_id, FAILURES.c.policy_seq, FAILURES.c.result_type)):
        failures.setdefault((report_id, seq), {})[result_type] = int(sessions or 0)
    policies: dict[int, list[dict[str, Any]]] = {report_id: [] for report_id in ids}
    for row in conn.execute(
            select(POLICIES.c.report_id, POLICIES.c.seq, POLICIES.c.policy_type, POLICIES.c.policy_domain,
                   POLICIES.c.mx_hosts, POLICIES.c.successful, POLICIES.c.failed)
            .where(POLICIES.c.report_id.in_(ids)).order_by(POLICIES.c.report_id, POLICIES.c.seq)):
        policy = dict(row._mapping)
        policy["failures"] = dict(sorted(failures.get((row.report_id, row.seq), {}).items()))
        policies[row.report_id].append(policy)
    return policies


# -- one report -----------------------------------------------------------------------------------

def get_tls_report(conn: Connection, report_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(REPORTS).where(REPORTS.c.id == report_id)).first()
    return dict(row._mapping) if row else None


def tls_policy_details(conn: Connection, report_id: int) -> list[dict[str, Any]]:
    """The report's policies in order, each with every failure detail in order."""
    details: dict[int, list[dict[str, Any]]] = {}
    for row in conn.execute(select(FAILURES).where(FAILURES.c.report_id == report_id)
                            .order_by(FAILURES.c.policy_seq, FAILURES.c.seq)):
        details.setdefault(row.policy_seq, []).append(dict(row._mapping))
    policies = []
    for row in conn.execute(select(POLICIES).where(POLICIES.c.report_id == report_id)
                            .order_by(POLICIES.c.seq)):
        failure_details = details.get(row.seq, [])
        totals: dict[str, int] = {}
        for failure in failure_details:
            totals[failure["result_type"]] = totals.get(failure["result_type"], 0) + \
                failure["failed_session_count"]
        policies.append({**row._mapping, "failures": dict(sorted(totals.items())),
                         "failure_details": failure_details})
    return policies


def tls_deliveries(conn: Connection, report_id: int) -> list[dict[str, Any]]:
    """Every input the report arrived in: the first, and each duplicate delivery."""
    query = (select(ORIGINS.c.original_sha256, ORIGINS.c.location, ORIGINS.c.received_at, ORIGINALS.c.source,
                    ORIGINALS.c.container, ORIGINALS.c.size)
             .join(ORIGINALS, ORIGINALS.c.sha256 == ORIGINS.c.original_sha256)
             .where(ORIGINS.c.report_id == report_id).order_by(ORIGINS.c.received_at))
    return [dict(row._mapping) for row in conn.execute(query)]


# -- totals per policy domain ---------------------------------------------------------------------

@dataclass(slots=True)
class PolicyTotals:
    policy_domain: str | None
    policy_type: str
    reports: int = 0
    successful: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class TlsSummary:
    reports: int
    policies: list[PolicyTotals]

    @property
    def successful(self) -> int:
        return sum(p.successful for p in self.policies)

    @property
    def failed(self) -> int:
        return sum(p.failed for p in self.policies)

    def failures(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for policy in self.policies:
            for result_type, sessions in policy.failures.items():
                out[result_type] = out.get(result_type, 0) + sessions
        return dict(sorted(out.items()))


def tls_summary(conn: Connection, flt: TlsFilter) -> TlsSummary:
    """Sessions per (policy domain, policy type) over the selected reports, each report once."""
    conditions = flt.policy_conditions()
    joined = POLICIES.join(REPORTS, REPORTS.c.id == POLICIES.c.report_id)
    keys = (POLICIES.c.policy_domain, POLICIES.c.policy_type)
    totals: dict[tuple[str | None, str], PolicyTotals] = {}
    for domain, policy_type, reports, successful, failed in conn.execute(
            select(*keys, func.count(func.distinct(POLICIES.c.report_id)), func.sum(POLICIES.c.successful),
                   func.sum(POLICIES.c.failed)).select_from(joined).where(*conditions).group_by(*keys)):
        totals[(domain, policy_type)] = PolicyTotals(domain, policy_type, int(reports), int(successful or 0),
                                                     int(failed or 0))
    failures = joined.join(FAILURES, (FAILURES.c.report_id == POLICIES.c.report_id)
                           & (FAILURES.c.policy_seq == POLICIES.c.seq))
    for domain, policy_type, result_type, sessions in conn.execute(
            select(*keys, FAILURES.c.result_type, func.sum(FAILURES.c.failed_session_count))
            .select_from(failures).where(*conditions).group_by(*keys, FAILURES.c.result_type)):
        totals[(domain, policy_type)].failures[result_type] = int(sessions or 0)
    for entry in totals.values():
        entry.failures = dict(sorted(entry.failures.items()))
    reports = int(conn.execute(select(func.count(func.distinct(POLICIES.c.report_id)))
                               .select_from(joined).where(*conditions)).scalar_one())
    ordered = sorted(totals.values(), key=lambda t: (t.policy_domain is None, t.policy_domain or "",
                                                     t.policy_type))
    return TlsSummary(reports, ordered)
