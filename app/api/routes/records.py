"""Records as flat rows with their authentication results."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request

from app.api.csv_export import CSV_RESPONSE, csv_response, wants_csv
from app.api.read_models import RecordItem, RecordPage
from app.deps import EngineDep, FormatParam, PageDep, ReadAccess, RecordFilterDep
from app.problems import problem_responses
from app.record_query import RecordRow, all_records, count_records, record_page

router = APIRouter(prefix="/api/v1/records", tags=["records"], responses=problem_responses(401, 403, 422))

CSV_COLUMNS = ("report_id", "record_no", "org_name", "policy_domain", "date_begin", "date_end", "source_ip",
               "count", "disposition", "dkim", "spf", "dmarc", "header_from", "envelope_from", "envelope_to",
               "reasons", "dkim_results", "spf_results", "class", "verdict_dmarc", "verdict_reasons",
               "sender", "service_type")


@router.get("", response_model=RecordPage, responses=CSV_RESPONSE)
def list_records(request: Request, engine: EngineDep, _: ReadAccess, flt: RecordFilterDep, page: PageDep,
                 format_: FormatParam = None) -> Any:
    """Records of the matching reports, newest stored report first, then in report order.

    Conflicting copies of a report are left out (they restate the first copy; read them
    through `/api/v1/reports/{id}`).
    """
    if wants_csv(request, format_):
        return csv_response("records.csv", CSV_COLUMNS, _csv_rows(engine, flt, page.limit, page.offset))
    with engine.connect() as conn:
        total = count_records(conn, flt)
        rows = record_page(conn, flt, page.json_limit(), page.offset)
    return RecordPage(total=total, limit=page.json_limit(), offset=page.offset,
                      items=[RecordItem.model_validate(row, from_attributes=True) for row in rows])


def _csv_rows(engine: EngineDep, flt: RecordFilterDep, limit: int | None, offset: int) -> Iterator[list[Any]]:
    with engine.connect() as conn:
        rows = all_records(conn, flt) if limit is None and not offset else \
            iter(record_page(conn, flt, limit or 1000, offset))
        for row in rows:
            yield _csv_row(row)


def _csv_row(row: RecordRow) -> list[Any]:
    """Auth results flattened into one cell each: `domain/selector=result; ...`."""
    values = [getattr(row, name) for name in CSV_COLUMNS[:15]]
    values.append("; ".join(f"{r['type']}:{r['comment']}" if r["comment"] else str(r["type"])
                            for r in row.reasons))
    values.append("; ".join(f"{r['domain']}/{r['selector'] or ''}={r['result']}" for r in row.dkim_results))
    values.append("; ".join(f"{r['domain']}({r['scope'] or ''})={r['result']}" for r in row.spf_results))
    verdict = row.verdict or {}
    values += [verdict.get("class"), verdict.get("dmarc"), "; ".join(verdict.get("reasons") or ())]
    sender = row.sender or {}
    values += [sender.get("sender"), sender.get("service_type")]
    return values
