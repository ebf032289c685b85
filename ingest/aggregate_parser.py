"""Stream a DMARC aggregate report document into raw header fields and raw records.

The document is fed to libxml2 in chunks and each `<record>` is read and freed as soon as it
ends, so memory stays flat however many records a report holds. Elements are matched by local
name, which covers RFC 7489 (no namespace), the 0.1 draft namespace, RFC 9990's dmarc-2.0 (as
default or prefixed namespace) and any namespace a generator invents. libxml2's recovery mode
reads the broken documents real receivers send; what it had to repair is reported, not hidden.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from lxml import etree

from ingest.errors import IngestError, MalformedReport, UnsafeInput

_CHUNK = 256 * 1024
_PROLOG_LIMIT = 64 * 1024
_WATCHED = ("{*}record", "{*}report_metadata", "{*}policy_published", "{*}version")
_PROLOG_ITEM = re.compile(rb"\s*(<\?.*?\?>|<!--.*?-->)", re.DOTALL)

RawAuth = tuple[str | None, str | None, str | None, str | None]
"""(domain, selector or scope, result, human_result), as found in the document."""


@dataclass(slots=True)
class RawRecord:
    """One `<record>`'s texts, untouched; `position` is its 1-based place in the document."""

    position: int
    source_ip: str | None = None
    count: str | None = None
    disposition: str | None = None
    dkim: str | None = None
    spf: str | None = None
    reasons: list[tuple[str | None, str | None]] = field(default_factory=list)
    header_from: str | None = None
    envelope_from: str | None = None
    envelope_to: str | None = None
    dkim_results: list[RawAuth] = field(default_factory=list)
    spf_results: list[RawAuth] = field(default_factory=list)
    missing: tuple[str, ...] = ()


@dataclass(slots=True)
class RawReportHeader:
    """The document-level texts: version, report_metadata and policy_published."""

    namespace: str | None = None
    version: str | None = None
    metadata: dict[str, str | None] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    policy: dict[str, str | None] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)


_LOCAL: dict[object, str] = {}


def _local(tag: object) -> str:
    name = _LOCAL.get(tag)
    if name is None:
        name = tag.rpartition("}")[2] if isinstance(tag, str) else ""
        _LOCAL[tag] = name
    return name


def _texts(element: etree._Element) -> dict[str, str | None]:
    return {_local(child.tag): child.text for child in element}


class AggregateParser:
    """One pass over one document: `header()` first, then `records()`, then `problems`."""

    def __init__(self, stream: BinaryIO) -> None:
        self._events = etree.iterparse(
            _PrologGuard(stream), events=("end",), tag=_WATCHED, recover=True,
            remove_blank_text=True, resolve_entities=False, no_network=True, load_dtd=False,
            huge_tree=True, remove_comments=True, remove_pis=True)
        self._header = RawReportHeader()
        self._header_given = False
        self._pending: list[RawRecord] = []
        self._count = 0
        self._ended = False
        self.problems: list[str] = []

    def header(self) -> RawReportHeader:
        """Read until the header is complete (normally: up to the first record).

        Records met before it are held back, up to a bound: a document whose metadata
        trails a million records is read with whatever header it had by then.
        """
        if not self._header_given:
            events = self._walk()
            while not self._header_complete():
                record = next(events, None)
                if record is None:
                    break
                self._pending.append(record)
            self._header_given = True
        return self._header

    def records(self) -> Iterator[RawRecord]:
        """Every record, in document order; afterwards `problems` lists what was repaired."""
        self.header()
        pending, self._pending = self._pending, []
        yield from pending
        yield from self._walk()
        self._finish()

    @property
    def record_count(self) -> int:
        return self._count

    def _header_complete(self) -> bool:
        return {"report_metadata", "policy_published"} <= self._header.seen or len(self._pending) > 10_000

    def _walk(self) -> Iterator[RawRecord]:
        if self._ended:
            return
        try:
            for _event, element in self._events:
                name = _local(element.tag)
                if name == "record":
                    self._count += 1
                    yield _read_record(element, self._count)
                    element.clear()
                    parent = element.getparent()
                    if parent is not None:
                        previous = element.getprevious()
                        while previous is not None:
                            parent.remove(previous)
                            previous = element.getprevious()
                elif self._header_given and name in ("report_metadata", "policy_published"):
                    self.problems.append(f"<{name}> comes after more than 10,000 records; ignored")
                elif name == "report_metadata":
                    self._read_metadata(element)
                elif name == "policy_published":
                    self._header.policy.update(_texts(element))
                    self._header.seen.add(name)
                    self._note_namespace(element)
                elif name == "version":
                    self._header.version = element.text
        except etree.XMLSyntaxError as exc:
            if not self._count and not self._header.seen:
                raise MalformedReport(f"not readable as XML: {exc}") from exc
            self.problems.append(f"XML damaged beyond repair after record {self._count}: {exc}")
        self._ended = True

    # -- document parts -----------------------------------------------------------------

    def _read_metadata(self, element: etree._Element) -> None:
        header = self._header
        header.seen.add("report_metadata")
        self._note_namespace(element)
        for child in element:
            name = _local(child.tag)
            if name == "date_range":
                for part in child:
                    header.metadata[_local(part.tag)] = part.text
            elif name == "error":
                if child.text and child.text.strip():
                    header.errors.append(child.text.strip())
            elif name:
                header.metadata[name] = child.text

    def _note_namespace(self, element: etree._Element) -> None:
        if self._header.namespace is None and isinstance(element.tag, str):
            uri = etree.QName(element).namespace
            self._header.namespace = uri or ""

    def _finish(self) -> None:
        for entry in self._events.error_log:
            message = f"XML repaired at line {entry.line}: {entry.message}"
            if len(self.problems) >= 20:
                self.problems.append("further XML errors not listed")
                break
            if message not in self.problems:
                self.problems.append(message)
        if self._count or self._header.seen:
            return
        root = getattr(self._events, "root", None)
        found = "nothing" if root is None else f"<{_local(root.tag) or '?'}>"
        raise MalformedReport(
            f"not a DMARC aggregate report: no <feedback> content (root element: {found})")


class _PrologGuard:
    """Hands libxml2 the document with leading junk stripped and any DTD refused.

    DMARC reports never need a DTD; refusing one outright shuts out XXE, entity
    expansion ("billion laughs") and external fetches before libxml2 sees them.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._first = True

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
        chunk = self._stream.read(_PROLOG_LIMIT)
        if chunk.startswith(b"\xef\xbb\xbf"):
            chunk = chunk[3:]
        chunk = chunk.lstrip(b" \t\r\n")
        utf16 = chunk[:2] in (b"\xff\xfe", b"\xfe\xff")
        probe = chunk.replace(b"\x00", b"") if utf16 else chunk
        position = 0
        while (match := _PROLOG_ITEM.match(probe, position)) is not None:
            position = match.end()
        if probe[position:].lstrip()[:9].upper() == b"<!DOCTYPE":
            raise UnsafeInput("the document declares a DTD (<!DOCTYPE>); DMARC reports never "
                              "need one and it is refused to rule out entity expansion and XXE")
        if b"<!ENTITY" in probe:
            raise UnsafeInput("the document declares entities (<!ENTITY>), which are refused")
        return chunk


def _read_record(record: etree._Element, position: int) -> RawRecord:
    """Pick one record's texts out of its subtree; the hot path, so kept flat."""
    raw = RawRecord(position)
    local = _LOCAL.get
    seen_row = seen_ids = seen_auth = False
    for part in record:
        name = local(part.tag) or _local(part.tag)
        if name == "row":
            seen_row = True
            for item in part:
                key = local(item.tag) or _local(item.tag)
                if key == "policy_evaluated":
                    for value in item:
                        field_name = local(value.tag) or _local(value.tag)
                        if field_name == "disposition":
                            raw.disposition = value.text
                        elif field_name == "dkim":
                            raw.dkim = value.text
                        elif field_name == "spf":
                            raw.spf = value.text
                        elif field_name == "reason":
                            texts = _texts(value)
                            raw.reasons.append((texts.get("type"), texts.get("comment")))
                elif key == "source_ip":
                    raw.source_ip = item.text
                elif key == "count":
                    raw.count = item.text
        elif name == "identifiers":
            seen_ids = True
            for item in part:
                key = local(item.tag) or _local(item.tag)
                if key == "header_from":
                    raw.header_from = item.text
                elif key == "envelope_from":
                    raw.envelope_from = "" if item.text is None else item.text
                elif key == "envelope_to":
                    raw.envelope_to = item.text
        elif name == "auth_results":
            seen_auth = True
            for result in part:
                key = local(result.tag) or _local(result.tag)
                if key == "dkim" or key == "spf":
                    domain = other = outcome = human = None
                    for value in result:
                        field_name = local(value.tag) or _local(value.tag)
                        if field_name == "domain":
                            domain = value.text
                        elif field_name == "result":
                            outcome = value.text
                        elif field_name == "selector" or field_name == "scope":
                            other = value.text
                        elif field_name == "human_result":
                            human = value.text
                    if key == "dkim":
                        raw.dkim_results.append((domain, other, outcome, human))
                    else:
                        raw.spf_results.append((domain, other, outcome, human))
    if not (seen_row and seen_ids and seen_auth):
        raw.missing = tuple(name for name, seen in (("row", seen_row), ("identifiers", seen_ids),
                                                     ("auth_results", seen_auth)) if not seen)
    return raw
