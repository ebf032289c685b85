"""Batches of normalised rows: what parsing produces and the store inserts.

A batch is self-contained (rows, message total, repair notes) so that it can be built in a
worker process and shipped to the writer as plain tuples, which pickle and bind far faster
than objects. The row layouts are the column lists below, in order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ingest.aggregate_report import RepairNotes

RECORD_COLUMNS = ("record_no", "source_ip", "source_ip_packed", "count", "disposition", "dkim", "spf",
                  "header_from", "envelope_from", "envelope_to", "raw_values")
REASON_COLUMNS = ("record_no", "seq", "type", "comment", "type_raw")
DKIM_COLUMNS = ("record_no", "seq", "domain", "selector", "result", "human_result", "result_raw")
SPF_COLUMNS = ("record_no", "seq", "domain", "scope", "result", "human_result", "result_raw")

Row = tuple[object, ...]

TABLE_COLUMNS = {
    "aggregate_record": RECORD_COLUMNS,
    "record_reason": REASON_COLUMNS,
    "record_dkim_result": DKIM_COLUMNS,
    "record_spf_result": SPF_COLUMNS,
}
"""Where each kind of row goes, in the order of `RecordBatch.tables()` and `rows_digest`."""


@dataclass(slots=True)
class RecordBatch:
    records: list[Row] = field(default_factory=list)
    reasons: list[Row] = field(default_factory=list)
    dkim: list[Row] = field(default_factory=list)
    spf: list[Row] = field(default_factory=list)
    messages: int = 0
    notes: RepairNotes = field(default_factory=RepairNotes)

    def __len__(self) -> int:
        return len(self.records)

    def tables(self) -> tuple[list[Row], list[Row], list[Row], list[Row]]:
        """The rows for each table of `TABLE_COLUMNS`, in that order."""
        return self.records, self.reasons, self.dkim, self.spf

    def content_sum(self) -> int:
        return rows_digest(*self.tables())


def rows_digest(records: list[Row], reasons: list[Row], dkim: list[Row], spf: list[Row]) -> int:
    """Sum of the content hashes of the records these rows hold.

    Only what a record says counts: raw texts are left out (`Pass` and `pass` agree) and
    so is the record's position, so a re-send in another order is the same content.
    """
    children: dict[object, list[list[Row]]] = {}
    for index, rows in enumerate((reasons, dkim, spf)):
        for row in rows:
            parts = children.get(row[0])
            if parts is None:
                parts = children[row[0]] = [[], [], []]
            parts[index].append(row)
    total = 0
    empty: list[list[Row]] = [[], [], []]
    for row in records:
        parts = children.get(row[0], empty)
        key = (row[1], row[3:10],
               tuple(part[2:4] for part in sorted(parts[0], key=_seq)),
               tuple(part[2:6] for part in sorted(parts[1], key=_seq)),
               tuple(part[2:6] for part in sorted(parts[2], key=_seq)))
        total += int.from_bytes(hashlib.blake2b(
            repr(key).encode("utf-8", "surrogatepass"), digest_size=16).digest(), "big")
    return total


def _seq(row: Row) -> int:
    return row[1]  # type: ignore[return-value]
