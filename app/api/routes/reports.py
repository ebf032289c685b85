"""Stored aggregate reports: the filtered list, one report with its records, its original bytes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from app.api.csv_export import CSV_RESPONSE, csv_response, wants_csv
from app.api.read_models import PublishedPolicy, RecordItem, ReportDetail, ReportPage, ReportSummary
from app.deps import EngineDep, FormatParam, PageDep, ReadAccess, RecordFilterDep, SettingsDep
from app.domain_query import POLICY_FIELDS
from app.problems import Problem, problem_responses
from app.record_query import report_records
from app.report_query import count_reports, get_report, report_origin_list, report_original, report_page
from ingest.original_store import OriginalStore

router = APIRouter(prefix="/api/v1/reports", tags=["reports"], responses=problem_responses(401, 403, 422))

CSV_COLUMNS = ("id", "org_name", "report_id", "policy_domain", "date_begin", "date_end", "record_count",
               "message_count", "p", "conflict_of_id", "repair_notes", "ingested_at")
CONTAINER_MEDIA_TYPES = {"xml": "application/xml", "gzip": "application/gzip", "zip": "application/zip",
                         "zlib": "application/zlib", "email": "message/rfc822", "mbox": "application/mbox"}
ReportIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Rua's id of the report")]


@router.get("", response_model=ReportPage, responses=CSV_RESPONSE)
def list_reports(request: Request, engine: EngineDep, _: ReadAccess, flt: RecordFilterDep, page: PageDep,
                 format_: FormatParam = None) -> Any:
    """Stored reports, newest report period first (undated ones last).

    A report is listed when its range overlaps the window and it holds a record matching the
    record filters. Conflicting copies are listed too, flagged by `conflict_of_id`.
    """
    if wants_csv(request, format_):
        return csv_response("reports.csv", CSV_COLUMNS, _csv_rows(engine, flt, page.limit, page.offset))
    with engine.connect() as conn:
        total = count_reports(conn, flt)
        rows = report_page(conn, flt, page.json_limit(), page.offset)
    return ReportPage(total=total, limit=page.json_limit(), offset=page.offset,
                      items=[ReportSummary.model_validate(row) for row in rows])


def _csv_rows(engine: EngineDep, flt: RecordFilterDep, limit: int | None, offset: int) -> Iterator[list[Any]]:
    with engine.connect() as conn:
        for row in report_page(conn, flt, limit, offset):
            yield [("; ".join(row[name]) if name == "repair_notes" else row[name]) for name in CSV_COLUMNS]


@router.get("/{report_id}", response_model=ReportDetail, responses=problem_responses(404))
def read_report(
    engine: EngineDep, _: ReadAccess, report_id: ReportIdPath,
    records_limit: Annotated[int, Query(ge=1, le=10_000, description="Records to include.")] = 1000,
    records_offset: Annotated[int, Query(ge=0, description="Records to skip.")] = 0,
) -> ReportDetail:
    """One report: metadata, the published policy, its records with auth results, repair notes,
    and every delivery it arrived in."""
    with engine.connect() as conn:
        report = get_report(conn, report_id)
        if report is None:
            raise Problem(404, "not-found", "Not found", f"there is no report {report_id}")
        records = report_records(conn, report_id, records_limit, records_offset)
        deliveries = report_origin_list(conn, report_id)
    policy = PublishedPolicy(domain=report["policy_domain"], **{name: report[name] for name in POLICY_FIELDS})
    return ReportDetail.model_validate({
        **report, "policy": policy, "deliveries": deliveries,
        "records": [RecordItem.model_validate(record, from_attributes=True) for record in records],
        "records_offset": records_offset, "records_limit": records_limit})


@router.get("/{report_id}/raw", response_class=StreamingResponse, responses={
    200: {"description": "The input the report came in, byte for byte as received (which may hold "
                         "other reports too: a zip, an e-mail, an mbox).",
          "content": {media: {"schema": {"type": "string", "format": "binary"}}
                      for media in sorted(set(CONTAINER_MEDIA_TYPES.values()))}},
    **problem_responses(404, 410)})
def read_raw(engine: EngineDep, settings: SettingsDep, _: ReadAccess, report_id: ReportIdPath) -> Response:
    """The original bytes as received."""
    with engine.connect() as conn:
        original = report_original(conn, report_id)
    if original is None:
        raise Problem(404, "not-found", "Not found", f"there is no report {report_id}")
    store = OriginalStore(settings.data_dir)
    try:
        stream = store.open(original.storage_path)
    except OSError as exc:
        raise Problem(410, "original-missing", "Original missing",
                      f"the kept original {original.sha256} cannot be read: {exc.strerror or exc}") from exc
    media_type = CONTAINER_MEDIA_TYPES.get(original.container, "application/octet-stream")
    name = _download_name(original.source, original.sha256, original.container)
    return StreamingResponse(_chunks(stream), media_type=media_type, headers={
        "Content-Length": str(original.size), "Content-Disposition": f'attachment; filename="{name}"',
        "X-Content-SHA256": original.sha256})


def _chunks(stream: Any, size: int = 256 * 1024) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(size):
            yield chunk


def _download_name(source: str, sha256: str, container: str) -> str:
    base = source.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    safe = "".join(ch for ch in base if ch.isalnum() or ch in "._-")[:100]
    return safe or f"{sha256[:16]}.{container}"
