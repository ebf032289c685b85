"""Placeholder until the failure report parser lands: the report is recognised and kept, not parsed."""

from __future__ import annotations

from sqlalchemy import Engine

from ingest.ingest_outcome import ReportOutcome
from ingest.unpack import Payload


def store_failure_report(engine: Engine, redact_local_parts: bool, payload: Payload,
                         sha256: str) -> ReportOutcome:
    return ReportOutcome(payload.location, str(payload.kind), "deferred",
                         error=f"{payload.kind} reports are recognised but not parsed yet; the input is kept")
