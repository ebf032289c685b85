"""Volumes and pass rates per source address."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app.api.csv_export import CSV_RESPONSE, csv_response, wants_csv
from app.api.read_models import SourceItem, SourcePage
from app.deps import EngineDep, FormatParam, PageDep, ReadAccess, RecordFilterDep
from app.grouped_query import grouped
from app.problems import problem_responses

router = APIRouter(prefix="/api/v1/sources", tags=["analytics"], responses=problem_responses(401, 403, 422))

CSV_COLUMNS = ("source_ip", "messages", "records", "dmarc_pass", "dmarc_fail", "dmarc_pass_rate",
               "spf_aligned_pass_rate", "dkim_aligned_pass_rate", "none", "quarantine", "reject", "first_day",
               "last_day")


@router.get("", response_model=SourcePage, responses=CSV_RESPONSE)
def list_sources(request: Request, engine: EngineDep, _: ReadAccess, flt: RecordFilterDep, page: PageDep,
                 format_: FormatParam = None) -> Any:
    """Source addresses by message volume, with their DMARC, aligned SPF and DKIM pass rates."""
    csv = wants_csv(request, format_)
    limit = page.limit if csv else page.json_limit()
    with engine.connect() as conn:
        result = grouped(conn, flt, "source_ip", limit, page.offset)
    items = [SourceItem.of(group.tally, source_ip=group.key, first_day=group.first_day,
                           last_day=group.last_day) for group in result.groups]
    if csv:
        return csv_response("sources.csv", CSV_COLUMNS, (
            [item.source_ip, item.messages, item.records, item.dmarc_pass, item.dmarc_fail,
             item.dmarc_pass_rate, item.spf_aligned_pass_rate, item.dkim_aligned_pass_rate,
             item.dispositions.none, item.dispositions.quarantine, item.dispositions.reject, item.first_day,
             item.last_day]
            for item in items))
    return SourcePage(total=result.total, limit=page.json_limit(), offset=page.offset, items=items)
