"""Stored reports: the filtered list, one report's page, and the original it came in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from app.models import Original, ReportOrigin, table_of
from app.record_filter import REPORTS, RecordFilter

ORIGINALS = table_of(Original)
ORIGINS = table_of(ReportOrigin)


def count_reports(conn: Connection, flt: RecordFilter, conflicting_copies: bool = True) -> int:
    """Reports holding a matching record. The list shows conflicting copies (flagged by
    conflict_of_id: it is where they are reviewed); the figures leave them out."""
    matching = flt.matching_reports(conflicting_copies)
    return int(conn.execute(select(func.count()).select_from(REPORTS).where(*matching)).scalar_one())


def report_page(conn: Connection, flt: RecordFilter, limit: int | None, offset: int) -> list[dict[str, Any]]:
    # undated reports last on every database (PostgreSQL sorts NULL first when descending)
    query = (select(REPORTS).where(*flt.matching_reports(conflicting_copies=True))
             .order_by(REPORTS.c.date_begin.desc().nulls_last(), REPORTS.c.id.desc())
             .offset(offset).limit(limit))
    return [dict(row._mapping) for row in conn.execute(query)]


def get_report(conn: Connection, report_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(REPORTS).where(REPORTS.c.id == report_id)).first()
    return dict(row._mapping) if row else None


def report_origin_list(conn: Connection, report_id: int) -> list[dict[str, Any]]:
    """Every delivery of the report: the first input and each duplicate one."""
    query = (select(ORIGINS.c.original_sha256, ORIGINS.c.location, ORIGINS.c.received_at, ORIGINALS.c.source,
                    ORIGINALS.c.container, ORIGINALS.c.size)
             .join(ORIGINALS, ORIGINALS.c.sha256 == ORIGINS.c.original_sha256)
             .where(ORIGINS.c.report_id == report_id).order_by(ORIGINS.c.received_at))
    return [dict(row._mapping) for row in conn.execute(query)]


@dataclass(frozen=True, slots=True)
class KeptOriginal:
    sha256: str
    size: int
    container: str
    storage_path: str
    source: str


def report_original(conn: Connection, report_id: int) -> KeptOriginal | None:
    row = conn.execute(
        select(ORIGINALS.c.sha256, ORIGINALS.c.size, ORIGINALS.c.container, ORIGINALS.c.storage_path,
               ORIGINALS.c.source)
        .join(REPORTS, REPORTS.c.original_sha256 == ORIGINALS.c.sha256)
        .where(REPORTS.c.id == report_id)).first()
    return KeptOriginal(*row) if row else None
