"""The front page: what every morning starts with, for the window and filters in the URL.

Numbers come from `overview_query.overview`, the query behind /api/v1/overview, through the
API's own models (`OverviewDay`, `ClassVolume`, `TopSource`, `DomainPolicyOut`), so a card
and the JSON twin can never disagree. A new install has nothing to show yet: the page then
says how to start (the DMARC record to publish, with Rua's address, and how to upload).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

import plotly.graph_objects as go
from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.overview_models import DomainPolicyOut, OverviewDay, TopSource
from app.api.read_models import ClassVolume, Dispositions
from app.dashboard.figures import (
    CLASS_COLOURS,
    CLASS_LABELS,
    CLASS_ORDER,
    DISPOSITION_COLOURS,
    Figure,
    make_figure,
)
from app.dashboard.page_state import PageState, PageStateDep
from app.dashboard.routes.reports import source_link as source_link  # the sources pages link with it too
from app.dashboard.routes.reports import window_params
from app.dashboard.templating import SHARED_STATE, render
from app.deps import EngineDep, SettingsDep, SignedInDep
from app.overview_query import overview
from app.settings import Settings
from ingest.org_domain import psl_org_domain

router = APIRouter(include_in_schema=False)

PENDING = "pending"
EXAMPLE_DOMAIN = "example.com"


# -- drill-down links ---------------------------------------------------------------------------

def _reports_link(request: Request, **changes: str) -> str:
    """The reports list behind a bar: the view's domains and reporter, narrowed by `changes`."""
    items = [(key, value) for key, value in request.query_params.multi_items()
             if key in SHARED_STATE and key not in changes and key not in ("since", "until")]
    return "/reports?" + urlencode([*items, *changes.items()])


def _day_link(request: Request, day: date, record_class: str | None) -> str:
    changes = {"since": day.isoformat(), "until": day.isoformat()}
    if record_class and record_class != PENDING:
        changes["class"] = record_class
    return _reports_link(request, **changes)


# -- figures ------------------------------------------------------------------------------------

def class_table(days: list[OverviewDay]) -> Any:
    """Messages per day (rows) and class (columns), a DataFrame with every day of the span
    present: a day without reports is a zero bar, not a gap the eye closes."""
    import pandas as pd  # here, not at the top: a second of start-up for every `rua` command

    names = [*CLASS_ORDER, PENDING]
    frame = pd.DataFrame([[getattr(day.classes, name) for name in names] for day in days],
                         index=pd.DatetimeIndex([day.day for day in days]), columns=names)
    if frame.empty:
        return frame
    return frame.reindex(pd.date_range(frame.index.min(), frame.index.max(), freq="D"), fill_value=0)


def class_figure(request: Request, days: list[OverviewDay]) -> Figure:
    table = class_table(days)
    x = [moment.date().isoformat() for moment in table.index]
    shown = [name for name in (*CLASS_ORDER, PENDING) if name != PENDING or table[PENDING].any()]
    traces = [go.Bar(x=x, y=table[name].tolist(), name=CLASS_LABELS[name],
                     marker_color=CLASS_COLOURS[name],
                     customdata=[_day_link(request, moment.date(), name) for moment in table.index],
                     hovertemplate="%{y:,} messages<extra>" + CLASS_LABELS[name] + "</extra>")
              for name in shown]
    return make_figure("overview-classes", "Messages per day, by class", traces, barmode="stack",
                       legend={"orientation": "h", "y": -0.18, "traceorder": "normal"},
                       xaxis={"type": "date", "gridcolor": "#e5e5e5", "automargin": True})


def pass_rate_figure(days: list[OverviewDay]) -> Figure:
    judged = [day for day in days if day.dmarc_pass_rate is not None]
    trace = go.Scatter(x=[day.day.isoformat() for day in judged], y=[day.dmarc_pass_rate for day in judged],
                       mode="lines+markers", name="DMARC pass rate", line={"color": "#0b57d0", "width": 2},
                       customdata=[day.messages for day in judged],
                       hovertemplate="%{y:.1%} of %{customdata:,} messages<extra></extra>")
    return make_figure("overview-pass-rate", "DMARC pass rate (as receivers evaluated it)", [trace],
                       showlegend=False,
                       yaxis={"tickformat": ".0%", "range": [0, 1.05], "gridcolor": "#e5e5e5",
                              "automargin": True},
                       xaxis={"type": "date", "gridcolor": "#e5e5e5", "automargin": True})


def disposition_figure(request: Request, dispositions: Dispositions) -> Figure:
    names = [name for name in ("none", "quarantine", "reject", "unknown") if getattr(dispositions, name)]
    trace = go.Bar(x=names, y=[getattr(dispositions, name) for name in names],
                   marker_color=[DISPOSITION_COLOURS.get(name, CLASS_COLOURS[PENDING]) for name in names],
                   customdata=[_reports_link(request, disposition=name) if name != "unknown" else ""
                               for name in names],
                   hovertemplate="%{x}: %{y:,} messages<extra></extra>")
    return make_figure("overview-dispositions", "What receivers did (disposition)", [trace],
                       showlegend=False, hovermode="closest")


# -- the page -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ClassCard:
    name: str
    label: str
    messages: int
    share: float | None


def class_cards(classes: ClassVolume, messages: int) -> list[ClassCard]:
    names = [*CLASS_ORDER, *((PENDING,) if classes.pending else ())]
    return [ClassCard(name, CLASS_LABELS[name], getattr(classes, name),
                      getattr(classes, name) / messages if messages else None) for name in names]


def _filled(request: Request, state: PageState, engine: Any) -> dict[str, Any]:
    with engine.connect() as conn:
        found = overview(conn, state.flt)
    summary, total = found.summary, found.summary.total
    days = [OverviewDay.of(day, tally, summary.day_classes.get(day, {}))
            for day, tally in summary.days.items()]
    classes = ClassVolume.of(summary.classes, total.messages)
    dispositions = Dispositions(**total.dispositions)
    figures = [class_figure(request, days), pass_rate_figure(days), disposition_figure(request, dispositions)]
    return {
        "reports": summary.reports, "messages": total.messages, "dmarc_pass": total.dmarc_pass,
        "dmarc_pass_rate": total.rate(total.dmarc_pass), "class_cards": class_cards(classes, total.messages),
        "figures": figures, "top_sources": [TopSource.of(group) for group in found.top_sources],
        "policies": [DomainPolicyOut.of(policy) for policy in found.policies],
    }


@dataclass(frozen=True, slots=True)
class SetupHelp:
    """What a new install needs to publish: per domain the DMARC record, and the authorisation
    record on the address's domain when reports go to another organisation (RFC 7489 §7.1)."""

    address: str | None
    address_domain: str | None
    domains: list[str]
    records: list[tuple[str, str | None]]
    """(the `_dmarc` TXT record, the `_report._dmarc` authorisation record or None)"""
    example: bool
    """no domain configured: the records name example.com"""


def setup_help(settings: Settings) -> SetupHelp:
    address = settings.reporting_address()
    address_domain = address.rpartition("@")[2].strip().lower().rstrip(".") if address else None
    configured = settings.configured_domains()
    domains = configured or [EXAMPLE_DOMAIN]
    mailbox = address or "ADDRESS"
    records: list[tuple[str, str | None]] = []
    for domain in domains:
        record = f'_dmarc.{domain}. IN TXT "v=DMARC1; p=none; rua=mailto:{mailbox}"'
        outside = address_domain is None or not configured or _other_organisation(domain, address_domain)
        authorisation = f'{domain}._report._dmarc.{address_domain or "ADDRESS-DOMAIN"}. IN TXT "v=DMARC1"'
        records.append((record, authorisation if outside else None))
    return SetupHelp(address, address_domain, domains, records, not configured)


def _other_organisation(domain: str, address_domain: str) -> bool:
    try:
        return psl_org_domain(domain) != psl_org_domain(address_domain)
    except ValueError:
        return True


@router.get("/")
def overview_page(request: Request, _: SignedInDep, engine: EngineDep, settings: SettingsDep,
                  state: PageStateDep) -> Response:
    context: dict[str, Any] = {"title": "Overview", "active": "overview", "state": state,
                               "window": window_params(state), "source_link": source_link}
    if state.is_empty_install:
        context.update(setup=setup_help(settings), base_url=str(request.base_url).rstrip("/"), figures=[])
    else:
        context.update(_filled(request, state, engine))
    return render(request, "overview.html", context)
