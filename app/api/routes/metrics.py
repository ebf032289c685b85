"""`/metrics` for Prometheus: public by default, or behind a `read` token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST

from app.api_tokens import Scope
from app.deps import EngineDep, SettingsDep, bearer, require
from app.metrics import Metrics
from app.problems import problem_responses

router = APIRouter(tags=["operations"])

EXAMPLE = """\
# HELP rua_inputs_total Inputs ingested, by outcome (ok, partial, failed, deferred)
# TYPE rua_inputs_total counter
rua_inputs_total{status="ok"} 42.0
# HELP rua_stored_reports Aggregate reports in the store
# TYPE rua_stored_reports gauge
rua_stored_reports 40.0
"""


def metrics_access(request: Request, settings: SettingsDep, engine: EngineDep,
                   credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    """Scrapers usually run inside the trusted network without credentials, so the metrics
    are public unless `RUA_PUBLIC_METRICS=false`, which asks for a `read` token."""
    if not settings.public_metrics:
        require(Scope.READ)(request, engine, credentials)


@router.get(
    "/metrics", response_class=Response, dependencies=[Depends(metrics_access)],
    summary="Prometheus metrics",
    responses={200: {"description": "Metrics in the Prometheus text exposition format",
                     "content": {"text/plain": {"schema": {"type": "string"}, "example": EXAMPLE}}},
               **problem_responses(401, 403)})
def metrics(request: Request) -> Response:
    """Inputs, reports and records ingested, failures by reason, request counts and latency by
    route, and the store's totals (read from the database at each scrape)."""
    registry: Metrics = request.app.state.metrics
    return Response(registry.exposition(), media_type=CONTENT_TYPE_LATEST)
