"""Forwarded mail: how much, who forwards it, and whose changes break the domain's signatures."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import Engine

from app.api.csv_export import CSV_RESPONSE, csv_response, wants_csv
from app.api.forwarding_models import (
    BrokenSignatureItem,
    ClassShare,
    ForwarderItem,
    ForwardingDay,
    ForwardingOut,
    ForwardingTotals,
)
from app.api.read_models import Window
from app.concurrent_reads import read_concurrently
from app.deps import EngineDep, FormatParam, ReadAccess, RecordFilterDep
from app.forwarding_query import broken_signatures, forwarders, forwarding_totals
from app.problems import problem_responses
from app.record_filter import RecordFilter

router = APIRouter(prefix="/api/v1/forwarding", tags=["analytics"],
                   responses=problem_responses(401, 403, 422))

DEFAULT_LIMIT = 20
CSV_COLUMNS = ("key", "keyed_by", "sender", "service", "service_type", "sources", "messages", "records",
               "forwarded", "forwarding_failure", "dmarc_pass", "dmarc_pass_rate")
LimitParam = Annotated[int | None, Query(ge=1, le=1000, description=(
    f"Forwarders and broken-signature groups shown (default {DEFAULT_LIMIT}). The CSV export holds "
    "every forwarder unless a limit is given."))]


@router.get("", response_model=ForwardingOut, responses=CSV_RESPONSE)
def read_forwarding(request: Request, engine: EngineDep, _: ReadAccess, flt: RecordFilterDep,
                    limit: LimitParam = None, format_: FormatParam = None) -> Any:
    """Forwarded mail and forwarding failures (Rua's classes `forwarded` and `forwarding_failure`):
    totals with their share of all mail, a per-day series, the forwarders, and the failures that
    come from the domain's own DKIM signatures broken in transit.

    Forwarders are grouped by who sender identification says they are, else by address, with
    the receivers' DMARC pass rate. A broken signature is one the reporter found aligned with
    header_from and failing (`fail`) while its key was present and sound and the domain's own
    SPF does not authorise the source: the message was changed on the way. Records not judged
    yet are in no class. The CSV export is the forwarders table.
    """
    csv = wants_csv(request, format_)
    with engine.connect() as conn:
        if csv:
            found = forwarders(conn, flt, limit)
            return csv_response("forwarders.csv", CSV_COLUMNS, (
                [item.key, item.keyed_by, item.sender, item.service, item.service_type, item.sources,
                 item.messages, item.records, item.forwarded, item.forwarding_failure, item.dmarc_pass,
                 item.dmarc_pass_rate]
                for item in map(ForwarderItem.of, found.groups)))
    return forwarding_answer(engine, flt, limit or DEFAULT_LIMIT)


def forwarding_answer(engine: Engine, flt: RecordFilter, shown: int) -> ForwardingOut:
    """The JSON answer, which the dashboard's forwarding page shows too; its three parts are
    read at the same time (app.concurrent_reads), the two rankings, of about equal weight,
    without parallel workers of their own."""
    found, (broken, broken_groups), totals = read_concurrently(
        engine, lambda conn: forwarders(conn, flt, shown), lambda conn: broken_signatures(conn, flt, shown),
        lambda conn: forwarding_totals(conn, flt), parallel_workers=False)
    return ForwardingOut(
        window=Window(since=flt.window.since, until=flt.window.until),
        totals=ForwardingTotals(messages=totals.messages,
                                forwarded=ClassShare.of(totals.forwarded, totals.messages),
                                forwarding_failure=ClassShare.of(totals.forwarding_failure, totals.messages),
                                broken_signatures=ClassShare.of(broken, totals.messages)),
        days=[ForwardingDay(day=day, messages=volume.messages, forwarded=volume.forwarded,
                            forwarding_failure=volume.forwarding_failure)
              for day, volume in totals.days.items()],
        forwarders=[ForwarderItem.of(group) for group in found.groups], forwarders_total=found.total,
        broken_signatures=[BrokenSignatureItem.of(group) for group in broken_groups.groups],
        broken_signatures_total=broken_groups.total)
