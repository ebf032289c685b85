"""Errors on dashboard pages are said as a page, in the dashboard's frame; scripts calling the
API keep getting problem documents."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request
from fastapi.responses import Response

from app.dashboard.templating import render

API_PREFIXES = ("/api/", "/openapi.json", "/docs", "/redoc", "/metrics", "/healthz", "/readyz", "/static/")


class ErrorPage:
    def wanted(self, request: Request) -> bool:
        accepts_html = "text/html" in request.headers.get("accept", "")
        return accepts_html and not request.url.path.startswith(API_PREFIXES)

    def render(self, request: Request, status: int, title: str, detail: str | None,
               headers: Mapping[str, str] | None) -> Response:
        return render(request, "error.html", {"title": title, "status": status, "detail": detail},
                      status_code=status, headers=dict(headers or {}))
