"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from app import __version__
from app.api.routes import health, reports
from app.db import get_engine
from app.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="Rua", version=__version__,
                  description="Self-hosted DMARC report collector and analytics.")
    app.state.settings = settings
    app.state.engine = get_engine(settings.database_url)
    app.include_router(health.router)
    app.include_router(reports.router)
    return app
