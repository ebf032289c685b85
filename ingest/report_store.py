"""Write inputs and aggregate reports to the database, each report exactly once.

Records go in with plain DB-API `executemany` over prepared statements: at a million records
an ORM object (or even a dict) per row would cost more than parsing. Writers of one report
identity are serialised (SQLite: the write lock taken at BEGIN IMMEDIATE; PostgreSQL: an
advisory lock on the identity), so the duplicate check and the insert that follows are one
atomic decision even under concurrent uploads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, select, update
from sqlalchemy.engine import Connection

from app.db import BEGIN_MODE
from app.models import Original, Report, ReportOrigin
from ingest.aggregate_report import AggregateRecord, ReportHeader
from ingest.original_store import StoredOriginal
from ingest.report_identity import ReportIdentity, org_name_key
from ingest.sniff import ContainerKind


def utcnow() -> datetime:
    return datetime.now(UTC)


def _table(model: type) -> Table:
    return model.__table__  # type: ignore[attr-defined, no-any-return]


_RECORD_COLUMNS = ("report_id", "record_no", "source_ip", "source_ip_packed", "count", "disposition",
                   "dkim", "spf", "header_from", "envelope_from", "envelope_to", "raw_values")
_PART_COLUMNS = {
    "record_reason": ("report_id", "record_no", "seq", "type", "comment", "type_raw"),
    "record_dkim_result": ("report_id", "record_no", "seq", "domain", "selector", "result",
                           "human_result", "result_raw"),
    "record_spf_result": ("report_id", "record_no", "seq", "domain", "scope", "result",
                          "human_result", "result_raw"),
}


class ReportStore:
    """The database side of ingest; one per engine, safe to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._insert_sql = {
            name: f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"
            for name, cols in {"aggregate_record": _RECORD_COLUMNS, **_PART_COLUMNS}.items()
        }

    # -- originals ----------------------------------------------------------------------

    def note_original(self, original: StoredOriginal, source: str) -> bool:
        """Register a received input; returns False when these exact bytes came before."""
        now = utcnow()
        table = _table(Original)
        with self.engine.begin() as conn:
            known = conn.execute(select(table.c.sha256).where(table.c.sha256 == original.sha256)).first()
            if known:
                conn.execute(update(table).where(table.c.sha256 == original.sha256).values(
                    receipts=table.c.receipts + 1, last_seen_at=now))
                return False
            conn.execute(table.insert().values(
                sha256=original.sha256, size=original.size, container=str(original.container),
                storage_path=original.storage_path, source=source[:1024], first_seen_at=now,
                last_seen_at=now, status="processing"))
        return True

    def finish_original(self, sha256: str, status: str, error: str | None, counts: dict[str, int],
                        retry: bool = False) -> None:
        table = _table(Original)
        values: dict[str, Any] = {"status": status, "error": error, **counts}
        if retry:
            values["attempts"] = table.c.attempts + 1
        with self.engine.begin() as conn:
            conn.execute(update(table).where(table.c.sha256 == sha256).values(**values))

    def originals_to_retry(self) -> list[tuple[StoredOriginal, str]]:
        """Every input that failed, partly failed or never finished, with its source name."""
        table = _table(Original)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.sha256, table.c.size, table.c.container, table.c.storage_path,
                       table.c.source)
                .where(table.c.status.in_(("failed", "partial", "processing")))
                .order_by(table.c.first_seen_at))
            return [(StoredOriginal(row.sha256, row.size, ContainerKind(row.container),
                                    row.storage_path), row.source) for row in rows]

    # -- reports --------------------------------------------------------------------------

    @contextmanager
    def report_transaction(self, identity: ReportIdentity) -> Iterator[ReportTransaction]:
        """One report's whole write, atomic; concurrent writers of the same identity wait."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{BEGIN_MODE: "IMMEDIATE"})
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (identity.lock_key,))
                yield ReportTransaction(self, conn, identity)


class ReportTransaction:
    """The writes of one report inside its transaction."""

    def __init__(self, store: ReportStore, conn: Connection, identity: ReportIdentity) -> None:
        self._store = store
        self.conn = conn
        self.identity = identity
        self._identity_hash = identity.hash

    def existing_copies(self) -> list[tuple[int, str | None]]:
        table = _table(Report)
        rows = self.conn.execute(
            select(table.c.id, table.c.content_digest)
            .where(table.c.identity_hash == self._identity_hash).order_by(table.c.id))
        return [(row[0], row[1]) for row in rows]

    def insert_report(self, header: ReportHeader, original_sha256: str, location: str,
                      conflict_of: int | None) -> int:
        policy = header.policy
        table = _table(Report)
        result = self.conn.execute(table.insert().values(
            identity_hash=self._identity_hash,
            org_name=header.org_name, org_name_key=org_name_key(header.org_name),
            email=header.email, extra_contact_info=header.extra_contact_info,
            report_id=header.report_id, policy_domain=policy.domain,
            date_begin=header.begin, date_end=header.end, errors=list(header.errors),
            generator=header.generator, version=header.version, xml_namespace=header.xml_namespace,
            adkim=policy.adkim, aspf=policy.aspf, p=policy.p, sp=policy.sp, np=policy.np,
            pct=policy.pct, fo=policy.fo, testing=policy.testing,
            discovery_method=policy.discovery_method, repair_notes=[],
            conflict_of_id=conflict_of, original_sha256=original_sha256,
            location=location, ingested_at=utcnow(),
        ).returning(table.c.id))
        report_id = int(result.scalar_one())
        self.add_origin(report_id, original_sha256, location)
        return report_id

    def add_origin(self, report_id: int, original_sha256: str, location: str) -> None:
        table = _table(ReportOrigin)
        exists = self.conn.execute(select(table.c.report_id).where(
            table.c.report_id == report_id, table.c.original_sha256 == original_sha256,
            table.c.location == location[:1024])).first()
        if not exists:
            self.conn.execute(table.insert().values(
                report_id=report_id, original_sha256=original_sha256, location=location[:1024],
                received_at=utcnow()))

    def insert_records(self, report_id: int, records: Sequence[AggregateRecord]) -> None:
        rows = []
        reasons = []
        dkim = []
        spf = []
        for record in records:
            number = record.position
            raw = record.raw
            rows.append((report_id, number, record.source_ip, record.source_ip_packed, record.count,
                         record.disposition, record.dkim, record.spf, record.header_from,
                         record.envelope_from, record.envelope_to,
                         json.dumps(raw) if raw else None))
            if record.reasons:
                reasons.extend((report_id, number, seq, *reason)
                               for seq, reason in enumerate(record.reasons))
            if record.dkim_results:
                dkim.extend((report_id, number, seq, *result)
                            for seq, result in enumerate(record.dkim_results))
            if record.spf_results:
                spf.extend((report_id, number, seq, *result)
                           for seq, result in enumerate(record.spf_results))
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        sql = self._store._insert_sql
        try:
            cursor.executemany(sql["aggregate_record"], rows)
            if reasons:
                cursor.executemany(sql["record_reason"], reasons)
            if dkim:
                cursor.executemany(sql["record_dkim_result"], dkim)
            if spf:
                cursor.executemany(sql["record_spf_result"], spf)
        finally:
            cursor.close()

    def finish_report(self, report_id: int, digest: str, record_count: int, message_count: int,
                      notes: list[str]) -> None:
        table = _table(Report)
        self.conn.execute(update(table).where(table.c.id == report_id).values(
            content_digest=digest, record_count=record_count, message_count=message_count,
            repair_notes=notes))

