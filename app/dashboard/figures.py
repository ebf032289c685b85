"""Plotly figures for the dashboard, built in Python and drawn by the locally served plotly.js.

A figure travels as JSON inside a `<script type="application/json">` element, read by
`frontend/static/rua.js`: no inline script, so the pages keep a strict CSP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

CLASS_ORDER = ("aligned", "forwarded", "forwarding_failure", "misconfigured", "unauthorised")
CLASS_LABELS = {
    "aligned": "Aligned",
    "forwarded": "Forwarded",
    "forwarding_failure": "Forwarding failure",
    "misconfigured": "Misconfigured",
    "unauthorised": "Unauthorised",
    "pending": "Not judged yet",
}
# a colour-blind-safe set (Okabe–Ito), kept the same for a class on every page
CLASS_COLOURS = {
    "aligned": "#009E73",
    "forwarded": "#56B4E9",
    "forwarding_failure": "#E69F00",
    "misconfigured": "#CC79A7",
    "unauthorised": "#D55E00",
    "pending": "#999999",
}
DISPOSITION_COLOURS = {"none": "#009E73", "quarantine": "#E69F00", "reject": "#D55E00"}

_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                               "\u2028": "\\u2028", "\u2029": "\\u2029"})


@dataclass(frozen=True, slots=True)
class Figure:
    """A figure ready for a page: its element id, accessible title and JSON."""

    id: str
    title: str
    json: str
    empty: bool = False


def figure_json(figure: go.Figure) -> str:
    """The figure as JSON that cannot end its `<script>` element early, whatever names it holds."""
    return str(pio.to_json(figure, validate=False, engine="json")).translate(_JSON_ESCAPES)


def layout(**changes: Any) -> dict[str, Any]:
    """The look every figure shares: compact margins, a legend below, no plotly logo."""
    base: dict[str, Any] = {
        "margin": {"l": 56, "r": 16, "t": 16, "b": 40},
        "legend": {"orientation": "h", "y": -0.18},
        "font": {"family": "system-ui, sans-serif", "size": 13},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "hovermode": "x unified",
        "height": 320,
        "template": "none",  # plotly's default theme would add 7 kB of JSON to every figure
        "xaxis": {"gridcolor": "#e5e5e5", "automargin": True},
        "yaxis": {"gridcolor": "#e5e5e5", "automargin": True, "rangemode": "tozero"},
    }
    base.update(changes)
    return base


def make_figure(id_: str, title: str, traces: list[Any], **layout_changes: Any) -> Figure:
    figure = go.Figure(data=traces, layout=layout(**layout_changes), skip_invalid=True)
    empty = not any(len(getattr(trace, "x", None) or getattr(trace, "values", None) or ())
                    for trace in traces)
    return Figure(id_, title, figure_json(figure), empty)
