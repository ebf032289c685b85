"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse

from app import __version__, problems
from app.api.routes import (
    collector,
    dns,
    docs,
    domains,
    failures,
    forwarding,
    health,
    metrics,
    overview,
    records,
    report_upload,
    reports,
    sources,
    summary,
    tls,
    tokens,
    users,
)
from app.dashboard.error_page import ErrorPage
from app.dashboard.routes import ROUTERS as DASHBOARD_ROUTERS
from app.db import get_engine
from app.deps import LoginRequired
from app.metrics import Metrics
from app.request_observer import RequestObserver
from app.settings import Settings, get_settings
from ingest.collector_status import StatusBoard
from ingest.dns_watch import DnsWatcher
from ingest.imap_collector import Collector
from ingest.pipeline import IngestPipeline

DESCRIPTION = """\
Self-hosted DMARC report collector and analytics.

Every endpoint but `/healthz`, `/readyz` and (unless configured otherwise) `/metrics` needs an
API token, sent as `Authorization: Bearer <token>`. Make one with
`rua token create --name NAME --scope ingest|read|admin`: `ingest` may upload reports, `read`
may read everything, `admin` may do both and manage tokens and users.

Errors are RFC 9457 problem documents (`application/problem+json`).
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """`rua serve` collects from the configured mailboxes in background threads, beside the app,
    and keeps the DNS history and the verdicts current in another: a mailbox that fails (a wrong
    password, a server down) or a dead DNS never stops the web app."""
    settings: Settings = app.state.settings
    collector = None
    if app.state.collected_mailboxes:
        collector = Collector(app.state.collected_mailboxes, app.state.pipeline, app.state.collector_board,
                              observe=app.state.metrics.observe_ingest, workers=settings.ingest_workers())
        collector.start()
    watcher = None
    if settings.dns_in_serve:
        watcher = DnsWatcher(app.state.engine, settings.live_resolver(), settings.configured_domains(),
                             timedelta(seconds=settings.dns_snapshot_interval),
                             catalogue=settings.sender_catalogue())
        watcher.start()
    try:
        yield
    finally:
        if collector is not None:
            collector.stop()
        if watcher is not None:
            watcher.stop()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # the stock docs pages load their scripts from a CDN; ours are served locally, behind auth
    app = FastAPI(title="Rua", version=__version__, description=DESCRIPTION,
                  docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = get_engine(settings.database_url)
    app.state.pipeline = IngestPipeline(app.state.engine, settings.data_dir, settings.unpack_limits,
                                        settings.redact_local_parts)
    problems.install(app)
    app.state.error_page = ErrorPage()

    @app.exception_handler(LoginRequired)
    async def _sign_in_first(request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse("/login?" + urlencode({"next": exc.next_url}), status_code=303)

    app.state.collected_mailboxes = settings.all_mailboxes() if settings.collect_in_serve else []
    app.state.collector_board = StatusBoard(app.state.engine) if app.state.collected_mailboxes else None
    app.state.metrics = Metrics(app.state.engine, app.state.collector_board)
    app.add_middleware(RequestObserver, metrics=app.state.metrics)
    for router in (health.router, reports.router, report_upload.router, records.router, summary.router,
                   sources.router, domains.router, dns.router, tls.router, failures.router, collector.router,
                   tokens.router, users.router, metrics.router, docs.router, forwarding.router,
                   overview.router):
        app.include_router(router)
    for router in DASHBOARD_ROUTERS:
        app.include_router(router)
    return app
