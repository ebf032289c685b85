"""Liveness and readiness, answered without authentication."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import text

from app.deps import EngineDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up (says nothing about the database)."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(engine: EngineDep, response: Response) -> dict[str, str]:
    """The database answers; load balancers should only route here when this is 200."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready", and says why
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "unavailable", "error": type(exc).__name__}
    return {"status": "ok"}
