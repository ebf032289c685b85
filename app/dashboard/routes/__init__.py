"""One router per dashboard resource; `app.main` includes every one listed here."""

from fastapi import APIRouter

from app.dashboard.routes import (
    assets,
    dns,
    failures,
    forwarding,
    overview,
    reports,
    session,
    sources,
    tls,
    upload,
)

ROUTERS: tuple[APIRouter, ...] = (
    session.router,
    assets.router,
    reports.router,
    overview.router,
    upload.router,
    dns.router,
    failures.router,
    tls.router,
    sources.router,
    forwarding.router,
)
