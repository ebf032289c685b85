"""Stream a DMARC aggregate report document into its raw header and batches of rows.

The document is fed to libxml2 in chunks and each `<record>` is read and freed as soon as it
ends, so memory stays flat however many records a report holds. libxml2's recovery mode reads
the broken documents real receivers send; what it had to repair is reported, not hidden. This
is the reference parser: the parallel one (for large, well-formed documents) must agree with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from lxml import etree

from ingest.aggregate_report import RawReportHeader
from ingest.aggregate_xml import (
    JUNK_NOTE,
    PARSER_OPTIONS,
    PROLOG_LIMIT,
    check_prolog,
    in_extension,
    junk_before_declaration,
    local_name,
    read_header_element,
    read_record,
    refuse_doctype,
)
from ingest.errors import IngestError, MalformedReport
from ingest.read_mode import ReadAgain, ReadMode
from ingest.record_batch import RecordBatch

_CHUNK = 256 * 1024
_WATCHED = ("{*}record", "{*}report_metadata", "{*}policy_published", "{*}version")
_HEADER_HOLD_BACK = 10_000
BATCH_RECORDS = 5000


class AggregateParser:
    """One pass over one document: `header()` first, then `batches()`, then `problems`."""

    def __init__(self, stream: BinaryIO, accept_partial: bool = False) -> None:
        self._guard = _PrologGuard(stream)
        self._accept_partial = accept_partial
        self._events = etree.iterparse(self._guard, events=("end",), tag=_WATCHED, recover=True,
                                       **PARSER_OPTIONS)
        self._header = RawReportHeader()
        self._header_given = False
        self._batch = RecordBatch()
        self._steps = self._walk()
        self._count = 0
        self._checked_doctype = False
        self.problems: list[str] = []

    def header(self) -> RawReportHeader:
        """Read until the header is complete (normally: up to the first record).

        Records met before it are held back, up to a bound: a document whose metadata
        trails a million records is read with whatever header it had by then.
        """
        while not self._header_given:
            seen = {"report_metadata", "policy_published"} <= self._header.seen
            if seen or self._count > _HEADER_HOLD_BACK or next(self._steps, None) is None:
                self._header_given = True
        return self._header

    def batches(self) -> Iterator[RecordBatch]:
        """Every record as rows, in document order; afterwards `problems` lists repairs."""
        self.header()
        for _ in self._steps:
            if len(self._batch) >= BATCH_RECORDS:
                yield self._batch
                self._batch = RecordBatch()
        if len(self._batch) or self._batch.notes:
            yield self._batch
        damaged = self._finish()
        if damaged:
            self._stopped_early()

    def _walk(self) -> Iterator[int]:
        """Parse on, stepping once per record read (into the current batch)."""
        try:
            for _event, element in self._events:
                if not self._checked_doctype:
                    refuse_doctype(element)
                    self._checked_doctype = True
                name = local_name(element.tag)
                if name == "record":
                    self._count += 1
                    read_record(element, self._count, self._batch)
                    element.clear()
                    _prune_read_records(element)
                    yield self._count
                elif in_extension(element):
                    continue
                elif self._header_given and name in ("report_metadata", "policy_published"):
                    self.problems.append(f"<{name}> comes after more than 10,000 records; ignored")
                else:
                    read_header_element(element, self._header)
        except etree.XMLSyntaxError as exc:
            if not self._count and not self._header.seen:
                raise MalformedReport(f"not readable as XML: {exc}") from exc
            self.problems.append(f"XML damaged beyond repair after record {self._count}: {exc}")

    def _stopped_early(self) -> None:
        """Errors, not mere warnings: libxml2's streaming (push) parser gives up for good at
        some damage (an unescaped `<`) that its whole-document recovery steps over."""
        if not self._accept_partial:
            raise ReadAgain(ReadMode.WHOLE, "the streaming parser met errors")
        self.problems.append("the document is damaged and too large to be read again whole; "
                             f"records after the damage may be missing ({self._count} read)")

    def _finish(self) -> bool:
        """Note what libxml2 repaired; returns whether there were errors (not just warnings)."""
        log = self._events.error_log
        if self._guard.junk_before_declaration:
            self.problems.append(JUNK_NOTE)
        self.problems.extend(_repairs(log))
        if self._count or self._header.seen:
            return any(entry.level >= etree.ErrorLevels.ERROR for entry in log)
        root = getattr(self._events, "root", None)
        found = "nothing" if root is None else f"<{local_name(root.tag) or '?'}>"
        raise MalformedReport(
            f"not a DMARC aggregate report: no <feedback> content (root element: {found})")


def _repairs(log: etree._ListErrorLog) -> list[str]:
    lines: list[str] = []
    for entry in log:
        message = f"XML repaired at line {entry.line}: {entry.message}"
        if len(lines) >= 20:
            lines.append("further XML errors not listed")
            break
        if message not in lines:
            lines.append(message)
    return lines


def _prune_read_records(record: etree._Element) -> None:
    """Drop the records before this one, already read, so memory stays flat.

    Only records go: when recovery has nested a record inside another element (a missing
    `</record>`, KDDI's broken `</report_id`), the siblings may be content not read yet.
    """
    parent = record.getparent()
    if parent is None:
        return
    previous = record.getprevious()
    while previous is not None and local_name(previous.tag) == "record":
        parent.remove(previous)
        previous = record.getprevious()


class _PrologGuard:
    """Hands libxml2 the document with leading junk stripped and any DTD refused."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._first = True
        self.junk_before_declaration = False


    def read(self, size: int = -1) -> bytes:
        try:
            if not self._first:
                return self._stream.read(max(size, _CHUNK))
            self._first = False
            return self._checked_start()
        except IngestError:
            raise
        except (OSError, ValueError, EOFError) as exc:
            raise MalformedReport(f"cannot read the document: {exc}") from exc

    def _checked_start(self) -> bytes:
        raw = self._stream.read(PROLOG_LIMIT)
        start = check_prolog(raw)
        self.junk_before_declaration = junk_before_declaration(raw, start)
        return start


class WholeDocumentParser:
    """The whole document parsed at once with libxml2's full recovery.

    Only for documents the streaming parser could not read to the end (an unescaped `<`
    stops it for good, where whole-document recovery steps over it); bounded by the caller.
    """

    def __init__(self, data: bytes) -> None:
        parser = etree.XMLParser(recover=True, **PARSER_OPTIONS)
        try:
            root = etree.fromstring(check_prolog(data), parser)
        except etree.XMLSyntaxError as exc:
            raise MalformedReport(f"not readable as XML: {exc}") from exc
        if root is not None:
            refuse_doctype(root)
        self.problems = _repairs(parser.error_log)
        self.problems.append("read again as a whole document, the way damaged XML is recovered best")
        self._root = root
        self._header = RawReportHeader()
        self._records: list[etree._Element] = []
        for element in ([] if root is None else root.iter()):
            name = local_name(element.tag)
            if name == "record":
                self._records.append(element)
            elif name in ("report_metadata", "policy_published", "version") and not in_extension(element):
                read_header_element(element, self._header)
        if not self._records and not self._header.seen:
            found = "nothing" if root is None else f"<{local_name(root.tag) or '?'}>"
            raise MalformedReport(
                f"not a DMARC aggregate report: no <feedback> content (root element: {found})")

    def header(self) -> RawReportHeader:
        return self._header

    def batches(self) -> Iterator[RecordBatch]:
        for start in range(0, len(self._records), BATCH_RECORDS):
            batch = RecordBatch()
            for number, element in enumerate(self._records[start:start + BATCH_RECORDS], start + 1):
                read_record(element, number, batch)
            yield batch
