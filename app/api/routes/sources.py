"""Volumes, pass rates and classes per source: by address, or by who the addresses are."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from app.api.csv_export import CSV_RESPONSE, csv_response, wants_csv
from app.api.read_models import ClassVolume, SourceItem, SourcePage, Window
from app.api.source_detail_models import SourceAddressItem, SourceGroupDetail
from app.deps import EngineDep, FormatParam, PageDep, ReadAccess, RecordFilterDep
from app.problems import problem_responses
from app.source_detail_query import group_detail
from app.source_groups import SourceGrouping, source_groups
from ingest.source_enrichment import IDENTITY_COLUMNS

router = APIRouter(prefix="/api/v1/sources", tags=["analytics"], responses=problem_responses(401, 403, 422))

CLASS_COLUMNS = tuple(ClassVolume.model_fields)
CSV_COLUMNS = ("group", "key", "source_ip", "sources", "messages", "records", "dmarc_pass", "dmarc_fail",
               "dmarc_pass_rate", "spf_aligned_pass_rate", "dkim_aligned_pass_rate", "none", "quarantine",
               "reject", *CLASS_COLUMNS, "first_day", "last_day", *IDENTITY_COLUMNS)


@router.get("", response_model=SourcePage, responses=CSV_RESPONSE)
def list_sources(request: Request, engine: EngineDep, _: ReadAccess, flt: RecordFilterDep, page: PageDep,
                 group: Annotated[SourceGrouping, Query(
                     description="Group by catalogue service (else the sender's base domain or AS name), "
                                 "PTR base domain, AS, country, or source address.")] = "ip",
                 format_: FormatParam = None) -> Any:
    """Sources by message volume, with their DMARC, aligned SPF and DKIM pass rates, the classes
    of Rua's verdicts, and who they are (reverse DNS, network, catalogue service)."""
    csv = wants_csv(request, format_)
    limit = page.limit if csv else page.json_limit()
    result = source_groups(engine, flt, group, limit, page.offset)
    items = [SourceItem.of(
        found.group.tally, group=group, key=found.group.key,
        source_ip=found.group.key if group == "ip" else None, sources=found.sources,
        classes=ClassVolume.of(found.classes, found.group.tally.messages),
        first_day=found.group.first_day, last_day=found.group.last_day, **found.identity)
        for found in result.groups]
    if csv:
        return csv_response("sources.csv", CSV_COLUMNS, (
            [item.group, item.key, item.source_ip, item.sources, item.messages, item.records, item.dmarc_pass,
             item.dmarc_fail, item.dmarc_pass_rate, item.spf_aligned_pass_rate, item.dkim_aligned_pass_rate,
             item.dispositions.none, item.dispositions.quarantine, item.dispositions.reject,
             *(getattr(item.classes, name) for name in CLASS_COLUMNS), item.first_day, item.last_day,
             *(getattr(item, name) for name in IDENTITY_COLUMNS)]
            for item in items))
    return SourcePage(total=result.total, limit=page.json_limit(), offset=page.offset, items=items)


ADDRESS_CSV_COLUMNS = tuple(SourceAddressItem.model_fields)


@router.get("/{group}/{key:path}", response_model=SourceGroupDetail, responses={**CSV_RESPONSE,
                                                                                **problem_responses(404)})
def read_source_group(request: Request, engine: EngineDep, _: ReadAccess, flt: RecordFilterDep, page: PageDep,
                      group: Annotated[SourceGrouping, Path(description="The grouping of /api/v1/sources.")],
                      key: Annotated[str, Path(description="The group's `key` in /api/v1/sources: a service, "
                                                           "base domain, AS number, country or address.")],
                      format_: FormatParam = None) -> Any:
    """One group of /api/v1/sources: its volumes and pass rates, its addresses (at most 200, most
    mail first) with reverse DNS, AS, country and how the catalogue named them; what fails and
    why (messages per class and per reason code of Rua's verdicts: over every record of the group
    in the window, or for a big group over its records among the window's latest 20,000, which
    `judged.complete` says); and a page of its records (`items`, by `limit` and `offset`), newest
    report first.

    404 when no address was ever in the group. The CSV export is the addresses.
    """
    limit = page.json_limit()
    with engine.connect() as conn:
        detail = group_detail(conn, flt, group, key, limit, page.offset)
    if wants_csv(request, format_):
        rows = (SourceAddressItem.of(address) for address in detail.addresses)
        return csv_response("source-addresses.csv", ADDRESS_CSV_COLUMNS,
                            ([getattr(item, name) for name in ADDRESS_CSV_COLUMNS] for item in rows))
    return SourceGroupDetail.build(detail, Window(since=flt.window.since, until=flt.window.until), limit,
                                page.offset)
