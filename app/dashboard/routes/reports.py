"""The reports pages: the list, one report with its records, and its original XML.

They read through the API's own queries (`report_query`, `record_query`), so a page and its
JSON twin (/api/v1/reports, /api/v1/reports/{id}) always agree. The XML shown is the
report's document itself: when the kept original is a container (gzip, zip, e-mail, mbox)
it is unpacked again with the ingest's own `unpack`, with the same limits, and the part the
report was read from is picked by its recorded location.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from lxml import etree

from app.dashboard.page_state import PageState, PageStateDep
from app.dashboard.templating import render
from app.deps import EngineDep, SettingsDep, SignedInDep
from app.domain_query import POLICY_FIELDS
from app.problems import Problem
from app.record_query import report_records
from app.report_query import (
    KeptOriginal,
    count_reports,
    get_report,
    report_origin_list,
    report_original,
    report_page,
)
from app.settings import Settings
from ingest.errors import IngestError
from ingest.limits import DecompressionBudget
from ingest.original_store import OriginalStore
from ingest.unpack import Payload, ReportKind, unpack

router = APIRouter(include_in_schema=False)

REPORTS_PER_PAGE = 50
RECORDS_PER_PAGE = 100
XML_SHOWN_BYTES = 2 * 1024 * 1024
"""a larger document is shown cut here (as text): the download has all of it"""
RECORD_PARAMS = ("class", "header_from", "source_ip", "disposition", "dmarc")
"""record filters the list takes besides the filter bar's (a drill-down from a chart sets them)"""
ReportIdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
OffsetQuery = Annotated[int, Query(ge=0, le=2**31 - 1)]

# no entities, no network, no DTD: the document is a stranger's; only whitespace is redone
_PRETTY_PARSER_OPTIONS: dict[str, Any] = {"resolve_entities": False, "no_network": True, "load_dtd": False,
                                          "huge_tree": False, "remove_blank_text": True}
_XML_DECLARATION = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(<\?xml[^>]{0,200}\?>)")


def window_params(state: PageState) -> dict[str, str]:
    """since/until for a JSON twin when the page filled in its default window (the API has no
    default window: without them it would answer for all time)."""
    if not state.default_window or state.first_day is None or state.last_day is None:
        return {}
    return {"since": state.first_day.isoformat(), "until": state.last_day.isoformat()}


def source_link(group: str, key: str) -> str:
    """A source's own page (the sources pages' `/sources/{group}/{key}`): an address (`ip`), or
    the sender grouping its addresses (`service`). Any name is one path segment."""
    return f"/sources/{group}/{quote(str(key), safe='')}"


# -- the list -----------------------------------------------------------------------------------

@router.get("/reports")
def reports_list(request: Request, _: SignedInDep, engine: EngineDep, state: PageStateDep,
                 offset: OffsetQuery = 0) -> Response:
    with engine.connect() as conn:
        total = count_reports(conn, state.flt)
        rows = report_page(conn, state.flt, REPORTS_PER_PAGE, offset)
    record_filters = [(key, value) for key in RECORD_PARAMS for value in request.query_params.getlist(key)
                      if value]
    return render(request, "reports.html", {
        "title": "Reports", "active": "reports", "state": state, "rows": rows, "total": total,
        "limit": REPORTS_PER_PAGE, "offset": offset, "keep": RECORD_PARAMS, "record_filters": record_filters,
        "window": window_params(state)})


# -- one report ---------------------------------------------------------------------------------

def _report_or_404(conn: Any, report_id: int) -> dict[str, Any]:
    report = get_report(conn, report_id)
    if report is None:
        raise Problem(404, "not-found", "Report not found", f"There is no report {report_id}.")
    return report


@router.get("/reports/{report_id}")
def report_detail(request: Request, _: SignedInDep, engine: EngineDep, report_id: ReportIdPath,
                  offset: OffsetQuery = 0) -> Response:
    with engine.connect() as conn:
        report = _report_or_404(conn, report_id)
        records = report_records(conn, report_id, RECORDS_PER_PAGE, offset)
        deliveries = report_origin_list(conn, report_id)
        original = report_original(conn, report_id)
    policy = {name: report[name] for name in POLICY_FIELDS}
    return render(request, "report.html", {
        "title": f"Report {report['report_id'] or report_id}", "active": "reports", "report": report,
        "policy": policy, "records": records, "deliveries": deliveries, "original": original,
        "offset": offset, "limit": RECORDS_PER_PAGE, "source_link": source_link})


# -- its XML ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ReportDocument:
    """The report's XML as the page shows it."""

    text: str | None
    location: str | None
    size_shown: int
    cut: bool
    pretty: bool
    problem: str | None = None


def _read_capped(payload: Payload, cap: int) -> bytes:
    with payload.open() as stream:
        return stream.read(cap + 1)


def extract_document(settings: Settings, original: KeptOriginal, location: str,
                     cap: int = XML_SHOWN_BYTES) -> tuple[bytes, str] | None:
    """The first `cap + 1` bytes of the report's document inside the kept original, and where
    it was found. The recorded location names the part; an original whose name was cut when
    stored still gives its only document. None when the document is not in it."""
    store = OriginalStore(settings.data_dir)
    budget = DecompressionBudget(settings.unpack_limits)
    only: tuple[bytes, str] | None = None
    documents = 0
    for item in unpack(partial(store.open, original.storage_path), original.source, budget):
        if not isinstance(item, Payload) or item.kind is not ReportKind.AGGREGATE:
            continue
        documents += 1
        if item.location == location:
            return _read_capped(item, cap), item.location
        if documents == 1:  # read now: the archive holding it closes as the walk moves on
            only = (_read_capped(item, cap), item.location)
    return only if documents == 1 else None


def pretty_xml(data: bytes) -> str | None:
    """The document indented, or None when it is not well-formed XML (it is then shown as
    received: a repaired document is still worth reading)."""
    try:
        root = etree.fromstring(data, etree.XMLParser(**_PRETTY_PARSER_OPTIONS))
    except (etree.XMLSyntaxError, ValueError):
        return None
    text: str = etree.tostring(root, pretty_print=True, encoding="unicode")
    declaration = _XML_DECLARATION.match(data)
    if declaration:  # kept as sent: it says which encoding the download is in
        text = declaration.group(1).decode("ascii", errors="replace") + "\n" + text
    return text


def report_document(settings: Settings, original: KeptOriginal | None, location: str) -> ReportDocument:
    if original is None:
        return ReportDocument(None, None, 0, False, False, "No original is kept for this report.")
    try:
        found = extract_document(settings, original, location)
    except OSError as exc:
        return ReportDocument(None, None, 0, False, False,
                              f"The kept original cannot be read ({exc.strerror or exc}).")
    except IngestError as exc:
        return ReportDocument(None, None, 0, False, False, f"The kept original cannot be unpacked ({exc}).")
    if found is None:
        return ReportDocument(None, None, 0, False, False,
                              f"The report's document ({location}) was not found in the kept original.")
    data, where = found
    cut = len(data) > XML_SHOWN_BYTES
    data = data[:XML_SHOWN_BYTES]
    pretty = None if cut else pretty_xml(data)
    text = pretty if pretty is not None else data.decode("utf-8", errors="replace")
    return ReportDocument(text, where, len(data), cut, pretty is not None)


@router.get("/reports/{report_id}/xml")
def report_xml(request: Request, _: SignedInDep, engine: EngineDep, settings: SettingsDep,
               report_id: ReportIdPath) -> Response:
    with engine.connect() as conn:
        report = _report_or_404(conn, report_id)
        original = report_original(conn, report_id)
    document = report_document(settings, original, report["location"])
    return render(request, "report_xml.html", {
        "title": f"XML of report {report['report_id'] or report_id}", "active": "reports", "report": report,
        "original": original, "document": document, "cap": XML_SHOWN_BYTES})
