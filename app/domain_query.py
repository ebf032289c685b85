"""Per policy domain: its volumes (from `grouped_query`), its reports, its latest policy."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from app.record_filter import REPORTS, RecordFilter

POLICY_FIELDS = ("adkim", "aspf", "p", "sp", "np", "pct", "fo", "testing", "discovery_method")


def domain_reports(conn: Connection, flt: RecordFilter, domains: list[str]) -> dict[str, dict[str, Any]]:
    """For each domain: how many reports match, and the policy of the latest of them."""
    if not domains:
        return {}
    domain = func.coalesce(REPORTS.c.policy_domain, "")
    conditions = [*flt.matching_reports(conflicting_copies=False), domain.in_(domains)]
    per_domain = select(domain, func.count()).where(*conditions).group_by(domain)
    counts: dict[str, int] = {name: count for name, count in conn.execute(per_domain)}
    latest = (select(domain.label("domain"), REPORTS.c.date_begin,
                     *(REPORTS.c[name] for name in POLICY_FIELDS),
                     func.row_number().over(partition_by=domain, order_by=(
                         REPORTS.c.date_begin.desc().nulls_last(), REPORTS.c.id.desc())).label("rank"))
              .where(*conditions).subquery())
    out: dict[str, dict[str, Any]] = {name: {"reports": int(counts.get(name, 0)), "policy": None,
                                             "policy_reported_at": None} for name in domains}
    for row in conn.execute(select(latest).where(latest.c.rank == 1)):
        entry = out[row.domain]
        policy = {name: row._mapping[name] for name in POLICY_FIELDS}
        entry["policy"] = {"domain": row.domain or None, **policy}
        entry["policy_reported_at"] = row.date_begin
    return out
