"""Who sends as the domains: sources grouped by service, base domain, AS, country or address,
and one group's own page (its addresses, what fails and why, its records).

The list reads `source_groups` exactly as /api/v1/sources does, through the API's own
`SourceItem`; a group's page reads `source_detail_query.group_detail`, the query behind
/api/v1/sources/{group}/{key}. So a page and its JSON twin select the same mail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import plotly.graph_objects as go
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from app.api.read_models import ClassVolume, SourceItem, Window
from app.api.source_detail_models import SourceGroupDetail
from app.dashboard.figures import CLASS_COLOURS, CLASS_LABELS, CLASS_ORDER, Figure, make_figure
from app.dashboard.page_state import PageStateDep
from app.dashboard.routes.overview import source_link
from app.dashboard.routes.reports import window_params
from app.dashboard.templating import carry, render, twin_url
from app.deps import EngineDep, SignedInDep
from app.source_detail_query import ADDRESS_CAP, SAMPLED_WINDOW, group_detail
from app.source_groups import PENDING, UNKNOWN, SourceGrouping, source_groups

router = APIRouter(include_in_schema=False)

GROUPS_PER_PAGE = 50
CHARTED_GROUPS = 20
RECORDS_PER_PAGE = 50
GROUPINGS: tuple[tuple[SourceGrouping, str], ...] = (
    ("service", "Service"), ("base_domain", "Base domain"), ("asn", "Network (AS)"), ("country", "Country"),
    ("ip", "Address"))
GROUPING_NAMES = dict(GROUPINGS)
CLASSES = (*CLASS_ORDER, PENDING)
OffsetQuery = Annotated[int, Query(ge=0, le=2**31 - 1)]
LimitQuery = Annotated[int, Query(ge=1, le=100)]

REASON_TEXT = {
    "reporter_dkim_fail_aligned_pass": "the reporter failed DKIM although an aligned signature passed",
    "reporter_dkim_pass_unaligned": "the reporter passed DKIM on a signature that is not aligned",
    "reporter_spf_fail_aligned_pass": "the reporter failed SPF although aligned SPF passed",
    "reporter_spf_pass_unaligned": "the reporter passed SPF for a domain that is not aligned",
    "spf_result_differs": "SPF of the time gives another result for this address than the reporter's",
    "spf_record_changed_since": "the SPF record has changed since",
    "dkim_key_missing": "the signing key was not published",
    "dkim_key_revoked": "the signing key was revoked (empty p=)",
    "dkim_key_malformed": "the signing key could not be read",
    "dkim_key_weak": "the signing key is RSA under 1024 bits",
    "dkim_key_changed_since": "the signing key has changed since",
    "policy_differs_from_dns": "the policy the report states differs from the DMARC record in DNS",
    "no_snapshot": "judged against DNS looked up after the report's dates",
    "not_snapshotted": "a name the verdict needed was never looked up",
    "dns_temperror": "DNS failed at the time",
}
REVERSE_DNS_TEXT = {"confirmed": "confirmed", "unconfirmed": "not confirmed", "no_ptr": "no PTR",
                    "temperror": "lookup failed"}


def key_label(group: str, key: str) -> str:
    """How a group's key reads: an AS number as `AS64500`, the two special keys in words."""
    if key == PENDING:
        return "Not identified yet"
    if key == UNKNOWN:
        return "Unknown"
    if group == "asn" and key.isdigit():
        return f"AS{key}"
    return key


def identity_text(group: str, item: Any) -> str:
    """What the group's addresses share, beside its key."""
    if group == "service":
        return item.service_type or ""
    if group == "asn":
        return item.as_name or ""
    if group == "ip":
        parts = [item.sender if item.sender not in (None, UNKNOWN) else None, item.ptr,
                 f"AS{item.asn}" if item.asn else item.as_name, item.country]
        return " · ".join(part for part in parts if part)
    return ""


@dataclass(frozen=True, slots=True)
class GroupRow:
    item: SourceItem
    label: str
    href: str
    identity: str
    classes: list[tuple[str, int]]


def class_list(classes: ClassVolume | dict[str, int]) -> list[tuple[str, int]]:
    values = classes if isinstance(classes, dict) else classes.model_dump()
    return [(name, values.get(name, 0)) for name in CLASSES if values.get(name)]


# -- the list -----------------------------------------------------------------------------------

def groups_figure(group: SourceGrouping, rows: list[GroupRow]) -> Figure:
    """Messages per group, stacked by class; a bar opens the group's page."""
    shown = rows[:CHARTED_GROUPS]
    labels = [row.label for row in shown]
    names = [name for name in CLASSES if any(getattr(row.item.classes, name) for row in shown)]
    traces = [go.Bar(y=labels, x=[getattr(row.item.classes, name) for row in shown], orientation="h",
                     name=CLASS_LABELS[name], marker_color=CLASS_COLOURS[name],
                     customdata=[row.href for row in shown],
                     hovertemplate="%{y}: %{x:,} messages<extra>" + CLASS_LABELS[name] + "</extra>")
              for name in names]
    return make_figure("sources-groups", f"Messages per {GROUPING_NAMES[group].lower()}, by class (top "
                                         f"{min(len(shown), CHARTED_GROUPS)})", traces,
                       barmode="stack", hovermode="closest", height=max(240, 60 + 26 * len(shown)),
                       margin={"l": 16, "r": 16, "t": 8, "b": 40},
                       yaxis={"autorange": "reversed", "automargin": True, "type": "category"})


def _rows(request: Request, group: SourceGrouping, items: list[SourceItem]) -> list[GroupRow]:
    return [GroupRow(item, key_label(group, item.key), carry(request, source_link(group, item.key)),
                     identity_text(group, item), class_list(item.classes)) for item in items]


def _items(result: Any, group: SourceGrouping) -> list[SourceItem]:
    """The page's groups as /api/v1/sources says them."""
    return [SourceItem.of(found.group.tally, group=group, key=found.group.key,
                          source_ip=found.group.key if group == "ip" else None, sources=found.sources,
                          classes=ClassVolume.of(found.classes, found.group.tally.messages),
                          first_day=found.group.first_day, last_day=found.group.last_day, **found.identity)
            for found in result.groups]


@router.get("/sources")
def sources_page(request: Request, _: SignedInDep, engine: EngineDep, state: PageStateDep,
                 group: Annotated[SourceGrouping, Query()] = "service",
                 offset: OffsetQuery = 0, limit: LimitQuery = GROUPS_PER_PAGE) -> Response:
    page = source_groups(engine, state.flt, group, limit, offset)
    charted = page if offset == 0 and limit >= CHARTED_GROUPS else \
        source_groups(engine, state.flt, group, CHARTED_GROUPS, 0)
    rows = _rows(request, group, _items(page, group))
    chart_rows = rows if charted is page else _rows(request, group, _items(charted, group))
    figures = [groups_figure(group, chart_rows)]
    twin = {"group": group, "limit": limit, "offset": offset or None, **window_params(state)}
    return render(request, "sources.html", {
        "title": f"Senders by {GROUPING_NAMES[group].lower()}", "active": "sources", "state": state,
        "group": group, "groupings": GROUPINGS, "rows": rows, "total": page.total, "limit": limit,
        "offset": offset, "figures": figures,
        "json_url": _twin(request, "/api/v1/sources", twin),
        "csv_url": _twin(request, "/api/v1/sources", {**twin, "format": "csv"})})


def _twin(request: Request, path: str, changes: dict[str, Any]) -> str:
    return twin_url(request, path, None, **changes)


# -- one group ----------------------------------------------------------------------------------

def classes_figure(classes: dict[str, int]) -> Figure:
    names = [name for name in CLASSES if classes.get(name)]
    values = [classes[name] for name in names]
    trace = go.Bar(x=values, y=[CLASS_LABELS[name] for name in names],
                   orientation="h", marker_color=[CLASS_COLOURS[name] for name in names],
                   hovertemplate="%{y}: %{x:,} messages<extra></extra>")
    xaxis: dict[str, Any] = {"gridcolor": "#e5e5e5", "rangemode": "tozero"}
    if max(values, default=0) < 5:
        xaxis["dtick"] = 1  # whole messages: no 0.2 ticks under a bar of one
    return make_figure("source-classes", "Messages by class", [trace], showlegend=False, hovermode="closest",
                       height=max(180, 60 + 34 * len(names)), margin={"l": 16, "r": 16, "t": 8, "b": 32},
                       xaxis=xaxis, yaxis={"autorange": "reversed", "automargin": True, "type": "category"})


@router.get("/sources/{group}/{key:path}")
def source_page(request: Request, _: SignedInDep, engine: EngineDep, state: PageStateDep,
                group: Annotated[SourceGrouping, Path()], key: Annotated[str, Path(max_length=300)],
                offset: OffsetQuery = 0) -> Response:
    with engine.connect() as conn:
        detail = group_detail(conn, state.flt, group, key, RECORDS_PER_PAGE, offset)
    flt = state.flt
    data = SourceGroupDetail.build(detail, Window(since=flt.window.since, until=flt.window.until),
                                   RECORDS_PER_PAGE, offset)
    twin = {"limit": RECORDS_PER_PAGE, "offset": offset or None, **window_params(state)}
    records_twin: str | None = None
    records_csv: str | None = None
    if group == "ip":  # the records alone are /api/v1/records of the address
        records_twin = _twin(request, "/api/v1/records", {**twin, "source_ip": key})
        # the export is every record of the address in the window, not the page's 50
        records_csv = _twin(request, "/api/v1/records", {**window_params(state), "limit": None,
                                                         "offset": None, "source_ip": key, "format": "csv"})
    api_path = source_link(group, key).replace("/sources/", "/api/v1/sources/", 1)
    return render(request, "source.html", {
        "title": f"{GROUPING_NAMES[group]} {key_label(group, key)}", "active": "sources", "state": state,
        "group": group, "key": key, "label": key_label(group, key), "grouping_name": GROUPING_NAMES[group],
        "detail": detail, "data": data, "classes": class_list(detail.classes),
        "figures": [classes_figure(detail.classes)] if detail.classes else [],
        "reason_text": REASON_TEXT, "reverse_dns_text": REVERSE_DNS_TEXT, "address_cap": ADDRESS_CAP,
        "sampled_window": SAMPLED_WINDOW, "records_per_page": RECORDS_PER_PAGE, "offset": offset,
        "list_href": _list_href(request, group),
        "json_url": _twin(request, api_path, twin),
        "csv_url": _twin(request, api_path, {**twin, "format": "csv"}),
        "records_json_url": records_twin, "records_csv_url": records_csv})


def _list_href(request: Request, group: str) -> str:
    link = carry(request, "/sources")
    return f"{link}{'&' if '?' in link else '?'}group={group}"
