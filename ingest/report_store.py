"""Write inputs and aggregate reports to the database, each report exactly once.

Records go in with plain DB-API `executemany` over prepared statements: at a million records
an ORM object (or even a dict) per row would cost more than parsing. Writers of one report
identity are serialised (SQLite: the write lock taken at BEGIN IMMEDIATE; PostgreSQL: an
advisory lock on the identity), so the duplicate check and the insert that follows are one
atomic decision even under concurrent uploads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import Engine, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import Executable

from app.db import BEGIN_MODE, lazy_commit, writer_turn
from app.models import Original, Record, Report, ReportOrigin, table_of
from ingest import daily_totals
from ingest.aggregate_report import ReportHeader
from ingest.dbapi_rows import placeholder
from ingest.original_store import StoredOriginal
from ingest.record_batch import TABLE_COLUMNS, RecordBatch, Row, rows_digest
from ingest.report_identity import HEADER_FIELDS, ContentDigest, ReportIdentity, org_name_key
from ingest.sniff import ContainerKind


def utcnow() -> datetime:
    return datetime.now(UTC)


# Statements run once or more per input are built once, with bind parameters: building a
# statement with literal values costs more than running it (about 0.5 ms each on small inputs,
# which is what a mailbox backlog is made of).
_ORIGINALS, _REPORTS, _ORIGINS = table_of(Original), table_of(Report), table_of(ReportOrigin)
_FINISH_ORIGINAL = (update(_ORIGINALS).where(_ORIGINALS.c.sha256 == bindparam("key"))
                    .values({name: bindparam(name) for name in (
                        "status", "error", "reports_new", "reports_duplicate", "reports_failed",
                        "reports_deferred")}))
_RETRIED_ORIGINAL = _FINISH_ORIGINAL.values(attempts=_ORIGINALS.c.attempts + 1)
_REPORT_COLUMNS = ("identity_hash", "org_name", "org_name_key", "email", "extra_contact_info", "report_id",
                   "policy_domain", "date_begin", "date_end", "errors", "generator", "version",
                   "xml_namespace", "adkim", "aspf", "p", "sp", "np", "pct", "fo", "testing",
                   "discovery_method", "repair_notes", "conflict_of_id", "original_sha256", "location",
                   "ingested_at")
_INSERT_REPORT = (_REPORTS.insert().values({name: bindparam(name, type_=_REPORTS.c[name].type)
                                            for name in _REPORT_COLUMNS}).returning(_REPORTS.c.id))
_COPIES = (select(_REPORTS.c.id, _REPORTS.c.content_digest)
           .where(_REPORTS.c.identity_hash == bindparam("identity")).order_by(_REPORTS.c.id))
_ORIGIN_EXISTS = select(_ORIGINS.c.report_id).where(
    _ORIGINS.c.report_id == bindparam("report"), _ORIGINS.c.original_sha256 == bindparam("sha"),
    _ORIGINS.c.location == bindparam("location"))
_INSERT_ORIGIN = _ORIGINS.insert().values(report_id=bindparam("report"), original_sha256=bindparam("sha"),
                                          location=bindparam("location"), received_at=bindparam("at"))
_FINISH_REPORT = (update(_REPORTS).where(_REPORTS.c.id == bindparam("report"))
                  .values(record_count=bindparam("records"), message_count=bindparam("messages"),
                          repair_notes=bindparam("notes", type_=_REPORTS.c.repair_notes.type)))


@cache
def _note_original(dialect: str) -> Executable:
    insert = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(_ORIGINALS)
    columns = ("sha256", "size", "container", "storage_path", "source", "first_seen_at", "last_seen_at",
               "status")
    return insert.values({name: bindparam(name, type_=_ORIGINALS.c[name].type) for name in columns}) \
        .on_conflict_do_update(index_elements=[_ORIGINALS.c.sha256],
                               set_={"receipts": _ORIGINALS.c.receipts + 1,
                                     "last_seen_at": insert.excluded.last_seen_at})



class ReportStore:
    """The database side of ingest; one per engine, safe to share between threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._mark = placeholder(engine.dialect)
        self._group = threading.local()

    # -- grouped writes -------------------------------------------------------------------

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """Every write this thread makes inside the block goes into one transaction, committed
        once at its end; each write is a savepoint in it, undone alone when it fails.

        For inputs whose source keeps them until told they are stored (mail in a mailbox):
        committing twenty small inputs at once costs one disk flush instead of sixty, and each
        shared index page reaches the log once. Nothing is durable, and no outcome may be
        acted on, before the block ends without raising. On PostgreSQL a group holds its row and
        identity locks to its end, so concurrent groups can deadlock: PostgreSQL ends one, and
        `IngestPipeline.ingest_group` tries it again (the collector groups on SQLite only).
        """
        if self.grouping:
            raise RuntimeError("write groups do not nest")
        with writer_turn(self.engine), self.engine.connect() as conn:
            conn.execution_options(**{BEGIN_MODE: "IMMEDIATE"})
            with conn.begin():
                self._group.conn = conn
                try:
                    yield
                finally:
                    self._group.conn = None

    @property
    def grouping(self) -> bool:
        return getattr(self._group, "conn", None) is not None

    @contextmanager
    def savepoint(self) -> Iterator[Connection]:
        """Inside `grouped`: a part of the group's transaction that is undone alone on error."""
        conn: Connection = self._group.conn
        with conn.begin_nested():
            yield conn

    @contextmanager
    def _bookkeeping(self) -> Iterator[Connection]:
        if self.grouping:
            with self.savepoint() as conn:
                yield conn
        else:
            with lazy_commit(self.engine) as conn:
                yield conn

    def insert_sql(self, table: str, report_id: int) -> str:
        columns = TABLE_COLUMNS[table]
        marks = ", ".join([self._mark] * len(columns))
        return f"INSERT INTO {table} (report_id, {', '.join(columns)}) VALUES ({int(report_id)}, {marks})"

    # -- originals ----------------------------------------------------------------------

    def note_original(self, original: StoredOriginal, source: str) -> None:
        """Register a received input, or count one more receipt of the same bytes.

        An upsert, so two uploads of the same file at the same moment cannot collide. Its
        commit is lazy (`app.db.lazy_commit`): the report's own durable commit follows and
        takes it to disk; a crash before that leaves the kept bytes without this mark only
        when the source still holds them too (the caller has not yet answered, or the mail
        has not been moved).
        """
        now = utcnow()
        with self._bookkeeping() as conn:
            conn.execute(_note_original(self.dialect), {
                "sha256": original.sha256, "size": original.size, "container": str(original.container),
                "storage_path": original.storage_path, "source": source[:1024], "first_seen_at": now,
                "last_seen_at": now, "status": "processing"})

    def finish_original(self, sha256: str, status: str, error: str | None, counts: dict[str, int],
                        retry: bool = False) -> None:
        """Record how an input ended. Lazily committed: if a crash loses it, the input still
        reads "processing" and `originals_to_retry` takes it again (a stored report then comes
        back as a duplicate), so nothing is lost with it."""
        with self._bookkeeping() as conn:
            conn.execute(_RETRIED_ORIGINAL if retry else _FINISH_ORIGINAL,
                         {"key": sha256, "status": status, "error": error, **counts})

    def originals_to_retry(self) -> list[tuple[StoredOriginal, str]]:
        """Every input that failed, partly failed or never finished, with its source name, and
        those kept as deferred: recognised by a version that could not parse their kind yet."""
        table = table_of(Original)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.sha256, table.c.size, table.c.container, table.c.storage_path,
                       table.c.source)
                .where(table.c.status.in_(("failed", "partial", "processing", "deferred")))
                .order_by(table.c.first_seen_at))
            return [(StoredOriginal(row.sha256, row.size, ContainerKind(row.container),
                                    row.storage_path), row.source) for row in rows]

    # -- reports --------------------------------------------------------------------------

    @contextmanager
    def report_transaction(self, identity: ReportIdentity) -> Iterator[ReportTransaction]:
        """One report's whole write, atomic; concurrent writers of the same identity wait."""
        if self.grouping:
            with self.savepoint() as conn:
                yield self._locked(conn, identity)
            return
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{BEGIN_MODE: "IMMEDIATE"})
            with conn.begin():
                yield self._locked(conn, identity)

    def _locked(self, conn: Connection, identity: ReportIdentity) -> ReportTransaction:
        if self.dialect == "postgresql":  # held to the end of the whole transaction
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (identity.lock_key,))
        return ReportTransaction(self, conn, identity)


class ReportTransaction:
    """The writes of one report inside its transaction."""

    def __init__(self, store: ReportStore, conn: Connection, identity: ReportIdentity) -> None:
        self._store = store
        self.conn = conn
        self.identity = identity
        self._identity_hash = identity.hash

    def existing_copies(self) -> list[tuple[int, str | None]]:
        rows = self.conn.execute(_COPIES, {"identity": self._identity_hash})
        return [(row[0], row[1]) for row in rows]

    def insert_report(self, header: ReportHeader, original_sha256: str, location: str,
                      conflict_of: int | None) -> int:
        policy = header.policy
        result = self.conn.execute(_INSERT_REPORT, {
            "identity_hash": self._identity_hash,
            "org_name": header.org_name, "org_name_key": org_name_key(header.org_name),
            "email": header.email, "extra_contact_info": header.extra_contact_info,
            "report_id": header.report_id, "policy_domain": policy.domain,
            "date_begin": header.begin, "date_end": header.end, "errors": list(header.errors),
            "generator": header.generator, "version": header.version, "xml_namespace": header.xml_namespace,
            "adkim": policy.adkim, "aspf": policy.aspf, "p": policy.p, "sp": policy.sp, "np": policy.np,
            "pct": policy.pct, "fo": policy.fo, "testing": policy.testing,
            "discovery_method": policy.discovery_method, "repair_notes": [],
            "conflict_of_id": conflict_of, "original_sha256": original_sha256,
            "location": location, "ingested_at": utcnow()})
        report_id = int(result.scalar_one())
        self.add_origin(report_id, original_sha256, location, new_report=True)
        return report_id

    def add_origin(self, report_id: int, original_sha256: str, location: str,
                   new_report: bool = False) -> None:
        values = {"report": report_id, "sha": original_sha256, "location": location[:1024]}
        if new_report or not self.conn.execute(_ORIGIN_EXISTS, values).first():
            self.conn.execute(_INSERT_ORIGIN, {**values, "at": utcnow()})

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
        self.conn.execute(_FINISH_REPORT, {"report": report_id, "records": record_count,
                                           "messages": message_count, "notes": notes})

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
