"""Reading records for judging and writing their verdicts, in bulk, through the DB-API cursor.

Recomputation moves a million rows each way; SQLAlchemy's per-row result and parameter
processing cost more than the judging itself, so this module speaks plain SQL to the cursor
of the connection's own transaction. Column values that need conversion (JSON, aware
datetimes) are converted with the column types' own bind processors, once per distinct value:
verdicts repeat, so their serialised form is cached.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from app.models import (
    Record,
    RecordDkimResult,
    RecordReason,
    RecordSpfResult,
    RecordVerdict,
    ReportClassTotals,
    ReportSourceClasses,
    SourceAddress,
)
from app.models import table_of as _table_of
from ingest.address_group import GROUP_COLUMNS, address_group
from ingest.dbapi_rows import fetch_rows, placeholder
from ingest.record_verdict import DkimAuth, RecordFacts, SpfAuth, Verdict

VERDICTS = _table_of(RecordVerdict)
CLASS_TOTALS = _table_of(ReportClassTotals)
SOURCE_CLASSES = _table_of(ReportSourceClasses)
VERDICT_COLUMNS = ("report_id", "record_no", "record_class", "dmarc", "spf_aligned", "dkim_aligned",
                   "spf_result", "own_spf_result", "dkim", "reasons", "org_domain", "discovery_method",
                   "dns_as_of", "computed_at")
TOTAL_COLUMNS = ("report_id", "record_class", "messages", "records")
SOURCE_COLUMNS = ("report_id", "source_id", "record_class", "broken_domain", "messages", "records",
                  "dmarc_pass", *GROUP_COLUMNS)
COPIED_SOURCE_COLUMNS = ("report_id", "record_class", "broken_domain", "messages", "records", "dmarc_pass",
                         "source_id", *GROUP_COLUMNS)
"""as the COPY text is laid out: each address's part (its id and group) is rendered once"""
UNGROUPED = (None,) * len(GROUP_COLUMNS)
ADDRESSES = _table_of(SourceAddress)

ADDRESS_CHUNK = 5000
"""addresses per SQLite look-up: under its limit of 32,766 parameters, with room to spare"""

StoredRecord = tuple[int, int | None, RecordFacts]
"""(record_no, count, facts)"""


def _in_list(ids: Sequence[int]) -> str:
    return ",".join(str(int(value)) for value in ids)


class RecordReader:
    """Reads the records of a batch of reports for judging, each with its auth results,
    override reasons and, from `source_types` (address to catalogue service type), what its
    source is known to be.

    One query per batch: the database gathers each record's DKIM results, SPF results and
    reasons into a JSON array apiece, and each distinct array is turned into the tuples
    `RecordFacts` holds once per run. They repeat (the benchmark's 166,000 first records
    carry six distinct DKIM arrays; real mail has more, but the same signers recur), so equal
    facts also share their parts, which the judge's memo compares. Reading the four tables
    apart and assembling the records in Python took more than twice as long.
    """

    def __init__(self, dialect: str, source_types: Mapping[str, str] | None = None) -> None:
        self._types = source_types or {}
        self._sql = _read_sql(dialect)
        self._dkim: dict[str, tuple[DkimAuth, ...]] = {}
        self._spf: dict[str, tuple[SpfAuth, ...]] = {}
        self._reasons: dict[str, tuple[str, ...]] = {}

    def read(self, conn: Connection, ids: Sequence[int]) -> dict[int, list[StoredRecord]]:
        if len(self._dkim) + len(self._spf) + len(self._reasons) > PARTS_LIMIT:
            for parts in (self._dkim, self._spf, self._reasons):
                parts.clear()
        types, dkim_parts, spf_parts, reason_parts = self._types, self._dkim, self._spf, self._reasons
        records: dict[int, list[StoredRecord]] = defaultdict(list)
        for (report_id, record_no, source_ip, header_from, envelope_from, policy_dkim, policy_spf, count,
             dkim_text, spf_text, reasons_text) in fetch_rows(conn, self._sql.format(ids=_in_list(ids))):
            dkim = dkim_parts.get(dkim_text)
            if dkim is None:
                dkim = dkim_parts[dkim_text] = tuple(DkimAuth(*value) for value in json.loads(dkim_text))
            spf = spf_parts.get(spf_text)
            if spf is None:
                spf = spf_parts[spf_text] = tuple(SpfAuth(*value) for value in json.loads(spf_text))
            reasons = reason_parts.get(reasons_text)
            if reasons is None:
                reasons = reason_parts[reasons_text] = tuple(json.loads(reasons_text))
            records[report_id].append((record_no, count, RecordFacts(
                source_ip, header_from, envelope_from, policy_dkim, policy_spf, dkim, spf, reasons,
                types.get(source_ip or ""))))
        return records


PARTS_LIMIT = 200_000
"""distinct parts kept for a run before the caches are emptied: memory stays bounded"""


def _read_sql(dialect: str) -> str:
    """The records of reports `{ids}` in order, each with three JSON arrays: its DKIM results
    ([domain, selector, result] each), its SPF results ([domain, scope, result] each) and its
    reasons' types (the empty ones left out), all in `seq` order."""

    def gathered(table: str, columns: tuple[str, ...], condition: str = "") -> str:
        of_record = f"p.report_id = r.report_id AND p.record_no = r.record_no{condition}"
        if dialect == "postgresql":
            value = f"json_build_array({', '.join(f'p.{c}' for c in columns)})" if len(columns) > 1 \
                else f"p.{columns[0]}"
            return (f"(SELECT coalesce(json_agg({value} ORDER BY p.seq)::text, '[]') FROM {table} p "
                    f"WHERE {of_record})")
        # SQLite (3.40) has no ORDER BY inside an aggregate: it takes the rows in the order given
        value = f"json_array({', '.join(columns)})" if len(columns) > 1 else columns[0]
        return (f"(SELECT json_group_array({value}) FROM (SELECT {', '.join(columns)} FROM {table} p "
                f"WHERE {of_record} ORDER BY p.seq))")

    parts = [gathered(_table_of(RecordDkimResult).name, ("domain", "selector", "result")),
             gathered(_table_of(RecordSpfResult).name, ("domain", "scope", "result")),
             gathered(_table_of(RecordReason).name, ("type",), " AND p.type <> ''")]
    return (f"SELECT r.report_id, r.record_no, r.source_ip, r.header_from, r.envelope_from, r.dkim, r.spf, "
            f"r.count, {', '.join(parts)} FROM {_table_of(Record).name} r "
            "WHERE r.report_id IN ({ids}) ORDER BY r.report_id, r.record_no")


class VerdictWriter:
    """Replaces the verdicts and class totals of a batch of reports; one per run (it caches
    the stored form of each distinct verdict)."""

    def __init__(self, conn: Connection) -> None:
        dialect = conn.dialect
        self._marker = placeholder(dialect)
        self._copy = dialect.name == "postgresql"
        self._json = json.dumps if self._copy else _processor(VERDICTS, "dkim", conn)
        self._moment = _processor(VERDICTS, "dns_as_of", conn)
        self._moments: dict[datetime, Any] = {}
        self._stored: dict[int, tuple[Verdict, tuple[Any, ...]]] = {}
        self._texts: dict[int, str] = {}  # by id(): the verdict is held in _stored
        self._moment_texts: dict[datetime, str] = {}

    def replace(self, conn: Connection, ids: Sequence[int],
                rows: Iterable[tuple[int, int, Verdict, datetime]],
                totals: Iterable[tuple[int, str, int, int]], computed_at: datetime,
                sources: Iterable[tuple[int, str, str, str, int, int, int]] = ()) -> None:
        """`rows`: (report_id, record_no, verdict, dns_as_of); `totals`: class totals rows;
        `sources`: report_source_classes rows, each with its address's text where the table
        holds its id (looked up for the whole batch: every record's address has its row,
        written at ingest)."""
        listed = _in_list(ids)
        cursor = conn.connection.cursor()
        try:
            cursor.execute(f"DELETE FROM {VERDICTS.name} WHERE report_id IN ({listed})")
            cursor.execute(f"DELETE FROM {CLASS_TOTALS.name} WHERE report_id IN ({listed})")
            cursor.execute(f"DELETE FROM {SOURCE_CLASSES.name} WHERE report_id IN ({listed})")
            if self._copy:
                # PostgreSQL: COPY in its text format, each distinct verdict rendered once;
                # several times quicker than executemany or adapting every value of every row
                computed_text = _copy_field(computed_at.isoformat())
                data = "".join(f"{report_id}\t{record_no}\t{self._verdict_text(verdict)}\t"
                               f"{self._when_text(as_of)}\t{computed_text}\n"
                               for report_id, record_no, verdict, as_of in rows)
                with cursor.copy(f"COPY {VERDICTS.name} ({', '.join(VERDICT_COLUMNS)}) FROM STDIN") as copy:
                    copy.write(data)
            else:
                computed = self._when(computed_at)
                cursor.executemany(self._insert(VERDICTS.name, VERDICT_COLUMNS), [
                    (report_id, record_no, *self._verdict(verdict), self._when(as_of), computed)
                    for report_id, record_no, verdict, as_of in rows])
            cursor.executemany(self._insert(CLASS_TOTALS.name, TOTAL_COLUMNS), list(totals))
            self._write_sources(cursor, list(sources))
        finally:
            cursor.close()

    def _insert(self, table: str, columns: Sequence[str]) -> str:
        markers = ", ".join([self._marker] * len(columns))
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({markers})"

    def _write_sources(self, cursor: Any, sources: list[tuple[int, str, str, str, int, int, int]]) -> None:
        """The batch's addresses (id, group and identity) in one query (SQLite: a few), then the
        rows as they are: looking each row's id up inside its own INSERT ... SELECT made a
        batch's write about a tenth slower on SQLite, and judging 40% slower on PostgreSQL,
        which takes them by COPY."""
        if not sources:
            return
        addresses = self._addresses(cursor, sorted({row[1] for row in sources}))
        if self._copy:
            texts = {ip: "\t".join(map(_copy_field, (source_id, *group)))
                     for ip, (source_id, group) in addresses.items()}
            data = "".join(f"{report_id}\t{_copy_field(record_class)}\t{_copy_field(broken)}\t{messages}\t"
                           f"{records}\t{passed}\t{texts[ip]}\n"
                           for report_id, ip, record_class, broken, messages, records, passed in sources
                           if ip in texts)
            columns = ", ".join(COPIED_SOURCE_COLUMNS)
            with cursor.copy(f"COPY {SOURCE_CLASSES.name} ({columns}) FROM STDIN") as copy:
                copy.write(data)
            return
        cursor.executemany(self._insert(SOURCE_CLASSES.name, SOURCE_COLUMNS), [
            (report_id, addresses[ip][0], record_class, broken, messages, records, passed, *addresses[ip][1])
            for report_id, ip, record_class, broken, messages, records, passed in sources
            if ip in addresses])

    def _addresses(self, cursor: Any, addresses: list[str]) -> dict[str, tuple[int, tuple[str | None, ...]]]:
        """Each address's id and its group's values (all None when not identified yet)."""
        columns = f"ip, id, identified_at IS NOT NULL, sender, service, service_type FROM {ADDRESSES.name}"
        rows: list[tuple[Any, ...]] = []
        if self._copy:
            cursor.execute(f"SELECT {columns} WHERE ip = ANY(%s)", (addresses,))
            rows = cursor.fetchall()
        else:
            for start in range(0, len(addresses), ADDRESS_CHUNK):
                chunk = addresses[start:start + ADDRESS_CHUNK]
                cursor.execute(f"SELECT {columns} WHERE ip IN ({', '.join('?' * len(chunk))})", chunk)
                rows += cursor.fetchall()
        found: dict[str, tuple[int, tuple[str | None, ...]]] = {}
        for ip, source_id, identified, sender, service, service_type in rows:
            group = address_group(ip, bool(identified), sender, service, service_type)
            found[ip] = (source_id, group.values() if group else UNGROUPED)
        return found

    def _verdict(self, verdict: Verdict) -> tuple[Any, ...]:
        stored = self._stored.get(id(verdict))
        if stored is None:
            dkim = [{"domain": s.domain, "selector": s.selector, "result": s.result, "aligned": s.aligned,
                     "key_state": s.key_state} for s in verdict.signatures]
            stored = self._stored[id(verdict)] = (verdict, (
                str(verdict.record_class), verdict.dmarc, verdict.spf_aligned, verdict.dkim_aligned,
                verdict.spf_result, verdict.own_spf_result, self._json(dkim),
                self._json(list(verdict.reasons)), verdict.org_domain, verdict.discovery_method))
        return stored[1]

    def _verdict_text(self, verdict: Verdict) -> str:
        text = self._texts.get(id(verdict))
        if text is None:
            text = "\t".join(_copy_field(value) for value in self._verdict(verdict))
            self._texts[id(verdict)] = text
        return text

    def _when_text(self, moment: datetime) -> str:
        text = self._moment_texts.get(moment)
        if text is None:
            text = self._moment_texts[moment] = _copy_field(moment.isoformat())
        return text

    def _when(self, moment: datetime) -> Any:
        if moment not in self._moments:
            self._moments[moment] = self._moment(moment)
        return self._moments[moment]


def _copy_field(value: Any) -> str:
    """One value in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _processor(table: Table, column: str, conn: Connection) -> Callable[[Any], Any]:
    kind = table.c[column].type.dialect_impl(conn.dialect)
    process = kind.bind_processor(conn.dialect)
    return process if process is not None else (lambda value: value)
