"""Forwarding: how much of the domains' mail travels through forwarders, who forwards it, and
which failures come from the domain's own DKIM signatures broken on the way.

The page shows the answer of /api/v1/forwarding itself (its route, called with the page's
filter), so its numbers and its JSON twin cannot disagree whatever the query does inside.
"""

from __future__ import annotations

from urllib.parse import urlencode

import plotly.graph_objects as go
from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.forwarding_models import ForwarderItem, ForwardingDay
from app.api.routes.forwarding import forwarding_answer
from app.dashboard.figures import CLASS_COLOURS, CLASS_LABELS, Figure, make_figure
from app.dashboard.page_state import PageStateDep
from app.dashboard.routes.overview import source_link
from app.dashboard.routes.reports import window_params
from app.dashboard.templating import SHARED_STATE, carry, render, twin_url
from app.deps import EngineDep, SignedInDep
from app.forwarding_query import FORWARDING_CLASSES

router = APIRouter(include_in_schema=False)

SHOWN = 20
"""forwarders and broken-signature groups shown (the API's default)"""


def sender_href(request: Request, key: str, keyed_by: str) -> str:
    """A forwarder's own sources page: its service (sender) group, or its address."""
    return carry(request, source_link("service" if keyed_by == "sender" else "ip", key))


def _day_reports(request: Request, day: str, record_class: str) -> str:
    """The reports of one day holding records of one class: a bar's drill-down."""
    kept = [(key, value) for key, value in request.query_params.multi_items()
            if key in SHARED_STATE and key not in ("since", "until")]
    return "/reports?" + urlencode([*kept, ("since", day), ("until", day), ("class", record_class)])


def days_figure(request: Request, days: list[ForwardingDay]) -> Figure:
    x = [day.day.isoformat() for day in days]
    traces = [go.Bar(x=x, y=[getattr(day, name) for day in days], name=CLASS_LABELS[name],
                     marker_color=CLASS_COLOURS[name],
                     customdata=[_day_reports(request, day, name) for day in x],
                     hovertemplate="%{y:,} messages<extra>" + CLASS_LABELS[name] + "</extra>")
              for name in FORWARDING_CLASSES]
    return make_figure("forwarding-days", "Forwarded mail per day", traces, barmode="stack",
                       xaxis={"type": "date", "gridcolor": "#e5e5e5", "automargin": True})


def forwarders_figure(request: Request, items: list[ForwarderItem]) -> Figure:
    labels = [item.key for item in items]
    links = [sender_href(request, item.key, item.keyed_by) for item in items]
    traces = [go.Bar(y=labels, x=[getattr(item, name) for item in items], orientation="h",
                     name=CLASS_LABELS[name], marker_color=CLASS_COLOURS[name], customdata=links,
                     hovertemplate="%{y}: %{x:,} messages<extra>" + CLASS_LABELS[name] + "</extra>")
              for name in FORWARDING_CLASSES]
    return make_figure("forwarding-forwarders", f"Top forwarders (at most {SHOWN})", traces, barmode="stack",
                       hovermode="closest", height=max(220, 60 + 26 * len(items)),
                       margin={"l": 16, "r": 16, "t": 8, "b": 40},
                       yaxis={"autorange": "reversed", "automargin": True, "type": "category"})


@router.get("/forwarding")
def forwarding_page(request: Request, _: SignedInDep, engine: EngineDep, state: PageStateDep) -> Response:
    found = forwarding_answer(engine, state.flt, SHOWN)
    window = window_params(state)
    return render(request, "forwarding.html", {
        "title": "Forwarding", "active": "forwarding", "state": state, "totals": found.totals,
        "forwarders": [(item, sender_href(request, item.key, item.keyed_by)) for item in found.forwarders],
        "forwarders_total": found.forwarders_total,
        "broken_groups": [(item, sender_href(request, item.key, item.keyed_by))
                          for item in found.broken_signatures],
        "broken_total": found.broken_signatures_total,
        "figures": [days_figure(request, found.days), forwarders_figure(request, found.forwarders)],
        "json_url": twin_url(request, "/api/v1/forwarding", None, **window),
        "csv_url": twin_url(request, "/api/v1/forwarding", None, format="csv", **window)})
