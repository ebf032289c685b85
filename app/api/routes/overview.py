"""The front page's figures in one answer: per-day classes, dispositions, top senders, policies."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app.api.csv_export import CSV_RESPONSE, csv_response, wants_csv
from app.api.overview_models import DomainPolicyOut, OverviewDay, OverviewOut, TopSource
from app.api.read_models import ClassVolume, Dispositions, Window
from app.deps import EngineDep, FormatParam, ReadAccess, RecordFilterDep
from app.overview_query import overview
from app.problems import problem_responses
from app.summary_query import summarise

router = APIRouter(prefix="/api/v1/overview", tags=["analytics"], responses=problem_responses(401, 403, 422))

CLASS_COLUMNS = tuple(ClassVolume.model_fields)
CSV_COLUMNS = ("day", "messages", "dmarc_pass", "dmarc_fail", "dmarc_pass_rate", *CLASS_COLUMNS)


@router.get("", response_model=OverviewOut, responses=CSV_RESPONSE)
def read_overview(request: Request, engine: EngineDep, _: ReadAccess, flt: RecordFilterDep,
                  format_: FormatParam = None) -> Any:
    """What a dashboard's front page shows: messages per day by class (and `pending`, not judged
    yet) with the DMARC pass rate, messages per disposition, the ten largest source addresses
    with who each is, and for each policy domain the policy in force with its changes over the
    window, as the reports restate it and as Rua's DNS history recorded `_dmarc.<domain>`.

    The figures are those of /summary and /sources for the same filters. The CSV export is the
    per-day table.
    """
    with engine.connect() as conn:
        if wants_csv(request, format_):
            summary = summarise(conn, flt)
            days = [OverviewDay.of(day, tally, summary.day_classes.get(day, {}))
                    for day, tally in summary.days.items()]
            return csv_response("overview.csv", CSV_COLUMNS, (
                [day.day, day.messages, day.dmarc_pass, day.dmarc_fail, day.dmarc_pass_rate,
                 *(getattr(day.classes, name) for name in CLASS_COLUMNS)] for day in days))
        found = overview(conn, flt)
    summary, total = found.summary, found.summary.total
    return OverviewOut(
        window=Window(since=flt.window.since, until=flt.window.until), reports=summary.reports,
        messages=total.messages, dmarc_pass=total.dmarc_pass, dmarc_fail=total.messages - total.dmarc_pass,
        dmarc_pass_rate=total.rate(total.dmarc_pass), classes=ClassVolume.of(summary.classes, total.messages),
        days=[OverviewDay.of(day, tally, summary.day_classes.get(day, {}))
              for day, tally in summary.days.items()],
        dispositions=Dispositions(**total.dispositions),
        top_sources=[TopSource.of(group) for group in found.top_sources],
        policies=[DomainPolicyOut.of(policy) for policy in found.policies])
