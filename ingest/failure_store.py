"""Store failure reports, each exactly once.

A failure report has no identity field of its own that every generator fills (Message-ID is
optional and often reused), so identity is its content: a digest of everything stored, which
the same report re-sent, re-delivered through another path (other Received headers, an mbox
`From ` line, CRLF line ends) or read again on retry reproduces exactly. Writers of one digest
are serialised (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock), so the check and the
insert are one decision; the unique digest column is the last line of defence.

With redaction on, the digest is taken over the redacted content, so nothing stored, not even
a hash, can confirm a guessed address.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, select

from app.db import BEGIN_MODE
from app.failure_models import FailureReport as StoredFailureReport
from app.models import table_of
from ingest.failure_report import FailureReport, parse_failure_report, redact
from ingest.ingest_outcome import ReportOutcome
from ingest.unpack import Payload

FAILURES = table_of(StoredFailureReport)
_BY_DIGEST = select(FAILURES.c.id).where(FAILURES.c.content_digest == bindparam("digest"))


def store_failure_report(engine: Engine, redact_local_parts: bool, payload: Payload,
                         sha256: str) -> ReportOutcome:
    """Parse one failure report and keep it: "new" with its id, or "duplicate" with the first's."""
    with payload.open() as stream:
        data = stream.read()
    report = parse_failure_report(data)
    if redact_local_parts:
        report = redact(report)
    notes = [*payload.notes, *report.notes]
    values = report_values(report, notes)
    digest = content_digest(values)
    with engine.connect() as conn:
        conn = conn.execution_options(**{BEGIN_MODE: "IMMEDIATE"})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (_lock_key(digest),))
            existing = conn.execute(_BY_DIGEST, {"digest": digest}).scalar()
            if existing is not None:
                return ReportOutcome(payload.location, "failure", "duplicate", report_id=int(existing),
                                     records=1, notes=notes)
            report_id = conn.execute(FAILURES.insert().values(
                **values, content_digest=digest, notes=notes, original_sha256=sha256,
                location=payload.location[:1024], stored_at=datetime.now(UTC),
            ).returning(FAILURES.c.id)).scalar_one()
    return ReportOutcome(payload.location, "failure", "new", report_id=int(report_id), records=1, notes=notes)


def report_values(report: FailureReport, notes: list[str] | None = None) -> dict[str, Any]:
    """The row's columns for a report (all but the bookkeeping: digest, notes, origin, time).

    Columns are named as the report's fields; tuples become JSON lists. Free-form values
    longer than their column (a Version or Delivery-Result of 100 characters) are cut, with a
    note, rather than refused by PostgreSQL.
    """
    values = {item.name: _column_value(getattr(report, item.name))
              for item in dataclasses.fields(report) if item.name != "notes"}
    values["arrival_day"] = report.arrival_day
    for name, value in values.items():
        length = getattr(FAILURES.c[name].type, "length", None)
        if isinstance(value, str) and length is not None and len(value) > length:
            values[name] = value[:length]
            if notes is not None:
                notes.append(f"{name} longer than {length} characters; cut")
    return values


def _column_value(value: object) -> object:
    if isinstance(value, tuple):
        return [_column_value(item) for item in value]
    return value


def content_digest(values: dict[str, Any]) -> str:
    """SHA-256 of the row's content in a canonical JSON form (instants in UTC, bytes in hex)."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                                     default=_canonical).encode("utf-8", "surrogatepass")).hexdigest()


def _canonical(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    raise TypeError(f"cannot digest a {type(value).__name__}")


def _lock_key(digest: str) -> int:
    """A signed 64-bit number for PostgreSQL advisory locks."""
    return int.from_bytes(bytes.fromhex(digest[:16]), "big", signed=True)
