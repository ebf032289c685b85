"""DNS pages: every watched domain at a glance, and one domain's records, problems and history.

Both read the latest snapshots through `app.dns_query`, as `/api/v1/dns` does, so the page
and its JSON twin agree on every record and every problem; nothing is looked up live.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Annotated

import plotly.graph_objects as go
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.api.dns_models import DnsHistoryOut, IntervalOut
from app.dashboard.figures import Figure, make_figure
from app.dashboard.templating import render
from app.deps import EngineDep, PageDep, SettingsDep, SignedInDep
from app.dns_query import (
    checked_name,
    domain_dns,
    domain_history,
    policy_in_force,
    record_changes,
    shown_answer,
    watched_domains,
    watched_page,
)

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
CHANGES_SHOWN = 200
OUTCOME_COLOURS = {"answer": "#009E73", "nxdomain": "#D55E00", "nodata": "#E69F00", "servfail": "#CC79A7",
                   "timeout": "#999999"}
CHANGED_ANSWER_COLOUR = "#5FC4A5"
"""every other answer of a row is lighter, so back-to-back answers read as two bars"""
OUTCOME_LABELS = {"answer": "Answer", "nxdomain": "No such name", "nodata": "No record of the type",
                  "servfail": "Server failure", "timeout": "No answer"}


@router.get("/dns", response_class=HTMLResponse)
def dns_domains_page(request: Request, engine: EngineDep, settings: SettingsDep, _: SignedInDep,
                     page: PageDep,
                     domain: Annotated[list[str] | None, Query()] = None) -> HTMLResponse:
    limit = min(page.limit or PAGE_SIZE, 100)
    with engine.connect() as conn:
        origins = watched_domains(conn, settings.configured_domains())
        total, items = watched_page(conn, origins, domain or (), limit, page.offset)
    return render(request, "dns.html", {
        "title": "DNS", "active": "dns", "items": items, "total": total, "limit": limit,
        "offset": page.offset, "every_domain": list(origins), "chosen": set(domain or ())})


@router.get("/dns/{domain}", response_class=HTMLResponse)
def dns_domain_page(request: Request, domain: str, engine: EngineDep, _: SignedInDep) -> HTMLResponse:
    name = checked_name(domain)
    with engine.connect() as conn:
        state = domain_dns(conn, name)  # a domain never snapshotted: the 404 page says why
        history = domain_history(conn, name)
    changes = record_changes(history)
    return render(request, "dns_domain.html", {
        "title": f"DNS of {name}", "active": "dns", "name": name, "state": state, "history": history,
        "policy": policy_in_force(state),
        "changes": changes[:CHANGES_SHOWN], "more_changes": max(0, len(changes) - CHANGES_SHOWN),
        "timeline": timeline_figure(history), "figures": True, "shown_answer": shown_answer})


def timeline_figure(history: DnsHistoryOut) -> Figure:
    """A Gantt chart: one row per (name, type), one bar per interval, coloured by outcome, and a
    marker wherever an answer changed. An interval holds until the next one starts (the
    reading of `ingest.dns_history`); the last holds until its last check."""
    runs: dict[tuple[str, str], list[IntervalOut]] = defaultdict(list)
    for interval in history.intervals:
        runs[(interval.name, interval.type)].append(interval)
    starts = [i.first_seen for i in history.intervals]
    ends = [i.last_seen for i in history.intervals]
    span = max(ends) - min(starts) if starts else timedelta(0)
    shortest = max(span / 150, timedelta(minutes=10))  # a single check still shows as a bar
    bars: dict[str, dict[str, list[object]]] = defaultdict(lambda: defaultdict(list))
    changed: dict[str, list[object]] = defaultdict(list)
    for (name, rdtype), run in runs.items():
        row = escape(f"{name} {rdtype}")
        for index, interval in enumerate(run):
            end = run[index + 1].first_seen if index + 1 < len(run) else interval.last_seen
            bar = bars[interval.outcome]
            bar["y"].append(row)
            bar["base"].append(_iso(interval.first_seen))
            bar["x"].append(max(end - interval.first_seen, shortest).total_seconds() * 1000)
            bar["text"].append(_hover(interval, end))
            lighter = interval.outcome == "answer" and index % 2
            bar["colour"].append(CHANGED_ANSWER_COLOUR if lighter else OUTCOME_COLOURS.get(interval.outcome))
            if index > 0:
                changed["x"].append(_iso(interval.first_seen))
                changed["y"].append(row)
                changed["text"].append(f"{row} changed<br>{_short(shown_answer(interval))}")
    traces: list[object] = [
        go.Bar(orientation="h", name=OUTCOME_LABELS.get(outcome, outcome), y=bar["y"], base=bar["base"],
               x=bar["x"], hovertext=bar["text"], hoverinfo="text",
               marker={"color": bar["colour"], "line": {"color": "#ffffff", "width": 1}})
        for outcome, bar in sorted(bars.items(), key=lambda item: list(OUTCOME_COLOURS).index(item[0])
                                   if item[0] in OUTCOME_COLOURS else 99)]
    if changed:
        traces.append(go.Scatter(mode="markers", name="Changed", x=changed["x"], y=changed["y"],
                                 hovertext=changed["text"], hoverinfo="text",
                                 marker={"symbol": "diamond", "size": 11, "color": "#1b1f24"}))
    return make_figure("dns-timeline", "Record history: each bar is a stretch of one unchanged answer",
                       traces, height=max(320, 110 + 28 * len(runs)), barmode="overlay", hovermode="closest",
                       showlegend=True,
                       margin={"l": 16, "r": 16, "t": 16, "b": 40},
                       xaxis={"type": "date", "gridcolor": "#e5e5e5", "automargin": True},
                       yaxis={"type": "category", "autorange": "reversed", "automargin": True})


def _iso(moment: datetime) -> str:
    """UTC without an offset: plotly.js reads no time zones."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _short(text: str, length: int = 120) -> str:
    """Escaped for plotly's hover labels, which read a little HTML; long TXT records cut."""
    lines = [line if len(line) <= length else line[:length] + "…" for line in text.split("\n")[:6]]
    return "<br>".join(escape(line) for line in lines)


def _hover(interval: IntervalOut, end: datetime) -> str:
    when = f"{interval.first_seen:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC, {interval.checks} checks"
    title = escape(f"{interval.name} {interval.type}")
    return f"<b>{title}</b><br>{when}<br>{_short(shown_answer(interval))}"
