"""Renders the dashboard's pages from `frontend/templates`.

Every value reaches HTML through Jinja's autoescaping; report data (org names, domains,
header_from) is attacker-controlled, so nothing is ever marked safe except the JSON of
figures, which is escaped for a `<script>` element by `figures.figure_json`. Every page
goes out with a Content-Security-Policy that allows only Rua's own scripts, so even a
mistake cannot run an injected one or make the browser call anyone else.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from app import __version__

FRONTEND = Path(__file__).resolve().parent.parent.parent / "frontend"
TEMPLATES = FRONTEND / "templates"

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",  # plotly.js sets style attributes on what it draws
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages hold report data: not for shared caches or the back button
}

NAVIGATION = (
    ("overview", "/", "Overview"),
    ("sources", "/sources", "Senders"),
    ("forwarding", "/forwarding", "Forwarding"),
    ("reports", "/reports", "Reports"),
    ("dns", "/dns", "DNS"),
    ("failures", "/failures", "Failure reports"),
    ("tls", "/tls", "TLS reports"),
)


def number(value: int | float | None) -> str:
    """Thousands separated with a thin space, readable in every locale."""
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}".replace(",", "\u202f")
    return f"{int(value):,}".replace(",", "\u202f")


def percent(value: float | None, digits: int = 1) -> str:
    """A 0..1 rate as a percentage; – when there is nothing to divide."""
    return "–" if value is None else f"{value * 100:.{digits}f}\u202f%"


def day(value: date | datetime | str | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value[:10]
    return value.strftime("%Y-%m-%d")


def moment(value: datetime | str | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value.replace("T", " ")[:16]
    return value.strftime("%Y-%m-%d %H:%M")


def url_with(request: Request, path: str | None = None, /, **changes: Any) -> str:
    """This page's URL (or `path`) with query parameters changed: a value of None removes one,
    a list repeats it. The rest of the state (domains, window, reporter) is kept, so every link
    and every form leaves the user's view as it was."""
    items: list[tuple[str, str]] = [(key, value) for key, value in request.query_params.multi_items()
                                    if key not in changes and key != "offset"]
    for key, value in changes.items():
        if value is None or value == "":
            continue
        if isinstance(value, list | tuple):
            items.extend((key, str(each)) for each in value)
        else:
            items.append((key, str(value)))
    query = urlencode(items)
    target = path if path is not None else request.url.path
    return f"{target}?{query}" if query else target


SHARED_STATE = ("domain", "since", "until", "org")
"""what moving to another page keeps: the domains, the window and the reporter looked at"""


def carry(request: Request, path: str) -> str:
    """A link to another page that keeps the view's shared state."""
    query = urlencode([(key, value) for key, value in request.query_params.multi_items()
                       if key in SHARED_STATE])
    return f"{path}?{query}" if query else path


def twin_url(request: Request, api_path: str, keep: tuple[str, ...] | None = None, /, **changes: Any) -> str:
    """The JSON API's URL for what this page shows: the same query parameters on the API path
    (only those in `keep`, when the API takes fewer than the page)."""
    items = [(key, value) for key, value in request.query_params.multi_items()
             if (keep is None or key in keep) and key not in changes]
    items.extend((key, str(value)) for key, value in changes.items() if value is not None)
    query = urlencode(items)
    return f"{api_path}?{query}" if query else api_path


def _environment() -> Environment:
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              auto_reload=False)
    environment.filters.update(number=number, percent=percent, day=day, moment=moment)
    environment.globals.update(url_with=url_with, twin_url=twin_url, carry=carry, navigation=NAVIGATION,
                               version=__version__)
    return environment


_ENVIRONMENT = _environment()


def render(request: Request, template: str, context: Mapping[str, Any], status_code: int = 200,
           headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """A page: the template with the request, the signed-in user and their CSRF token (when
    the route has them), and the security headers."""
    signed_in = getattr(request.state, "signed_in", None)
    html = _ENVIRONMENT.get_template(template).render(
        request=request, signed_in=signed_in, csrf_token=signed_in.csrf_token if signed_in else "",
        **context)
    return HTMLResponse(html, status_code=status_code, headers={**PAGE_HEADERS, **(headers or {})})
