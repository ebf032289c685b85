"""Policy domains seen in reports: their volumes and the policy they publish."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app.api.csv_export import CSV_RESPONSE, csv_response, wants_csv
from app.api.read_models import DomainItem, DomainPage
from app.deps import EngineDep, FormatParam, PageDep, ReadAccess, RecordFilterDep
from app.domain_query import POLICY_FIELDS, domain_reports
from app.grouped_query import grouped
from app.problems import problem_responses

router = APIRouter(prefix="/api/v1/domains", tags=["analytics"], responses=problem_responses(401, 403, 422))

CSV_COLUMNS = ("domain", "reports", "messages", "dmarc_pass_rate", "spf_aligned_pass_rate",
               "dkim_aligned_pass_rate", "none", "quarantine", "reject", "first_day", "last_day",
               *POLICY_FIELDS, "policy_reported_at")


@router.get("", response_model=DomainPage, responses=CSV_RESPONSE)
def list_domains(request: Request, engine: EngineDep, _: ReadAccess, flt: RecordFilterDep, page: PageDep,
                 format_: FormatParam = None) -> Any:
    """Policy domains by message volume, with the policy of the latest matching report."""
    csv = wants_csv(request, format_)
    limit = page.limit if csv else page.json_limit()
    with engine.connect() as conn:
        result = grouped(conn, flt, "policy_domain", limit, page.offset)
        reports = domain_reports(conn, flt, [group.key for group in result.groups])
    items = [DomainItem.of(group.tally, domain=group.key, first_day=group.first_day, last_day=group.last_day,
                           **reports[group.key]) for group in result.groups]
    if csv:
        return csv_response("domains.csv", CSV_COLUMNS, (
            [item.domain, item.reports, item.messages, item.dmarc_pass_rate, item.spf_aligned_pass_rate,
             item.dkim_aligned_pass_rate, item.dispositions.none, item.dispositions.quarantine,
             item.dispositions.reject, item.first_day, item.last_day,
             *(getattr(item.policy, name) if item.policy else None for name in POLICY_FIELDS),
             item.policy_reported_at] for item in items))
    return DomainPage(total=result.total, limit=page.json_limit(), offset=page.offset, items=items)
