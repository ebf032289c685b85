"""Write inputs and aggregate reports to the database, each report exactly once.

Records go in with plain DB-API `executemany` over prepared statements: at a million records
an ORM object (or even a dict) per row would cost more than parsing. Writers of one report
identity are serialised (SQLite: the write lock taken at BEGIN IMMEDIATE; PostgreSQL: an
advisory lock on the identity), so the duplicate check and the insert that follows are one
atomic decision even under concurrent uploads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from app.db import BEGIN_MODE
from app.models import Original, Record, Report, ReportOrigin, table_of
from ingest import daily_totals
from ingest.aggregate_report import ReportHeader
from ingest.original_store import StoredOriginal
from ingest.record_batch import TABLE_COLUMNS, RecordBatch, Row, rows_digest
from ingest.report_identity import HEADER_FIELDS, ContentDigest, ReportIdentity, org_name_key
from ingest.sniff import ContainerKind


def utcnow() -> datetime:
    return datetime.now(UTC)



class ReportStore:
    """The database side of ingest; one per engine, safe to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"

    def insert_sql(self, table: str, report_id: int) -> str:
        columns = TABLE_COLUMNS[table]
        marks = ", ".join([self._mark] * len(columns))
        return f"INSERT INTO {table} (report_id, {', '.join(columns)}) VALUES ({int(report_id)}, {marks})"

    # -- originals ----------------------------------------------------------------------

    def note_original(self, original: StoredOriginal, source: str) -> None:
        """Register a received input, or count one more receipt of the same bytes.

        An upsert, so two uploads of the same file at the same moment cannot collide.
        """
        now = utcnow()
        table = table_of(Original)
        insert = (postgresql_insert if self.dialect == "postgresql" else sqlite_insert)(table)
        statement = insert.values(
            sha256=original.sha256, size=original.size, container=str(original.container),
            storage_path=original.storage_path, source=source[:1024], first_seen_at=now,
            last_seen_at=now, status="processing",
        ).on_conflict_do_update(
            index_elements=[table.c.sha256],
            set_={"receipts": table.c.receipts + 1, "last_seen_at": now},
        )
        with self.engine.begin() as conn:
            conn.execute(statement)

    def finish_original(self, sha256: str, status: str, error: str | None, counts: dict[str, int],
                        retry: bool = False) -> None:
        table = table_of(Original)
        values: dict[str, Any] = {"status": status, "error": error, **counts}
        if retry:
            values["attempts"] = table.c.attempts + 1
        with self.engine.begin() as conn:
            conn.execute(update(table).where(table.c.sha256 == sha256).values(**values))

    def originals_to_retry(self) -> list[tuple[StoredOriginal, str]]:
        """Every input that failed, partly failed or never finished, with its source name."""
        table = table_of(Original)
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
        table = table_of(Report)
        rows = self.conn.execute(
            select(table.c.id, table.c.content_digest)
            .where(table.c.identity_hash == self._identity_hash).order_by(table.c.id))
        return [(row[0], row[1]) for row in rows]

    def insert_report(self, header: ReportHeader, original_sha256: str, location: str,
                      conflict_of: int | None) -> int:
        policy = header.policy
        table = table_of(Report)
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
        table = table_of(ReportOrigin)
        exists = self.conn.execute(select(table.c.report_id).where(
            table.c.report_id == report_id, table.c.original_sha256 == original_sha256,
            table.c.location == location[:1024])).first()
        if not exists:
            self.conn.execute(table.insert().values(
                report_id=report_id, original_sha256=original_sha256, location=location[:1024],
                received_at=utcnow()))

    def insert_batch(self, report_id: int, batch: RecordBatch) -> None:
        """Insert a batch's rows with the driver's own `executemany`.

        The report id is written into the statement (an int, so safe) rather than into
        every row: the rows can then come straight from a worker process unchanged.
        """
        cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            for table, rows in zip(TABLE_COLUMNS, batch.tables(), strict=True):
                if rows:
                    cursor.executemany(self._store.insert_sql(table, report_id), rows)
        finally:
            cursor.close()

    def finish_report(self, report_id: int, record_count: int, message_count: int,
                      notes: list[str]) -> None:
        table = table_of(Report)
        self.conn.execute(update(table).where(table.c.id == report_id).values(
            record_count=record_count, message_count=message_count, repair_notes=notes))

    def add_to_daily_totals(self, report_id: int, header: ReportHeader) -> None:
        daily_totals.add_report(self.conn, report_id, header.begin, header.end, header.policy.domain,
                                org_name_key(header.org_name))

    def store_digest(self, report_id: int, page: int = 20_000) -> str:
        """Compute a stored report's content digest from its rows, and keep it.

        Digests are only needed when a second copy of a report arrives, so they are
        computed then, from the database, rather than on every ingest.
        """
        reports = table_of(Report)
        header = self.conn.execute(
            select(*(reports.c[name] for name in HEADER_FIELDS)).where(reports.c.id == report_id)).one()
        digest = ContentDigest(tuple(header))
        record_table = table_of(Record)
        last = self.conn.execute(select(func.max(record_table.c.record_no)).where(
            record_table.c.report_id == report_id)).scalar() or 0
        for start in range(1, last + 1, page):
            end = start + page - 1
            rows = [self._rows(table, columns, report_id, start, end)
                    for table, columns in TABLE_COLUMNS.items()]
            digest.add(rows_digest(*rows), len(rows[0]))
        value = digest.hexdigest()
        self.conn.execute(update(reports).where(reports.c.id == report_id).values(content_digest=value))
        return value

    def _rows(self, name: str, columns: tuple[str, ...], report_id: int, start: int,
              end: int) -> list[Row]:
        table = Report.metadata.tables[name]
        result = self.conn.execute(
            select(*(table.c[name] for name in columns))
            .where(table.c.report_id == report_id, table.c.record_no.between(start, end)))
        return [tuple(row) for row in result]
