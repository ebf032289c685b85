"""What a dashboard page shows, read from its URL: domains, date window, reporter, class.

The parameters are the JSON API's own (`domain`, `since`, `until`, `org`, `class`, ...), read
by the same `record_filter`, so a page's view and its JSON twin select the same records.
Without `since` and `until` a page shows the 30 days up to the latest report, not up to
today: a history imported from an archive is not an empty page.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine, func, select

from app.deps import EngineDep, RecordFilterDep
from app.models import Report, table_of
from app.record_filter import RecordFilter, Window

REPORTS = table_of(Report)
DEFAULT_DAYS = 30
PRESETS = (("7 days", 7), ("30 days", 30), ("90 days", 90), ("1 year", 365))


@dataclass(frozen=True, slots=True)
class PageState:
    flt: RecordFilter
    """the filter with the window filled in: what the page's queries use"""
    first_day: date | None
    last_day: date | None
    """the window's days, both included; None on an open side"""
    default_window: bool
    known_domains: tuple[str, ...]
    latest_day: date | None
    """the last day any report covers: the presets end there"""

    def preset(self, days: int) -> tuple[str, str]:
        """since/until of the `days` days up to the latest report (or today)."""
        end = self.latest_day or datetime.now(UTC).date()
        return (end - timedelta(days=days - 1)).isoformat(), end.isoformat()

    @property
    def is_empty_install(self) -> bool:
        return self.latest_day is None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def latest_report_day(engine: Engine) -> date | None:
    with engine.connect() as conn:
        latest = conn.execute(select(func.max(REPORTS.c.date_end))).scalar()
    if latest is None:
        return None
    if isinstance(latest, str):  # SQLite without type information in an aggregate
        latest = datetime.fromisoformat(latest)
    # a report ending at midnight covers the day before
    return (latest - timedelta(microseconds=1)).date() if latest.time() == time(0) else latest.date()


def known_domains(engine: Engine) -> tuple[str, ...]:
    with engine.connect() as conn:
        rows = conn.execute(select(REPORTS.c.policy_domain).distinct().order_by(REPORTS.c.policy_domain))
        return tuple(row[0] for row in rows if row[0])


def page_state(request: Request, engine: EngineDep, flt: RecordFilterDep) -> PageState:
    latest = latest_report_day(engine)
    explicit = "since" in request.query_params or "until" in request.query_params
    if flt.window.is_open and not explicit:
        end = latest or datetime.now(UTC).date()
        start = end - timedelta(days=DEFAULT_DAYS - 1)
        flt = replace(flt, window=Window(_midnight(start), _midnight(end + timedelta(days=1))))
    window = flt.window
    first = window.since.date() if window.since else None
    last = (window.until - timedelta(microseconds=1)).date() if window.until else None
    return PageState(flt, first, last, not explicit, known_domains(engine), latest)


PageStateDep = Annotated[PageState, Depends(page_state)]
