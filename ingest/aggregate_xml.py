"""Reading the parts of an aggregate report document: shared by the serial and parallel parsers.

Elements are matched by local name, which covers RFC 7489 (no namespace), the 0.1 draft
namespace, RFC 9990's dmarc-2.0 (as default or prefixed namespace) and any namespace a
generator invents.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from ingest.aggregate_normaliser import dkim_row, reason_row, record_row, spf_row
from ingest.aggregate_report import RawReportHeader
from ingest.errors import UnsafeInput
from ingest.record_batch import RecordBatch

PROLOG_LIMIT = 64 * 1024

PARSER_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,  # with the DTD refusal: no entity expansion, no XXE
    "no_network": True,
    "load_dtd": False,
    "huge_tree": True,  # large reports are legitimate; size is bounded by the unpack limits
    "remove_blank_text": True,  # half the nodes, and no whitespace text to step over
    "remove_comments": True,
    "remove_pis": True,
}
"""libxml2 options every parser of report documents uses (serial, whole, parallel)."""
_PROLOG_ITEM = re.compile(rb"\s*(<\?.*?\?>|<!--.*?-->)", re.DOTALL)
_ELEMENT_START = re.compile(rb"<[A-Za-z_]")

LOCAL_NAMES: dict[object, str] = {}
_HEADER_METADATA = {"org_name", "email", "extra_contact_info", "report_id", "begin", "end",
                    "generator"}


def local_name(tag: object) -> str:
    """`{uri}name`, `prefix:name` (a prefix never declared) and `name` all give `name`."""
    name = LOCAL_NAMES.get(tag)
    if name is None:
        name = tag.rpartition("}")[2].rpartition(":")[2] if isinstance(tag, str) else ""
        if len(LOCAL_NAMES) > 4096:  # senders can invent any number of element names
            LOCAL_NAMES.clear()
        LOCAL_NAMES[tag] = name
    return name


def namespace_of(tag: object) -> str:
    return tag[1:].partition("}")[0] if isinstance(tag, str) and tag.startswith("{") else ""


def in_extension(element: etree._Element) -> bool:
    """Whether an element sits inside an `<extension>` or a record, where header names
    (version, policy_published...) may be reused by extensions and must not count."""
    return any(local_name(ancestor.tag) in ("extension", "record") for ancestor in element.iterancestors())


def child_texts(element: etree._Element) -> dict[str, str | None]:
    return {local_name(child.tag): child.text for child in element}


def read_header_element(element: etree._Element, header: RawReportHeader) -> None:
    """Take what the header needs from `version`, `report_metadata` or `policy_published`."""
    name = local_name(element.tag)
    if name == "version":
        header.version = element.text
        return
    header.seen.add(name)
    if header.namespace is None:
        header.namespace = namespace_of(element.tag)
    if name == "policy_published":
        header.policy.update(child_texts(element))
        return
    _read_metadata(element, header)


def _read_metadata(element: etree._Element, header: RawReportHeader) -> None:
    """Metadata fields wherever recovery put them (KDDI's broken `</report_id` nests the
    date range inside report_id), but never from inside a record."""
    for child in element:
        key = local_name(child.tag)
        if key == "record" or key == "extension":
            continue
        if key == "error":
            if child.text and child.text.strip():
                header.errors.append(child.text.strip())
            continue
        if key in _HEADER_METADATA and key not in header.metadata:
            header.metadata[key] = child.text
        if len(child):
            _read_metadata(child, header)


def refuse_doctype(element: etree._Element) -> None:
    """The same refusal, asked of libxml2 itself, in case a DTD got past the byte check."""
    info = element.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:  # type: ignore[attr-defined]
        raise UnsafeInput("the document declares a DTD (<!DOCTYPE>); DMARC reports never "
                          "need one and it is refused to rule out entity expansion and XXE")


def junk_before_declaration(raw: bytes, start: bytes) -> bool:
    """Whether `check_prolog` had to strip more than a BOM before an XML declaration."""
    bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    return start.startswith(b"<?xml") and len(raw) - len(start) > bom


JUNK_NOTE = "whitespace before the XML declaration removed"


def check_prolog(chunk: bytes) -> bytes:
    """The start of a document with leading junk stripped; refuses any DTD.

    DMARC reports never need a DTD; refusing one outright shuts out XXE, entity
    expansion ("billion laughs") and external fetches before libxml2 sees them.
    """
    if chunk.startswith(b"\xef\xbb\xbf"):
        chunk = chunk[3:]
    chunk = chunk.lstrip(b" \t\r\n")
    full = len(chunk) >= PROLOG_LIMIT
    probe = chunk[:PROLOG_LIMIT]
    if chunk[:2] in (b"\xff\xfe", b"\xfe\xff", b"<\x00", b"\x00<"):  # UTF-16, with or without BOM
        probe = probe.replace(b"\x00", b"").removeprefix(b"\xff\xfe").removeprefix(b"\xfe\xff")
    position = 0
    while (match := _PROLOG_ITEM.match(probe, position)) is not None:
        position = match.end()
    rest = probe[position:].lstrip()
    if rest[:9].upper() == b"<!DOCTYPE":
        raise UnsafeInput("the document declares a DTD (<!DOCTYPE>); DMARC reports never "
                          "need one and it is refused to rule out entity expansion and XXE")
    if full and not _ELEMENT_START.match(rest):
        raise UnsafeInput(f"the document's prolog does not end within {PROLOG_LIMIT // 1024} KiB; "
                          "refused, as a DTD could follow")
    if b"<!ENTITY" in probe:
        raise UnsafeInput("the document declares entities (<!ENTITY>), which are refused")
    return chunk


def read_record(record: etree._Element, number: int, batch: RecordBatch) -> None:
    """Read one `<record>` into `batch` as normalised rows; the hot path, so kept flat.

    A record with none of row, identifiers and auth_results cannot be read: it is named in
    the notes, not silently dropped; one that lacks only some is stored with nulls.
    """
    local = LOCAL_NAMES.get
    notes = batch.notes
    ip = count = disposition = dkim = spf = header_from = envelope_from = envelope_to = None
    seen_row = seen_ids = seen_auth = False
    dkim_seq = spf_seq = reason_seq = 0
    for part in record:
        name = local(part.tag) or local_name(part.tag)
        if name == "row":
            seen_row = True
            for item in part:
                key = local(item.tag) or local_name(item.tag)
                if key == "policy_evaluated":
                    for value in item:
                        field_name = local(value.tag) or local_name(value.tag)
                        if field_name == "disposition":
                            disposition = value.text
                        elif field_name == "dkim":
                            dkim = value.text
                        elif field_name == "spf":
                            spf = value.text
                        elif field_name == "reason":
                            texts = child_texts(value)
                            batch.reasons.append(reason_row(number, reason_seq, texts.get("type"),
                                                            texts.get("comment"), notes))
                            reason_seq += 1
                elif key == "source_ip":
                    ip = item.text
                elif key == "count":
                    count = item.text
        elif name == "identifiers":
            seen_ids = True
            for item in part:
                key = local(item.tag) or local_name(item.tag)
                if key == "header_from":
                    header_from = item.text
                elif key == "envelope_from":
                    envelope_from = "" if item.text is None else item.text
                elif key == "envelope_to":
                    envelope_to = item.text
        elif name == "auth_results":
            seen_auth = True
            for result in part:
                key = local(result.tag) or local_name(result.tag)
                if key == "dkim" or key == "spf":
                    domain = other = outcome = human = None
                    for value in result:
                        field_name = local(value.tag) or local_name(value.tag)
                        if field_name == "domain":
                            domain = value.text
                        elif field_name == "result":
                            outcome = value.text
                        elif field_name == "selector" or field_name == "scope":
                            other = value.text
                        elif field_name == "human_result":
                            human = value.text
                    if key == "dkim":
                        batch.dkim.append(dkim_row(number, dkim_seq, domain, other, outcome, human, notes))
                        dkim_seq += 1
                    else:
                        batch.spf.append(spf_row(number, spf_seq, domain, other, outcome, human, notes))
                        spf_seq += 1
    if not (seen_row and seen_ids and seen_auth):
        missing = [name for name, seen in (("row", seen_row), ("identifiers", seen_ids),
                                           ("auth_results", seen_auth)) if not seen]
        if len(missing) == 3:
            notes.add("record could not be read (no row, identifiers or auth_results); skipped", number)
            return
        notes.add("record lacks <" + ">, <".join(missing) + ">", number)
    row = record_row(number, ip, count, disposition, dkim, spf, header_from, envelope_from,
                     envelope_to, notes)
    batch.records.append(row)
    if row[3]:
        batch.messages += row[3]  # type: ignore[operator]
