"""Store SMTP TLS reports, each exactly once.

A report is identified by its folded organization-name and report-id (RFC 8460 §4.4 makes
the id unique per sender). Writers of one identity are serialised like aggregate writers
(SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock on the identity), so "is it stored
already?" and the insert that follows are one decision. The same content again, in any
container or encoding, is a duplicate delivery; other content under the same identity is a
re-issue, kept beside the first and flagged, never merged over it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.engine import Connection

from app.db import BEGIN_MODE
from app.models import table_of
from app.tls_models import TlsFailureRow, TlsPolicyRow, TlsReportOrigin, TlsReportRow
from ingest.compressed_stream import read_limited
from ingest.ingest_outcome import ReportOutcome
from ingest.report_identity import org_name_key
from ingest.tls_report import TlsReport, parse_tls_report
from ingest.unpack import Payload

MAX_TLS_REPORT_BYTES = 64 * 1024 * 1024
"""Real TLS reports are kilobytes; one this large is an attack or an accident."""

_REPORTS, _ORIGINS = table_of(TlsReportRow), table_of(TlsReportOrigin)
_POLICIES, _FAILURES = table_of(TlsPolicyRow), table_of(TlsFailureRow)
_COPIES = (select(_REPORTS.c.id, _REPORTS.c.content_digest)
           .where(_REPORTS.c.identity_hash == bindparam("identity")).order_by(_REPORTS.c.id))
_ORIGIN_EXISTS = select(_ORIGINS.c.report_id).where(
    _ORIGINS.c.report_id == bindparam("report_id"),
    _ORIGINS.c.original_sha256 == bindparam("original_sha256"), _ORIGINS.c.location == bindparam("location"))
_MAX_KEY = 255


def store_tls_report(engine: Engine, payload: Payload, sha256: str) -> ReportOutcome:
    """Parse one TLS report and store it unless it is stored already.

    Bad input raises `IngestError` (the pipeline reports it as a failed report); database
    errors propagate, since then nothing can be promised and the input must be retried.
    """
    with payload.open() as stream:
        data = read_limited(stream, MAX_TLS_REPORT_BYTES, "max_tls_report_bytes", "a JSON TLS report")
    report = parse_tls_report(data)
    notes = [*report.notes, *payload.notes]
    identity = identity_hash(report)
    digest = content_digest(report)
    records = len(report.policies)
    with _identity_transaction(engine, identity) as conn:
        copies = list(conn.execute(_COPIES, {"identity": identity}))
        for report_row_id, stored_digest in copies:
            if stored_digest == digest:
                _add_origin(conn, report_row_id, sha256, payload.location)
                return ReportOutcome(payload.location, "tls", "duplicate", report_id=report_row_id,
                                     records=records)
        conflict_of = copies[0][0] if copies else None
        if conflict_of is not None:
            notes.append(f"same identity as TLS report {conflict_of} but different content: kept as a "
                         "conflicting copy")
        report_row_id = _insert(conn, report, identity, digest, notes, conflict_of, sha256, payload.location)
    return ReportOutcome(payload.location, "tls", "new", report_id=report_row_id, records=records,
                         conflict_of=conflict_of, notes=notes)


def identity_hash(report: TlsReport) -> str:
    """What makes two TLS reports the same report: who sent it and the id they gave it."""
    text = "\x1f".join(("tls", org_name_key(report.organization_name) or "", report.report_id))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_digest(report: TlsReport) -> str:
    """What the report says, after parsing: a re-send that differs only in encoding, key
    order, white space or the order of its policies and failures has the same digest."""
    policies = sorted(json.dumps([
        p.policy_type, p.policy_domain, list(p.policy_strings), list(p.mx_hosts), p.total_successful,
        p.total_failure, sorted(json.dumps([
            f.result_type, f.sending_mta_ip, f.receiving_mx_hostname, f.receiving_mx_helo, f.receiving_ip,
            f.failed_session_count, f.additional_information, f.failure_reason_code])
            for f in p.failure_details)]) for p in report.policies)
    document = [org_name_key(report.organization_name), report.report_id, report.start.isoformat(),
                report.end.isoformat(), report.contact_info, policies]
    return hashlib.sha256(json.dumps(document).encode("ascii")).hexdigest()


@contextmanager
def _identity_transaction(engine: Engine, identity: str) -> Iterator[Connection]:
    """One transaction in which no other writer of this identity can decide anything."""
    with engine.connect() as conn:
        conn = conn.execution_options(**{BEGIN_MODE: "IMMEDIATE"})
        with conn.begin():
            if engine.dialect.name == "postgresql":
                lock_key = int.from_bytes(bytes.fromhex(identity[:16]), "big", signed=True)
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
            yield conn


def _add_origin(conn: Connection, report_row_id: int, sha256: str, location: str,
                new_report: bool = False) -> None:
    values = {"report_id": report_row_id, "original_sha256": sha256, "location": location[:1024]}
    if new_report or not conn.execute(_ORIGIN_EXISTS, values).first():
        conn.execute(_ORIGINS.insert(), {**values, "received_at": datetime.now(UTC)})


def _insert(conn: Connection, report: TlsReport, identity: str, digest: str, notes: list[str],
            conflict_of: int | None, sha256: str, location: str) -> int:
    report_row_id = int(conn.execute(_REPORTS.insert().returning(_REPORTS.c.id), {
        "identity_hash": identity, "content_digest": digest,
        "organization_name": report.organization_name,
        "organization_key": (org_name_key(report.organization_name) or "")[:_MAX_KEY],
        "report_id": report.report_id, "contact_info": report.contact_info,
        "date_begin": report.start, "date_end": report.end, "policy_domains": list(report.policy_domains),
        "policy_count": len(report.policies), "successful": report.total_successful,
        "failed": report.total_failure, "notes": notes, "conflict_of_id": conflict_of,
        "original_sha256": sha256, "location": location, "ingested_at": datetime.now(UTC),
    }).scalar_one())
    policies = [{"report_id": report_row_id, "seq": seq, "policy_type": p.policy_type,
                 "policy_domain": p.policy_domain, "policy_strings": list(p.policy_strings),
                 "mx_hosts": list(p.mx_hosts), "successful": p.total_successful, "failed": p.total_failure}
                for seq, p in enumerate(report.policies, 1)]
    failures = [{"report_id": report_row_id, "policy_seq": policy_seq, "seq": seq,
                 "result_type": f.result_type, "sending_mta_ip": f.sending_mta_ip,
                 "receiving_mx_hostname": f.receiving_mx_hostname, "receiving_mx_helo": f.receiving_mx_helo,
                 "receiving_ip": f.receiving_ip, "failed_session_count": f.failed_session_count,
                 "additional_information": f.additional_information,
                 "failure_reason_code": f.failure_reason_code}
                for policy_seq, p in enumerate(report.policies, 1)
                for seq, f in enumerate(p.failure_details, 1)]
    if policies:
        conn.execute(_POLICIES.insert(), policies)
    if failures:
        conn.execute(_FAILURES.insert(), failures)
    _add_origin(conn, report_row_id, sha256, location, new_report=True)
    return report_row_id
