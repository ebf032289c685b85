"""Stored aggregate reports (the full read API, with filters and auth, builds on this)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlmodel import func, select

from app.deps import SessionDep
from app.models import Report

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])


class ReportSummary(BaseModel):
    id: int
    org_name: str | None
    report_id: str | None
    policy_domain: str | None
    date_begin: datetime | None
    date_end: datetime | None
    record_count: int
    message_count: int
    p: str | None
    conflict_of_id: int | None
    repair_notes: list[str]
    ingested_at: datetime


class ReportPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[ReportSummary]


@router.get("", response_model=ReportPage)
def list_reports(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ReportPage:
    """Stored reports, newest report period first."""
    total = session.exec(select(func.count()).select_from(Report)).one()
    rows = session.exec(
        # undated reports last on every database (PostgreSQL sorts NULL first when descending)
        select(Report).order_by(Report.date_begin.desc().nulls_last(), Report.id.desc())  # type: ignore[union-attr]
        .offset(offset).limit(limit)).all()
    return ReportPage(total=total, limit=limit, offset=offset,
                      items=[ReportSummary.model_validate(row, from_attributes=True) for row in rows])
