"""Totals, pass rates, dispositions and the per-day series for the filtered reports."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app.api.csv_export import CSV_RESPONSE, csv_response, wants_csv
from app.api.read_models import ClassVolume, DayVolume, SummaryOut, Volume, Window
from app.deps import EngineDep, FormatParam, ReadAccess, RecordFilterDep
from app.problems import problem_responses
from app.summary_query import summarise

router = APIRouter(prefix="/api/v1/summary", tags=["analytics"], responses=problem_responses(401, 403, 422))

CSV_COLUMNS = ("day", "messages", "records", "dmarc_pass", "dmarc_fail", "dmarc_pass_rate",
               "spf_aligned_pass", "spf_aligned_pass_rate", "dkim_aligned_pass", "dkim_aligned_pass_rate",
               "none", "quarantine", "reject", "unknown", "aligned", "forwarded", "forwarding_failure",
               "misconfigured", "unauthorised", "pending")


@router.get("", response_model=SummaryOut, responses=CSV_RESPONSE)
def read_summary(request: Request, engine: EngineDep, _: ReadAccess, flt: RecordFilterDep,
                 format_: FormatParam = None) -> Any:
    """Messages, DMARC pass rate, aligned SPF and DKIM pass rates, dispositions, and a per-day series.

    Reports whose range overlaps the window are counted, each once: a multi-day report counts
    on its first day, or on the window's first day when it began before. The CSV export is
    the per-day series.
    """
    with engine.connect() as conn:
        summary = summarise(conn, flt)
    days = [DayVolume.of(tally, day=day,
                         classes=ClassVolume.of(summary.day_classes.get(day, {}), tally.messages))
            for day, tally in summary.days.items()]
    if wants_csv(request, format_):
        return csv_response("summary.csv", CSV_COLUMNS, (_csv_row(day) for day in days))
    return SummaryOut.of(summary.total, window=Window(since=flt.window.since, until=flt.window.until),
                         reports=summary.reports, days=days,
                         classes=ClassVolume.of(summary.classes, summary.total.messages))


def _csv_row(day: DayVolume) -> list[Any]:
    volume: Volume = day
    return [day.day, volume.messages, volume.records, volume.dmarc_pass, volume.dmarc_fail,
            volume.dmarc_pass_rate, volume.spf_aligned_pass, volume.spf_aligned_pass_rate,
            volume.dkim_aligned_pass, volume.dkim_aligned_pass_rate,
            *volume.dispositions.model_dump().values(), *day.classes.model_dump().values()]
